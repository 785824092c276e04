"""`$batch` (contract §9): multipart/mixed requests, atomic change sets, stop at the first failure."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from simulators.http import Response
from simulators.sapb1 import errors as E
from simulators.sapb1.errors import SLError

if TYPE_CHECKING:
    from simulators.sapb1.app import Call, ServiceLayerApp

MAX_REQUESTS = 1000
_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)


@dataclass
class Part:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


@dataclass
class ChangeSet:
    parts: list[Part] = field(default_factory=list)


class _Malformed(Exception):
    pass


class _ChangeSetFailed(Exception):
    def __init__(self, response: Response, content_id: str | None) -> None:
        super().__init__("change set failed")
        self.response = response
        self.content_id = content_id


def _boundary(content_type: str) -> str:
    m = _BOUNDARY.search(content_type)
    if not m:
        raise _Malformed()
    return m.group(1).strip()


def _split(text: str, boundary: str) -> list[str]:
    """The parts between `--boundary` lines; requires the closing `--boundary--`."""
    lines = re.split(r"\r?\n", text)
    parts: list[list[str]] = []
    current: list[str] | None = None
    closed = False
    for line in lines:
        stripped = line.rstrip()
        if stripped == f"--{boundary}--":
            if current is not None:
                parts.append(current)
            closed = True
            break
        if stripped == f"--{boundary}":
            if current is not None:
                parts.append(current)
            current = []
        elif current is not None:
            current.append(line)
    if not closed:
        raise _Malformed()
    return ["\n".join(p) for p in parts]


def _headers_and_body(text: str) -> tuple[dict[str, str], str]:
    head, sep, body = text.partition("\n\n")
    if not sep:
        head, body = text, ""
    headers: dict[str, str] = {}
    for line in head.split("\n"):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise _Malformed()
        headers[name.strip().lower()] = value.strip()
    return headers, body


def _parse_request(text: str, mime_headers: dict[str, str]) -> Part:
    text = text.lstrip("\n")
    request_line, _, rest = text.partition("\n")
    words = request_line.split()
    if len(words) < 2:
        raise _Malformed()
    headers, body = _headers_and_body(rest)
    body = body.rstrip("\n")
    content_id = mime_headers.get("content-id") or headers.get("content-id")
    return Part(words[0].upper(), words[1], headers, body.encode("utf-8"), content_id)


def parse_batch(body: bytes, content_type: str) -> list[Part | ChangeSet]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed() from None
    items: list[Part | ChangeSet] = []
    for raw in _split(text, _boundary(content_type)):
        mime, content = _headers_and_body(raw)
        part_type = mime.get("content-type", "")
        if part_type.lower().startswith("multipart/mixed"):
            changeset = ChangeSet()
            for inner in _split(content, _boundary(part_type)):
                inner_mime, inner_content = _headers_and_body(inner)
                part = _parse_request(inner_content, inner_mime)
                if part.method == "GET":
                    raise _Malformed()
                changeset.parts.append(part)
            items.append(changeset)
        elif part_type.lower().startswith("application/http"):
            items.append(_parse_request(content, mime))
        else:
            raise _Malformed()
    return items


def _resource(target: str, locations: dict[str, str]) -> tuple[str, str]:
    """(resource after `/b1s/vN/`, query string); `$1/...` resolved against earlier results."""
    path = urlsplit(target).path if "://" in target else target.split("?", 1)[0]
    query = target.split("?", 1)[1] if "?" in target else ""
    m = re.match(r"^/?b1s/v[12]/(.*)$", path.lstrip("/")) if "b1s/" in path else None
    resource = m.group(1) if m else path.lstrip("/")
    ref = re.match(r"^\$(\w+)(.*)$", resource)
    if ref and ref.group(1) in locations:
        resource = locations[ref.group(1)] + ref.group(2)
    return resource, query


def run_batch(app: ServiceLayerApp, call: Call) -> Response:
    try:
        items = parse_batch(call.body, call.headers.get("content-type", ""))
        if not items:
            raise _Malformed()
        if call.v2 and any(not part.content_id for i in items if isinstance(i, ChangeSet) for part in i.parts):
            raise _Malformed()  # Content-ID is mandatory in v2 change sets (§9.1)
    except _Malformed:
        raise SLError(400, -1000, E.MSG_BAD_BATCH) from None
    if sum(len(i.parts) if isinstance(i, ChangeSet) else 1 for i in items) > MAX_REQUESTS:
        raise SLError(400, -1000, f"Too many requests in one batch (at most {MAX_REQUESTS})")
    out: list[str] = []
    boundary = f"batchresponse_{uuid.uuid4()}"
    locations: dict[str, str] = {}
    for item in items:
        if isinstance(item, ChangeSet):
            ok, text = _run_changeset(app, call, item, locations)
            out.append(text)
            if not ok:
                break
        else:
            response = _execute(app, call, item, locations)
            out.append(_http_part(call.v2, response, None))
            if response.status >= 400:
                break
    body = "".join(f"--{boundary}\r\n{part}" for part in out) + f"--{boundary}--\r\n"
    headers = [("Content-Type", f"multipart/mixed;boundary={boundary}"), app.version_header(call.v2)]
    return Response(200 if call.v2 else 202, headers, body.encode("utf-8"))


def _run_changeset(app: ServiceLayerApp, call: Call, changeset: ChangeSet,
                   locations: dict[str, str]) -> tuple[bool, str]:
    boundary = f"changesetresponse_{uuid.uuid4()}"
    parts: list[str] = []
    local: dict[str, str] = {}
    try:
        with app.store.transaction():
            for part in changeset.parts:
                response = _execute(app, call, part, {**locations, **local})
                if response.status >= 400:
                    raise _ChangeSetFailed(response, part.content_id)
                if part.content_id:
                    location = dict((k.lower(), v) for k, v in response.headers).get("location")
                    if location:
                        local[part.content_id] = location.split(f"/b1s/{call.version}/", 1)[-1]
                parts.append(_http_part(call.v2, response, part.content_id))
    except _ChangeSetFailed as failed:
        return False, _http_part(call.v2, failed.response, failed.content_id)
    locations.update(local)
    text = f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n"
    text += "".join(f"--{boundary}\r\n{p}" for p in parts) + f"--{boundary}--\r\n"
    return True, text


def _execute(app: ServiceLayerApp, outer: Call, part: Part, locations: dict[str, str]) -> Response:
    from simulators.sapb1.app import Call as CallType

    resource, query = _resource(part.target, locations)
    method = part.method
    if method == "POST" and "x-http-method-override" in part.headers:
        method = part.headers["x-http-method-override"].upper()
    inner = CallType(outer.v2, method, resource, query, part.headers, part.body, outer.base,
                     session=outer.session, in_batch=True)
    try:
        return app.dispatch(inner)
    except SLError as exc:
        return app.error(inner, exc)


def _http_part(v2: bool, response: Response, content_id: str | None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id and v2:
        head += f"Content-ID: {content_id}\r\n"
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    if content_id and not v2:
        lines.append(f"Content-ID: {content_id}")
    lines.extend(f"{k}: {v}" for k, v in response.headers)
    body = response.body.decode("utf-8", "replace")
    return head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n" + body + "\r\n"
