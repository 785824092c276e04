"""Filters and functions available inside mapping expressions.

Filters (`value | name(args)`):
  b1_date            J1P timestamp/date -> B1 date ("2024-05-02" on v1, "2024-05-02T00:00:00Z" on v2)
  decimal(places)    number or numeric string -> float rounded half-up (places default 6)
  integer            number or numeric string -> int
  enum(table, default?)  look a value up in a dict; an unknown value rejects the record
  b1_bool            "true"/"false"/bool -> "tYES"/"tNO"
  b1_truncate(n)     cut a string to n characters
  blank_to_none      "" or whitespace -> None (the field is then left out)
  custom_field(name) value of a J1P customFieldValueSet by name (None when empty)
  splits             J1P accounting split of a header/line -> [{segment: value, ..., "share": pct}]
  primary_split      the split with the largest share (segments merged per split index)
  address_text       J1P address -> its address lines joined with ", "
  dig(path, default) nested value by dotted path, default (None) when any step is missing
  cost_split         "PLANT1:60|PLANT2:40" for a line split over several cost centres, "" otherwise

Functions:
  crosswalk(type, jaggaer_id)        B1 key of an object synced earlier; WAITs the record when missing
  rule(table, input=value, ...)      outputs of the first matching row of mappings/rules/<table>.csv
  base_document(po_number, line)     link of an invoice line to a PO line (reserved `_base`, resolved by
                                     the loader); WAITs while the PO is not in B1
  jaggaer_id(type, b1_key)           reverse crosswalk (None when the B1 object is not from JAGGAER)
  wait(reason) / reject(reason)      make the record wait / quarantine it explicitly
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson
from jinja2 import pass_context
from jinja2.runtime import Context, Undefined

from engine.rules import InvalidCode, RuleMiss


class WaitSignal(Exception):
    """The record depends on something not synced yet: retry it next run (not a failure)."""


class RejectSignal(Exception):
    """The record cannot be mapped as it is: quarantine it with this reason."""


class ValueProblem(RejectSignal):
    """A filter could not convert a source value."""


LOOKUPS_VAR = "_lookups"
API_VERSION_VAR = "_api_version"

_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def _lookups(context: Context) -> Any:
    found = context.get(LOOKUPS_VAR)
    if found is None:
        raise RuntimeError("mapping rendered without lookups")  # programming error: Mapping.render sets it
    return found


def _defined(value: Any) -> bool:
    return value is not None and not isinstance(value, Undefined)


@pass_context
def b1_date(context: Context, value: Any, version: str | None = None) -> str | None:
    if not _defined(value) or value == "":
        return None
    version = version or context.get(API_VERSION_VAR) or "v2"
    if isinstance(value, datetime):
        d = value.date()
    elif isinstance(value, date):
        d = value
    else:
        m = _DATE.match(str(value).strip())
        if not m:
            raise ValueProblem(f"{value!r} is not a date (expected e.g. 2024-05-02T00:00:00.000Z, 2024-05-02 or 20240502)")
        try:
            d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise ValueProblem(f"{value!r} is not a valid calendar date") from None
    return d.isoformat() if version == "v1" else f"{d.isoformat()}T00:00:00Z"


def decimal(value: Any, places: int = 6) -> float | None:
    if not _defined(value) or value == "":
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"{value!r} is not a number")
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueProblem(f"{value!r} is not a number") from None
    if not d.is_finite():
        raise ValueProblem(f"{value!r} is not a finite number")
    return float(d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def integer(value: Any) -> int | None:
    if not _defined(value) or value == "":
        return None
    number = decimal(value, 6)
    if number is None or not float(number).is_integer():
        raise ValueProblem(f"{value!r} is not a whole number")
    return int(number)


_MISSING = object()


def enum(value: Any, table: Mapping[Any, Any], default: Any = _MISSING) -> Any:
    if _defined(value) and value in table:
        return table[value]
    if default is not _MISSING:
        return default
    allowed = ", ".join(repr(k) for k in table)
    raise ValueProblem(f"{value!r} is not one of the mapped values ({allowed})")


def b1_bool(value: Any) -> str | None:
    if not _defined(value) or value == "":
        return None
    text = str(value).strip().lower()
    if text in ("true", "1", "y", "yes", "tyes"):
        return "tYES"
    if text in ("false", "0", "n", "no", "tno"):
        return "tNO"
    raise ValueProblem(f"{value!r} is not a boolean")


def b1_truncate(value: Any, length: int) -> Any:
    if isinstance(value, str) and len(value) > length:
        return value[:length]
    return value


def blank_to_none(value: Any) -> Any:
    if not _defined(value) or (isinstance(value, str) and not value.strip()):
        return None
    return value


def custom_field(obj: Any, name: str) -> Any:
    """The first value of the J1P custom field `name` on a header or line (None when absent or empty)."""
    if not isinstance(obj, Mapping):
        return None
    sets = (obj.get("customFieldValueSetList") or {}).get("customFieldValueSet") or []
    for entry in sets:
        if entry.get("name") == name:
            values = (entry.get("customFieldValueList") or {}).get("customFieldValue") or []
            for v in values:
                if isinstance(v, Mapping) and v.get("value") not in (None, ""):
                    return v["value"]
            return None
    return None


def splits(obj: Any) -> list[dict[str, Any]]:
    """The accounting split of a J1P header or line (J1P §5.5): one dict per split index of the first
    group, segments merged across the group's index sets, plus `share` (percent, 100 when unsplit)."""
    if not isinstance(obj, Mapping):
        return []
    groups = (obj.get("splittableFieldSetGroupList") or {}).get("splittableFieldSetGroup") or []
    if not groups:
        return []
    merged: dict[int, dict[str, Any]] = {}
    for index_set in groups[0].get("splittableFieldIndexSet") or []:
        indexes = (index_set.get("splittableFieldIndexList") or {}).get("splittableFieldIndex") or []
        for position, index in enumerate(indexes):
            split_no = index.get("splitIndex", position)
            entry = merged.setdefault(split_no, {"split_index": split_no, "share": None})
            if index.get("distributionValue") is not None:
                entry["share"] = index["distributionValue"]
            for seg in (index.get("customFieldValueList") or {}).get("customFieldValue") or []:
                if isinstance(seg, Mapping) and seg.get("internalName") and seg.get("value") not in (None, ""):
                    entry.setdefault(seg["internalName"], seg["value"])
    result = [merged[k] for k in sorted(merged)]
    if len(result) == 1 and result[0]["share"] is None:
        result[0]["share"] = 100
    return result


