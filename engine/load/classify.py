"""Error classes of the contract's §4.4, decided on HTTP status and B1 code — never on message text,
except the numbered B1 message ids a -5002 wraps.
"""

from __future__ import annotations

import asyncio
import re
from enum import StrEnum

import httpx


class ErrorClass(StrEnum):
    SESSION = "session"  # 401/301 that survived the client's single re-login: the run cannot go on
    CREDENTIALS = "credentials"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    DUPLICATE = "duplicate"
    BUSINESS = "business"
    TRANSIENT = "transient"


# -5002 wrapping these message ids means "this record already exists" (contract §4.3/§4.4).
DUPLICATE_MESSAGE_IDS = ("1320000140", "10001467")
_WRAPPED_ID = re.compile(r"^\s*(\d{6,})\s*[-–]")

# 408/429 come from proxies in front of real installations; HTTP calls them transient.
TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}


def error_fields(exc: BaseException) -> tuple[int | None, str | None, str]:
    """(HTTP status, B1 code as a string, message) of a Service Layer error; (None, None, text) otherwise."""
    status = getattr(exc, "status", None)
    if status is None:
        status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None)
    if message is None:
        message = str(exc)
    return (int(status) if status is not None else None, None if code is None else str(code).strip(), str(message))


def wrapped_message_id(message: str) -> str | None:
    match = _WRAPPED_ID.match(message or "")
    return match.group(1) if match else None


def is_transport_failure(exc: BaseException) -> bool:
    """Connection refused/reset/dropped, or a timeout: nothing is known about the write."""
    if isinstance(exc, httpx.TransportError | asyncio.TimeoutError | TimeoutError | ConnectionError):
        return True
    return type(exc).__name__ in {"TransportError", "SapB1TransportError"} or hasattr(exc, "maybe_committed")


def classify(exc: BaseException, *, creating: bool = False, login: bool = False) -> ErrorClass:
    """Classify an exception raised by a Service Layer call (first matching row of §4.4 wins)."""
    if type(exc).__name__ == "LoginError" or getattr(exc, "is_transient", True) is False and not hasattr(exc, "status"):
        return ErrorClass.CREDENTIALS  # a refused (re-)login: never retried, the run stops
    if is_transport_failure(exc) and getattr(exc, "status", None) is None:
        return ErrorClass.TRANSIENT
    status, code, message = error_fields(exc)
    if status is None:
        return ErrorClass.TRANSIENT if is_transport_failure(exc) else ErrorClass.BUSINESS
    if login:
        return ErrorClass.CREDENTIALS
    if status == 401 and code == "301":
        return ErrorClass.SESSION
    if status == 404 and code == "-2028":
        return ErrorClass.NOT_FOUND
    if status == 412 or code == "-2039":
        return ErrorClass.CONFLICT
    if creating and (code == "-2035" or (code == "-5002" and wrapped_message_id(message) in DUPLICATE_MESSAGE_IDS)):
        return ErrorClass.DUPLICATE
    if status in TRANSIENT_STATUSES:
        return ErrorClass.TRANSIENT
    if 400 <= status < 500:
        return ErrorClass.BUSINESS
    return ErrorClass.TRANSIENT if status >= 500 else ErrorClass.BUSINESS
