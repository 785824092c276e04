"""Date values in Service Layer payloads (SL §3, §6).

v1 writes and reads `"2024-05-02"`, v2 `"2024-05-02T00:00:00Z"`; writes accept both plus
`"20240502"` on both roots. Filter literals are `'2024-05-02'` on both roots.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from engine.sapb1.url import Version

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def format_date(value: date, version: Version) -> str:
    """A date as the given root writes it in payloads."""
    day = value.date() if isinstance(value, datetime) else value
    text = day.isoformat()
    return text if version == "v1" else f"{text}T00:00:00Z"


def parse_date(text: str) -> date:
    """A B1 date (`2024-05-02`, `2024-05-02T00:00:00Z`, `20240502`) as a `date`.

    The date part is kept as is: B1 stamps are company-local despite the `Z` (§6).
    """
    value = text.strip()
    match = _ISO.match(value) or _COMPACT.match(value)
    if not match:
        raise ValueError(f"not a SAP B1 date: {text!r}")
    return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))


def date_literal(value: date) -> str:
    """A `$filter` literal for a date, valid on both roots."""
    day = value.date() if isinstance(value, datetime) else value
    return f"'{day.isoformat()}'"
