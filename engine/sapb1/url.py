"""The Service Layer service root (SL §1) and OData key/literal quoting.

`ServiceRoot.parse` applies the validation rules of SL §1.2 to a customer's configured URL:
each failure is a `ConfigError` naming the rule; soft problems (plain http to a non-loopback host,
no explicit port) come back as `warnings` and are logged.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from engine.errors import ConfigError

log = logging.getLogger("engine.sapb1")

Version = Literal["v1", "v2"]
KeyValue = str | int

_PATHS: dict[str, Version] = {"/b1s/v1": "v1", "/b1s/v2": "v2"}
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _redacted(url: str) -> str:
    """The URL with any user-info replaced, so a password typed into it never reaches a message."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{slash}{tail}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceRoot:
    """A validated service root such as `https://erp.example.com:50000/b1s/v2`."""

    scheme: str
    host: str
    port: int | None  # None: the scheme's default port applies
    version: Version
    warnings: tuple[str, ...] = ()

    @classmethod
    def parse(cls, url: str) -> ServiceRoot:
        """Validate `url` against SL §1.2 and return the normalised root."""
        text = url.strip()
        shown = _redacted(text)

        def fail(rule: int, what: str) -> ConfigError:
            return ConfigError(f"SAP B1 service root {shown!r} is invalid (§1.2 rule {rule}): {what}")

        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if not scheme or not parts.netloc:
            raise fail(1, "it must be an absolute URL such as https://erp.example.com:50000/b1s/v2")
        if scheme not in _DEFAULT_PORTS:
            raise fail(1, f"the scheme must be https (or http), not {parts.scheme!r}")
        if "@" in parts.netloc:
            raise fail(2, "it must not contain user-info (user:password@); credentials are configured apart")
        if "?" in text:
            raise fail(2, "it must not contain a query string")
        if "#" in text:
            raise fail(2, "it must not contain a fragment")
        host = parts.hostname or ""
        if not host:
            raise fail(2, "it has no host")
        try:
            port = parts.port
        except ValueError:
            raise fail(3, "the port is not a number between 0 and 65535") from None
        path = parts.path[:-1] if parts.path.endswith("/") else parts.path
        if path not in _PATHS:
            raise fail(4, f"the path must be exactly /b1s/v1 or /b1s/v2 (case-sensitive), not {parts.path!r}")

        warnings: list[str] = []
        if scheme == "http" and not is_loopback(host):
            warnings.append(
                f"SAP B1 service root {shown!r} uses plain http to a non-loopback host: "
                "the password and session travel unencrypted"
            )
        if port is None:
            warnings.append(
                f"SAP B1 service root {shown!r} has no port; the {scheme} default "
                f"{_DEFAULT_PORTS[scheme]} applies, but Service Layer installations normally listen on :50000"
            )
        for warning in warnings:
            log.warning(warning)
        return cls(scheme=scheme, host=host, port=port, version=_PATHS[path], warnings=tuple(warnings))

    @property
    def origin(self) -> str:
        """`scheme://host[:port]` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port is not None else "")

    @property
    def path(self) -> str:
        return f"/b1s/{self.version}"

    @property
    def base(self) -> str:
        """The normalised root without a trailing slash."""
        return self.origin + self.path

    def url(self, resource: str) -> str:
        """The absolute URL of `resource` (e.g. `PurchaseOrders(12)`), joined with a single `/`."""
        return f"{self.base}/{resource.lstrip('/')}"

    def __str__(self) -> str:
        return self.base


def quote_key(value: KeyValue) -> str:
    """One key value as it goes between the parentheses (§1.1).

    Strings are single-quoted with embedded quotes doubled and reserved characters percent-encoded;
    integers are bare.
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not an entity key")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + quote(value.replace("'", "''"), safe="'") + "'"
    raise TypeError(f"unsupported key type {type(value).__name__}")


def entity_path(entity_set: str, key: KeyValue | Mapping[str, KeyValue]) -> str:
    """`BusinessPartners('O''Brien')`, `PurchaseOrders(123)`, `UserFieldsMD(TableName='OPOR',FieldID=3)`."""
    if isinstance(key, Mapping):
        inner = ",".join(f"{name}={quote_key(value)}" for name, value in key.items())
    else:
        inner = quote_key(key)
    return f"{entity_set}({inner})"


def odata_literal(value: object) -> str:
    """A `$filter` literal: strings quoted with `'` doubled, numbers bare, booleans `true`/`false`.

    Percent-encoding of the whole query option happens when the URL is built.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if value is None:
        return "null"
    # dates and other values: their ISO text, quoted (§7.1: dates as '2024-05-02' on both roots)
    iso = getattr(value, "isoformat", None)
    if iso is not None:
        return "'" + iso() + "'"
    raise TypeError(f"cannot write {type(value).__name__} as an OData literal")
