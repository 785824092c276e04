"""`$batch` bodies (SL §9): encode requests and change sets, parse both versions' answers.

Semantics to keep in mind: parts run in order and processing stops at the first failure; a change
set is atomic and, when it fails, is answered by a single part carrying the failing request's
error. So the results can be fewer than the requests: requests with no result never ran.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.sapb1.errors import ServiceLayerError
from engine.sapb1.url import ServiceRoot

CRLF = "\r\n"


@dataclass(frozen=True)
class BatchRequest:
    method: str
    path: str  # relative to the service root, e.g. "BusinessPartners('V1')" or "$1" inside a change set
    body: Any = None  # JSON-serialisable; None for no body
    headers: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None  # names the request in a change set; assigned when missing


@dataclass(frozen=True)
class ChangeSet:
    """Requests that commit or roll back together. No GETs inside."""

    requests: Sequence[BatchRequest]


BatchItem = BatchRequest | ChangeSet


@dataclass
class BatchResult:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, raw text, or None
    content_id: str | None
    request: BatchRequest | None  # the request this answers, when it can be told
    in_change_set: bool = False
    error: ServiceLayerError | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _Part:
    status: int
    headers: dict[str, str]
    text: str
    content_id: str | None


def assign_content_ids(items: Sequence[BatchItem]) -> list[BatchItem]:
    """Copies of `items` where every change-set member has a Content-ID unique in the batch."""
    taken = {r.content_id for item in items if isinstance(item, ChangeSet) for r in item.requests if r.content_id}
    counter = 0
    result: list[BatchItem] = []
    for item in items:
        if isinstance(item, BatchRequest):
            result.append(item)
            continue
        members = []
        for request in item.requests:
            if request.method.upper() == "GET":
                raise ValueError("a change set must not contain a GET request (§9.1)")
            if request.content_id is None:
                counter += 1
                while str(counter) in taken:
                    counter += 1
                request = dataclasses.replace(request, content_id=str(counter))
            members.append(request)
        result.append(ChangeSet(members))
    return result


def _request_part(root: ServiceRoot, request: BatchRequest, *, in_change_set: bool) -> str:
    path = request.path if request.path.startswith("$") else f"{root.path}/{request.path.lstrip('/')}"
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if in_change_set and request.content_id is not None:
        lines.append(f"Content-ID: {request.content_id}")
    lines += ["", f"{request.method.upper()} {path} HTTP/1.1"]
    headers = dict(request.headers)
    if request.body is not None:
        headers.setdefault("Content-Type", "application/json")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("")
    body = "" if request.body is None else json.dumps(request.body, ensure_ascii=False)
    lines.append(body)  # for a GET: an empty body, so two blank lines follow the request line (§9.1)
    return CRLF.join(lines)


def encode_batch(root: ServiceRoot, items: Sequence[BatchItem], boundary: str | None = None) -> tuple[str, bytes]:
    """`(Content-Type, body)` of a `$batch` request. Content-IDs must already be assigned."""
    batch = boundary or f"batch_{uuid.uuid4().hex}"
    out: list[str] = []
    for item in items:
        out.append(f"--{batch}")
        if isinstance(item, BatchRequest):
            out.append(_request_part(root, item, in_change_set=False))
            continue
        changeset = f"changeset_{uuid.uuid4().hex}"
        out.append(f"Content-Type: multipart/mixed;boundary={changeset}")
        out.append("")
        for request in item.requests:
            out.append(f"--{changeset}")
            out.append(_request_part(root, request, in_change_set=True))
        out.append(f"--{changeset}--")
    out.append(f"--{batch}--")
    out.append("")
    return f"multipart/mixed;boundary={batch}", CRLF.join(out).encode("utf-8")


# -- parsing ---------------------------------------------------------------------------------------

_BOUNDARY = re.compile(r'boundary\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def boundary_of(content_type: str) -> str | None:
    match = _BOUNDARY.search(content_type or "")
    return match.group(1).strip() if match else None


def _split_multipart(text: str, boundary: str) -> list[str]:
    """Bodies of the parts between `--boundary` lines (line endings already normalised to \\n)."""
    parts: list[str] = []
    current: list[str] | None = None
    for line in text.split("\n"):
        stripped = line.rstrip()
        if stripped == f"--{boundary}--":
            if current is not None:
                parts.append("\n".join(current))
            return parts
        if stripped == f"--{boundary}":
            if current is not None:
                parts.append("\n".join(current))
            current = []
        elif current is not None:
            current.append(line)
    if current is not None:  # no closing delimiter: keep what came
        parts.append("\n".join(current))
    return parts


def _headers_and_rest(text: str) -> tuple[dict[str, str], str]:
    head, _, rest = text.partition("\n\n")
    headers: dict[str, str] = {}
    for line in head.split("\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _http_part(mime_headers: dict[str, str], content: str) -> _Part:
    content = content.lstrip("\n")
    status_line, _, after = content.partition("\n")
    pieces = status_line.split(" ", 2)
    try:
        status = int(pieces[1])
    except (IndexError, ValueError):
        raise ValueError(f"not an HTTP status line in a $batch answer: {status_line[:80]!r}") from None
    headers: dict[str, str]
    if after.startswith("\n") or not after.strip():  # no headers: a blank line, then the body
        headers, body = {}, after
    else:
        headers, body = _headers_and_rest(after)
    content_id = mime_headers.get("content-id") or headers.get("content-id")
    return _Part(status, headers, body.strip("\n"), content_id)


def parse_batch(content_type: str, text: str) -> list[_Part | list[_Part]]:
    """The top-level parts of a `$batch` answer; a committed change set is a list of parts."""
    boundary = boundary_of(content_type)
    if boundary is None:
        raise ValueError(f"$batch answer is not multipart: {content_type!r}")
    text = text.replace("\r\n", "\n")
    parsed: list[_Part | list[_Part]] = []
    for raw in _split_multipart(text, boundary):
        headers, content = _headers_and_rest(raw)
        inner = boundary_of(headers.get("content-type", ""))
        if headers.get("content-type", "").lower().startswith("multipart/") and inner:
            members = []
            for member in _split_multipart(content, inner):
                member_headers, member_content = _headers_and_rest(member)
                members.append(_http_part(member_headers, member_content))
            parsed.append(members)
        else:
            parsed.append(_http_part(headers, content))
    return parsed


def _body(part: _Part) -> Any:
    if not part.text.strip():
        return None
    try:
        return json.loads(part.text)
    except ValueError:
        return part.text


def _result(part: _Part, request: BatchRequest | None, in_change_set: bool) -> BatchResult:
    error = None
    if part.status >= 400:
        method, path = (request.method.upper(), request.path) if request else ("", "")
        error = ServiceLayerError.from_body(part.status, part.text, method=method, path=path)
    return BatchResult(part.status, part.headers, _body(part), part.content_id, request, in_change_set, error)


def match_results(items: Sequence[BatchItem], parsed: list[_Part | list[_Part]]) -> list[BatchResult]:
    """Pair answers with the requests they answer, in request order."""
    results: list[BatchResult] = []
    for item, answer in zip(items, parsed, strict=False):
        if isinstance(item, BatchRequest):
            part = answer if isinstance(answer, _Part) else answer[0]
            results.append(_result(part, item, False))
            continue
        by_id = {r.content_id: r for r in item.requests}
        parts = answer if isinstance(answer, list) else [answer]
        for index, part in enumerate(parts):
            request = by_id.get(part.content_id) if part.content_id else None
            if request is None and isinstance(answer, list) and index < len(item.requests):
                request = item.requests[index]
            results.append(_result(part, request, True))
    return results