def primary_split(obj: Any) -> dict[str, Any]:
    """The split carrying the largest share (the first on a tie); `{}` when the object has none."""
    found = splits(obj)
    if not found:
        return {}
    return max(found, key=lambda s: (float(s["share"] or 0), -found.index(s)))


def dig(obj: Any, path: str, default: Any = None) -> Any:
    """`obj | dig('a.b.c')`: a nested value, or `default` when any step is missing (no error)."""
    for part in str(path).split("."):
        if isinstance(obj, Mapping) and part in obj and obj[part] is not None:
            obj = obj[part]
        elif isinstance(obj, list | tuple) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return default
    return obj


def cost_split(obj: Any, segment: str = "CostCenter") -> str:
    """Canonical text of a split over several cost centres, e.g. "PLANT1:60|PLANT2:40" ("" when unsplit),
    for rule tables that map a split onto a B1 distribution rule."""
    found = [s for s in splits(obj) if s.get(segment)]
    if len(found) < 2:
        return ""
    parts = sorted(f"{s[segment]}:{_share_text(s['share'])}" for s in found)
    return "|".join(parts)


def _share_text(share: Any) -> str:
    try:
        number = float(share)
    except (TypeError, ValueError):
        return "?"
    return str(int(number)) if number.is_integer() else f"{number:g}"


def address_text(address: Any) -> str | None:
    if not isinstance(address, Mapping):
        return None
    lines = (address.get("addressLineList") or {}).get("addressLine") or []
    parts = [str(x["addressLine"]).strip() for x in sorted(lines, key=lambda x: x.get("lineNumber", 0)) if x.get("addressLine")]
    return ", ".join(parts) or None


@pass_context
def crosswalk(context: Context, object_type: str, jaggaer_id: Any) -> str:
    if not _defined(jaggaer_id) or jaggaer_id == "":
        raise RejectSignal(f"crosswalk('{object_type}', ...): the source value is empty")
    lookups = _lookups(context)
    entry = lookups.crosswalk_entry(object_type, jaggaer_id)
    if entry is None:
        _reject_if_blocked(lookups, object_type, jaggaer_id)
        raise WaitSignal(f"waiting for {object_type} '{jaggaer_id}': not synced to SAP B1 yet")
    return entry.b1_key


