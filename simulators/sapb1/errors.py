"""Service Layer errors: one exception carrying HTTP status, B1 code and message (contract §4)."""

from __future__ import annotations


class SLError(Exception):
    """An answer in the error envelope of the request's root (v1 or v2)."""

    def __init__(self, status: int, code: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []


# Messages, exactly as the contract quotes them.
MSG_SESSION = "Invalid session or session already timeout."
MSG_NOT_FOUND = "No matching records found (ODBC -2028)"
MSG_DUPLICATE = "This entry already exists in the following tables (ODBC -2035)"
MSG_ETAG = "Another user or another operation modified data; to continue, open the window again (ODBC -2039)"
MSG_INTERNAL = "Internal error (-5002) occurred"
MSG_BASE_CLOSED = "One of the base documents has already been closed "
MSG_BASE_CARD = "Base document card and target document card do not match."
MSG_NOT_SUPPORTED = "Action not supported for this object"
MSG_DUP_NUMATCARD = "10001467 - There is already a record with duplicated customer/vendor reference number."
MSG_BAD_BATCH = "Incomplete Batch Request Body!"
MSG_BAD_JSON = "Invalid JSON format"
MSG_TOO_LARGE = "Request body too large"
MSG_FIELD_LOCKED = "Field cannot be updated (ODBC -1029)"
MSG_DOC_CLOSED = "Document is already closed"


def session_error() -> SLError:
    return SLError(401, 301, MSG_SESSION)


def not_found() -> SLError:
    return SLError(404, -2028, MSG_NOT_FOUND)


def invalid_property(name: str, type_name: str) -> SLError:
    return SLError(400, -1000, f"Property '{name}' of '{type_name}' is invalid")


def value_too_long(name: str, type_name: str) -> SLError:
    return SLError(400, -8112, f"Value too long in property '{name}' of '{type_name}'")


def duplicate() -> SLError:
    return SLError(400, -2035, MSG_DUPLICATE)


def bad_request(message: str) -> SLError:
    return SLError(400, -1000, message)


def business(message: str, code: int = -10) -> SLError:
    return SLError(400, code, message)


def enter_valid_code(where: str) -> SLError:
    """-5002 `Enter valid code  [DocumentLines.CostingCode][line: 1]` (two spaces before the tag)."""
    return SLError(400, -5002, f"Enter valid code  {where}")


def field_locked(where: str) -> SLError:
    """-1029 on a field a posted document keeps: `[OPCH.DocDate], Field cannot be updated (ODBC -1029)`.

    Code, text and tag-first form as a Service Layer answered a DocDate change on a posted goods
    receipt (public integration notes, PUB S13); the status 400 and the line form are MOD.
    """
    return SLError(400, -1029, f"{where}, {MSG_FIELD_LOCKED}")


def segment_not_found(name: str) -> SLError:
    return SLError(404, -1000, f"Resource not found for the segment '{name}'.")
