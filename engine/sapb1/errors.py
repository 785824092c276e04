"""Service Layer errors: one type for both envelopes (SL §4.1), classified per §4.4.

Classification uses the HTTP status and the envelope's `code` only — never message text, except the
numbered B1 message id a -5002 wraps (e.g. `10001467 - There is already a record…`).
"""

from __future__ import annotations

import json
import re

import httpx

from engine.errors import ConfigError, ConnectorError

SESSION_CODE = 301
NOT_FOUND_CODE = -2028
CONFLICT_CODE = -2039
DUPLICATE_CODE = -2035
WRAPPER_CODE = -5002
# B1 message ids that, wrapped in a -5002 answer to a create, mean "this record already exists".
DUPLICATE_MESSAGE_IDS = frozenset({1320000140, 10001467})
# Statuses a read may be retried on. 500/502/503/504 per §4.4; 408 and 429 are transient by
# definition in HTTP and answered by proxies in front of real installations (the contract is silent).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_MESSAGE_ID = re.compile(r"^\s*(\d{5,})\s*[-–]")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def parse_envelope(body: str) -> tuple[int | None, str | None]:
    """`(code, message)` from a v1 or v2 error envelope; `(None, None)` for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return None, None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, None
    code: int | None = None
    raw_code = error.get("code")
    if isinstance(raw_code, int) and not isinstance(raw_code, bool):
        code = raw_code
    elif isinstance(raw_code, str):
        try:
            code = int(raw_code.strip())
        except ValueError:
            code = None
    raw_message = error.get("message")
    if isinstance(raw_message, dict):
        raw_message = raw_message.get("value")
    message = raw_message if isinstance(raw_message, str) else None
    return code, message


class ServiceLayerError(ConnectorError):
    """A non-2xx answer from the Service Layer.

    `code` is the envelope's code as an int (None when the body is not an envelope, e.g. Apache's
    HTML or an empty 500); `message` B1's message text; `body` the raw body for the audit.
    """

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        body: str = "",
        *,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        self.method = method
        self.path = path
        self.retry_after: float | None = None  # seconds, from a Retry-After header
        super().__init__(self._describe())

    @classmethod
    def from_body(cls, status: int, body: str, *, method: str = "", path: str = "") -> ServiceLayerError:
        code, message = parse_envelope(body)
        if message is None:
            text = " ".join(body.split())
            message = text[:200] if text and not text.lstrip().startswith("<") else f"HTTP {status} without an error envelope"
        return cls(status, code, message, body, method=method, path=path)

    def _describe(self) -> str:
        code = f", code {self.code}" if self.code is not None else ""
        where = f" ({self.method} {self.path})" if self.method else ""
        return f"SAP B1 answered HTTP {self.status}{code}: {self.message}{where}"

    def __reduce__(self):  # keep the keyword arguments when pickled (e.g. across processes)
        return (_rebuild, (self.status, self.code, self.message, self.body, self.method, self.path))

    # -- classification (§4.4) -------------------------------------------------------------------

    @property
    def message_id(self) -> int | None:
        """The numbered B1 message a -5002 wraps (`10001467 - …` → 10001467), else None."""
        if self.code != WRAPPER_CODE or not self.message:
            return None
        match = _MESSAGE_ID.match(self.message)
        return int(match.group(1)) if match else None

    @property
    def is_session_timeout(self) -> bool:
        """HTTP 401 with code 301: no valid session. Decided on status and code, never text."""
        return self.status == 401 and self.code == SESSION_CODE

    @property
    def is_not_found(self) -> bool:
        return self.status == 404 and self.code == NOT_FOUND_CODE

    @property
    def is_conflict(self) -> bool:
        return self.status == 412 or self.code == CONFLICT_CODE

    @property
    def is_duplicate(self) -> bool:
        """The answer to a create that means "already exists" (-2035, or -5002 wrapping a duplicate id).

        Only meaningful for a create: a -2035 on a PATCH is a business answer.
        """
        return self.code == DUPLICATE_CODE or self.message_id in DUPLICATE_MESSAGE_IDS

    @property
    def is_transient(self) -> bool:
        """A fault that says nothing about the request itself: 5xx (500/502/503/504), 408, 429."""
        return self.status in TRANSIENT_STATUSES

    @property
    def is_business(self) -> bool:
        """B1 refused the request for a reason a re-send cannot fix (every other 4xx, -5002 included)."""
        return 400 <= self.status < 500 and not self.is_session_timeout and not self.is_transient

    @property
    def kind(self) -> str:
        """One word for the audit: `engine.load.classify`'s class of this answer."""
        from engine.load.classify import classify

        return classify(self, creating=True).value


def _rebuild(status, code, message, body, method, path):  # noqa: ANN001, ANN202
    return ServiceLayerError(status, code, message, body, method=method, path=path)


class LoginError(ServiceLayerError, ConfigError):
    """`POST /Login` was refused: a credential or configuration failure. Never retried (§2.5)."""

    def _describe(self) -> str:
        code = f", code {self.code}" if self.code is not None else ""
        return (
            f"SAP B1 login failed (HTTP {self.status}{code}): {self.message}. "
            "Check the company database, user name and password of the connection"
        )

    def __reduce__(self):
        return (LoginError, (self.status, self.code, self.message, self.body))


class TransportError(ConnectorError):
    """No HTTP answer: connection refused, reset, dropped, or a timeout.

    `request_sent` is False only when the request certainly never left (connect failures, pool
    timeouts). `maybe_committed` is True for a write whose answer was lost: B1 may have applied it,
    so the caller must look the external reference up before re-sending (§4.4).
    """

    def __init__(
        self, method: str, path: str, cause: str, *, request_sent: bool, transient: bool = True
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.cause = cause
        self.request_sent = request_sent
        self.is_transient = transient  # False for a failed Login, which is never retried
        super().__init__(self._describe())

    @property
    def maybe_committed(self) -> bool:
        return self.request_sent and self.method not in _READ_METHODS

    def _describe(self) -> str:
        state = (
            "the answer was lost; the write may have been applied"
            if self.maybe_committed
            else ("the answer was lost" if self.request_sent else "the request was not sent")
        )
        return f"SAP B1 transport error on {self.method} {self.path}: {self.cause} ({state})"

    def __reduce__(self):
        return (_rebuild_transport, (self.method, self.path, self.cause, self.request_sent, self.is_transient))


def _rebuild_transport(method: str, path: str, cause: str, sent: bool, transient: bool) -> TransportError:
    return TransportError(method, path, cause, request_sent=sent, transient=transient)


# httpx failures after which the request certainly never reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def transport_error(method: str, path: str, exc: httpx.HTTPError, *, transient: bool = True) -> TransportError:
    """Translate an httpx failure; anything but a connect failure may have reached the server."""
    cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return TransportError(method, path, cause, request_sent=not isinstance(exc, _NOT_SENT), transient=transient)

