"""JSON answers and the list / error envelopes of reference §4.2 and §4.6."""

from __future__ import annotations

import json
from typing import Any

from simulators.http import Response

JSON_TYPE = "application/json;charset=UTF-8"
RETRYABLE = -998


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", JSON_TYPE), *(headers or [])], dumps(body))


class ReturnCodes:
    """Renders `returnCode` as a number, a string, or alternately both (the type-drift knob)."""

    def __init__(self, knobs: Any) -> None:
        self.knobs = knobs
        self._count = 0

    def __call__(self, code: int) -> int | str:
        mode = self.knobs.returncode_type
        if mode == "string":
            return str(code)
        if mode == "mixed":
            self._count += 1
            return str(code) if self._count % 2 == 0 else code
        return code


def list_envelope(rc: ReturnCodes, total: int, records: list[Any], start: int, key: str | tuple[str, str],
                  message: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "returnCode": rc(0),
        "returnMessage": message,
        "totRecords": total,
        "returnedRecords": len(records),
        "startAt": start,
    }
    if isinstance(key, tuple):
        body[key[0]] = {key[1]: records}
    else:
        body[key] = records
    return body


def error_body(rc: ReturnCodes, code: int, message: str, list_fields: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"returnCode": rc(code), "returnMessage": message}
    if list_fields:
        body.update({"totRecords": 0, "returnedRecords": 0, "startAt": 0})
    return body


def error_response(rc: ReturnCodes, status: int, code: int, message: str, list_fields: bool = False) -> Response:
    return json_response(status, error_body(rc, code, message, list_fields))
