"""Known secret values, and redaction of what is stored (ledger, events, runs).

Only what is a secret is redacted, never business text:

- every registered value (`register`: the Login password, the B1SESSION/ROUTEID cookie values, the
  OAuth client secret, each access token), wherever it occurs in a string; values shorter than
  `MIN_LENGTH` are not registered, so a short common word is never blanked;
- the value of an HTTP credential header (`Authorization`, `Cookie`, `Set-Cookie`,
  `Proxy-Authorization`, any case) or of a token/credential field named exactly `access_token`,
  `refresh_token`, `id_token`, `client_secret`, `password`, `Password` (B1 Login body), `B1SESSION`;
- in free text, credentials in transit: `B1SESSION=<value>`, `ROUTEID=<value>`,
  `access_token=<value>` (and the other OAuth token fields), `Bearer <JWT>`, and
  `Authorization: Bearer|Basic <token>` where the token looks like one (a JWT, or 16+ token
  characters holding a digit): "Bearer Logistics" is a supplier, not a header.

The registry is process-wide and thread-safe; it keeps the most recent `MAX_VALUES` values.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

REDACTED = "***"
MIN_LENGTH = 8  # shorter values are not registered ("manager", the demo password, is also a user name)
MAX_VALUES = 512  # tokens are renewed during a long run: keep the latest ones

HEADER_KEYS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})  # any case
FIELD_KEYS = frozenset({"access_token", "refresh_token", "id_token", "client_secret", "password", "Password", "B1SESSION"})
SESSION_COOKIES = ("B1SESSION", "ROUTEID")

# A token in transit: a JWT, or a long run of token characters holding a digit (not a plain word).
_JWT = r"eyJ[A-Za-z0-9_-]{5,}(?:\.[A-Za-z0-9_-]*){0,2}"
_TOKEN = rf"(?:{_JWT}|(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{{16,}}=*)"
_SECRET_TEXT = re.compile(
    r"(\b(?:B1SESSION|ROUTEID)=|\b(?:access_token|refresh_token|id_token|client_secret)[\"']?\s*[=:]\s*[\"']?)"
    r"([^\s\"',;&}]+)"
    rf"|(\b(?:Proxy-)?Authorization[\"']?\s*[:=]\s*[\"']?(?:Bearer|Basic)\s+)({_TOKEN})"
    rf"|(\bBearer\s+)({_JWT})",
    re.I,
)
# On serialised JSON: anything `redact` could change shows one of these (a superset: it only decides
# whether the exact walk runs). JSON keys appear quoted; header names also inside free text.
_STATIC_HINT = (
    rb"(?i:B1SESSION|ROUTEID|access_token|refresh_token|id_token|client_secret|bearer|authorization|cookie)"
    rb'|"[Pp]assword"'
)

_lock = threading.Lock()
_values: dict[str, None] = {}  # insertion-ordered: the oldest is dropped first
_value_pattern: re.Pattern[str] | None = None
_hint = re.compile(_STATIC_HINT)


def register(*values: str | None) -> None:
    """Remember secret values so that `redact` blanks them wherever they occur."""
    fresh = [v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH and v not in _values]
    if fresh:
        with _lock:
            for value in fresh:
                _values[value] = None
            while len(_values) > MAX_VALUES:
                del _values[next(iter(_values))]
            _compile()


def register_cookie(header: str) -> None:
    """Register the B1SESSION/ROUTEID values of a `Cookie` header value (`B1SESSION=x; ROUTEID=y`)."""
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name in SESSION_COOKIES:
            register(value)


def registered() -> frozenset[str]:
    """The values currently registered."""
    with _lock:
        return frozenset(_values)


def reset(values: Iterable[str] = ()) -> None:
    """Forget every registered value, then register `values` (for tests)."""
    global _value_pattern, _hint
    with _lock:
        _values.clear()
        _value_pattern, _hint = None, re.compile(_STATIC_HINT)
    register(*values)


def _compile() -> None:
    """Rebuild the value and hint patterns (caller holds the lock). Longest values first."""
    global _value_pattern, _hint
    ordered = sorted(_values, key=len, reverse=True)
    _value_pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
    as_json = [re.escape(orjson.dumps(v)[1:-1]) for v in ordered]  # how each value shows inside JSON text
    _hint = re.compile(b"|".join([_STATIC_HINT, *as_json]))


def is_secret_key(key: Any) -> bool:
    """True for a credential header name (any case) or an exact token/credential field name."""
    return isinstance(key, str) and (key in FIELD_KEYS or key.lower() in HEADER_KEYS)


def redact_text(text: str) -> str:
    """`text` with registered values and credentials in transit replaced by ***."""
    pattern = _value_pattern
    if pattern is not None and pattern.search(text):
        text = pattern.sub(REDACTED, text)
    if _SECRET_TEXT.search(text):
        text = _SECRET_TEXT.sub(_blank, text)
    return text


def _blank(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(3) or match.group(5)) + REDACTED


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like) with secrets replaced by ***; business text is left as it is."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if v not in (None, "") and is_secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def may_hold_secret(serialised: bytes) -> bool:
    """Cheap check of a value's compact JSON: False means `redact` would change nothing."""
    return _hint.search(serialised) is not None


__all__ = [
    "FIELD_KEYS", "HEADER_KEYS", "MIN_LENGTH", "REDACTED", "is_secret_key", "may_hold_secret", "redact",
    "redact_text", "register", "register_cookie", "registered", "reset",
]