def _reject_if_blocked(lookups: Any, object_type: str, jaggaer_id: Any) -> None:
    """A dependency whose own record was set aside (skipped or quarantined) in this run will not reach
    B1 by waiting: the dependant is quarantined, naming the dependency and why."""
    why = lookups.blocked_reason(object_type, jaggaer_id) if hasattr(lookups, "blocked_reason") else None
    if why is not None:
        raise RejectSignal(f"{object_type} '{jaggaer_id}' is missing in SAP B1 and is not being synced ({why})")


@pass_context
def base_document(context: Context, po_number: Any, line_number: Any) -> dict[str, Any]:
    if not _defined(po_number) or po_number == "" or not _defined(line_number) or line_number == "":
        raise RejectSignal("base_document(): the invoice line names no PO number or PO line number")
    po_number, line_number = str(po_number), str(line_number)
    lookups = _lookups(context)
    entry = lookups.crosswalk_entry("purchase_orders", po_number)
    if entry is None:
        _reject_if_blocked(lookups, "purchase_orders", po_number)
        raise WaitSignal(f"waiting for purchase order {po_number}: not synced to SAP B1 yet")
    line_num = (entry.line_map or {}).get(line_number)
    if line_num is None:
        raise WaitSignal(f"waiting for purchase order {po_number} line {line_number}: not in SAP B1 yet")
    link: dict[str, Any] = {"po_number": po_number, "line_number": line_number, "line_num": int(line_num)}
    if str(entry.b1_key).isdigit():
        link["doc_entry"] = int(entry.b1_key)
    return link


@pass_context
def jaggaer_id(context: Context, object_type: str, b1_key: Any) -> str | None:
    """Reverse crosswalk: the JAGGAER id of a B1 object (None when it did not come from JAGGAER)."""
    if not _defined(b1_key):
        return None
    return _lookups(context).jaggaer_id(object_type, b1_key)


@pass_context
def rule(context: Context, table: str, **values: Any) -> dict[str, Any]:
    lookups = _lookups(context)
    values = {k: (None if isinstance(v, Undefined) else v) for k, v in values.items()}
    try:
        return lookups.rule_table(table).apply(lookups.reference_codes, **values)
    except (RuleMiss, InvalidCode) as exc:
        raise RejectSignal(str(exc)) from None


def wait(reason: str) -> None:
    raise WaitSignal(str(reason))


def reject(reason: str) -> None:
    raise RejectSignal(str(reason))


# ---------------------------------------------------------------- control characters
# Applied by `core` to every rendered string (mapping option `control_characters: strip | refuse`):
# C0 controls but TAB/LF/CR, DEL, and the C1 controls U+0080-U+009F never reach SAP B1.

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same characters in orjson's output: escaped (\u0000-\u001f, \b, \f), DEL raw, C1 as UTF-8.
# A superset (a literal backslash-b matches too): it only decides whether a payload is walked.
_CONTROL_IN_JSON = re.compile(rb"\\(?:u00[01]|[bf])|\x7f|\xc2[\x80-\x9f]")


def may_hold_control_characters(payload: Any) -> bool:
    """Cheap check of a whole payload (one serialisation, one search): False means no string in it
    holds a control character."""
    try:
        text = orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: let the caller walk it
        return True
    return _CONTROL_IN_JSON.search(text) is not None


def strip_control_characters(value: str) -> str:
    """`value` without control characters (TAB, LF and CR are kept)."""
    return CONTROL_CHARACTERS.sub("", value) if CONTROL_CHARACTERS.search(value) else value


def describe_control_character(value: str) -> str | None:
    """"U+001B at position 5" (1-based) for the first control character of `value`, None if none."""
    found = CONTROL_CHARACTERS.search(value)
    return None if found is None else f"U+{ord(found.group()):04X} at position {found.start() + 1}"


FILTERS = {
    "b1_date": b1_date,
    "decimal": decimal,
    "integer": integer,
    "enum": enum,
    "b1_bool": b1_bool,
    "b1_truncate": b1_truncate,
    "blank_to_none": blank_to_none,
    "custom_field": custom_field,
    "splits": splits,
    "primary_split": primary_split,
    "address_text": address_text,
    "dig": dig,
    "cost_split": cost_split,
}
GLOBALS = {
    "crosswalk": crosswalk,
    "base_document": base_document,
    "rule": rule,
    "wait": wait,
    "reject": reject,
    "custom_field": custom_field,
    "splits": splits,
    "primary_split": primary_split,
    "jaggaer_id": jaggaer_id,
    "dig": dig,
}
