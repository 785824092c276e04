"""The `flt` filter subset of reference §4.4 (FIQL): `key op value` constraints joined by `;`.

`compile_filter(text, fields)` returns a `Filter` (predicates plus the last-modified range, which the
store answers from its sorted index) or raises `FilterError` with the reference's message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ORDERING = {"=gt=": "gt", ">": "gt", "=ge=": "ge", ">=": "ge", "=lt=": "lt", "<": "lt", "=le=": "le", "<=": "le"}
OPERATORS = ["=in=", "=gt=", "=ge=", "=lt=", "=le=", "==", "!=", ">=", "<=", ">", "<"]
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ODD_OP = re.compile(r"=[A-Za-z]*=|[=!<>]+")


class FilterError(ValueError):
    """A bad `flt`; the message is the `returnMessage` of §4.6."""


@dataclass(frozen=True)
class FieldSpec:
    kind: str  # "ts" (ms), "id" (int), "str"
    get: Callable[[Any], Any]
    stamp: bool = False  # the last-modified key: answered from the sorted index, orders by (stamp, id)


@dataclass
class Filter:
    predicates: list[Callable[[Any], bool]] = field(default_factory=list)
    low: int | None = None
    low_inclusive: bool = True
    high: int | None = None
    high_inclusive: bool = True
    by_stamp: bool = False
    empty: bool = False  # the stamp range can match nothing

    @property
    def stamp_range(self) -> tuple[int | None, bool, int | None, bool] | None:
        if not self.by_stamp:
            return None
        return (self.low, self.low_inclusive, self.high, self.high_inclusive)


def parse_timestamp(text: str) -> int:
    """ISO 8601 instant (`Z` or offset, with or without fraction) -> epoch ms. Naive means UTC."""
    value = text.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        raise ValueError(text)
    moment = datetime.fromisoformat(value.replace("z", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def split_top_level(text: str, sep: str = ";") -> list[str]:
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _convert(kind: str, raw: str) -> Any:
    value = _unquote(raw)
    if kind == "ts":
        return parse_timestamp(value)
    if kind == "id":
        if not re.fullmatch(r"[+-]?\d+", value):
            raise ValueError(value)
        return int(value)
    return value


def compile_filter(text: str, fields: dict[str, FieldSpec]) -> Filter:
    """Parse `text` against `fields` (lower-cased key -> spec)."""
    result = Filter()
    if not text or not text.strip():
        return result
    for constraint in split_top_level(text):
        _add_constraint(result, constraint, fields)
    return result


def _add_constraint(result: Filter, constraint: str, fields: dict[str, FieldSpec]) -> None:
    stripped = constraint.strip()
    match = _KEY.match(stripped)
    if not match:
        raise FilterError(f"Invalid filter expression: {constraint}")
    key = match.group(0)
    rest = stripped[match.end():]
    op = next((candidate for candidate in OPERATORS if rest.startswith(candidate)), None)
    if op is None:
        odd = _ODD_OP.match(rest)
        if odd and odd.group(0):
            raise FilterError(f"Invalid filter operator: {odd.group(0)}")
        raise FilterError(f"Invalid filter expression: {constraint}")
    spec = fields.get(key.lower())
    if spec is None:
        raise FilterError(f"Invalid filter field: {key}")
    raw = rest[len(op):]
    if op in ORDERING and spec.kind == "str":
        raise FilterError(f"Invalid filter operator: {op}")
    try:
        if op == "=in=":
            inner = raw.strip()
            if not (inner.startswith("(") and inner.endswith(")")) or not inner[1:-1].strip():
                raise ValueError(raw)
            values = frozenset(_convert(spec.kind, part) for part in split_top_level(inner[1:-1], ","))
        else:
            if raw.strip() == "" or raw.strip().startswith("("):
                raise ValueError(raw)
            value = _convert(spec.kind, raw)
    except ValueError:
        raise FilterError(f"Invalid filter expression: {constraint}") from None
    get = spec.get
    if spec.stamp:
        result.by_stamp = True
    if op == "=in=":
        result.predicates.append(lambda r, get=get, values=values: get(r) in values)
        return
    if spec.stamp and op in ("==", "=gt=", ">", "=ge=", ">=", "=lt=", "<", "=le=", "<="):
        _narrow(result, ORDERING.get(op, "eq"), value)
        return
    if op == "==":
        result.predicates.append(lambda r, get=get, value=value: get(r) == value)
    elif op == "!=":
        result.predicates.append(lambda r, get=get, value=value: get(r) != value)
    else:
        compare = {
            "gt": lambda a, b: a is not None and a > b,
            "ge": lambda a, b: a is not None and a >= b,
            "lt": lambda a, b: a is not None and a < b,
            "le": lambda a, b: a is not None and a <= b,
        }[ORDERING[op]]
        result.predicates.append(lambda r, get=get, value=value, compare=compare: compare(get(r), value))


def _narrow(result: Filter, op: str, value: int) -> None:
    """Intersect the last-modified range with `op value`."""
    result.by_stamp = True
    if op in ("gt", "ge", "eq"):
        inclusive = op != "gt"
        if result.low is None or value > result.low or (value == result.low and not inclusive):
            result.low, result.low_inclusive = value, inclusive
    if op in ("lt", "le", "eq"):
        inclusive = op != "lt"
        if result.high is None or value < result.high or (value == result.high and not inclusive):
            result.high, result.high_inclusive = value, inclusive
