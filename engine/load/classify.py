"""The one classifier of SAP B1 failures (docs/apis/sapb1.md, "Error classes"), used on every path that
talks to the Service Layer: creates, updates, linking, lookups and setup.

The rules themselves live on the error types (`engine.sapb1.errors`: `ServiceLayerError.is_session_timeout`,
`is_not_found`, `is_conflict`, `is_duplicate`, `is_transient`; `TransportError`; `LoginError`) and are
decided on HTTP status and B1 code, never on message text (except the numbered message id a -5002
wraps). This module only orders them into one answer per exception.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

import httpx

from engine.sapb1.errors import LoginError, ServiceLayerError, TransportError


class ErrorClass(StrEnum):
    SESSION = "session"  # 401/301 that survived the client's single re-login: the run cannot go on
    CREDENTIALS = "credentials"  # a refused (re-)login, or a Login that could not reach B1: the run stops
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    DUPLICATE = "duplicate"
    BUSINESS = "business"
    TRANSIENT = "transient"


def error_fields(exc: BaseException) -> tuple[int | None, str | None, str]:
    """(HTTP status, B1 code as a string, message) of a Service Layer error; (None, None, text) otherwise."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None)
    if message is None:
        message = str(exc)
    return (int(status) if status is not None else None, None if code is None else str(code).strip(), str(message))


def classify(exc: BaseException, *, creating: bool = False) -> ErrorClass:
    """The class of a failed Service Layer call; the first matching rule wins. `creating`: the call was a
    create (only then does -2035 or a wrapped duplicate id mean "already exists")."""
    if isinstance(exc, LoginError):
        return ErrorClass.CREDENTIALS
    if isinstance(exc, TransportError):  # no answer; a Login that got none is final (not transient)
        return ErrorClass.TRANSIENT if exc.is_transient else ErrorClass.CREDENTIALS
    if isinstance(exc, httpx.TransportError | asyncio.TimeoutError | TimeoutError | ConnectionError):
        return ErrorClass.TRANSIENT
    if not isinstance(exc, ServiceLayerError):
        return ErrorClass.BUSINESS  # not an answer of B1's: a bug or bad data, never retried blindly
    if exc.is_session_timeout:
        return ErrorClass.SESSION
    if exc.is_not_found:
        return ErrorClass.NOT_FOUND
    if exc.is_conflict:
        return ErrorClass.CONFLICT
    if creating and exc.is_duplicate:
        return ErrorClass.DUPLICATE
    if exc.is_transient or exc.status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.BUSINESS
