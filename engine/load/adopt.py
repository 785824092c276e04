"""Adopting a record found in B1 by its external reference: compare, then send only the difference.

A create whose reference B1 already holds (a crash before the answer was recorded, a lost state file,
a second project, a duplicate answer) is not simply marked synced: what B1 holds may be an older
rendering (the source changed meanwhile). `held_shape` reads B1's entity into the shape of the planned
payload — the same fields, lines matched by the line map, members by their identity — so that
`engine.plan.diff(held, planned)` yields the ordinary PATCH (changed fields only, lines by LineNum).
An empty PATCH: adopted as it is. Otherwise the create becomes an update of that difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.load.closed import same
from engine.plan import IDENTITY, MEMBER_NUMBER
from engine.sapb1.entities import ENTITIES


def comparable(planned: Mapping[str, Any], target: Any) -> dict[str, Any]:
    """The part of the planned payload compared with what B1 holds: all of it, but the lines of an entity
    whose lines the loader derives (an invoice's are copies of PO or goods-receipt lines; a posted
    invoice's lines cannot change anyway)."""
    profile = ENTITIES.get(target.entity_set)
    if profile is not None and profile.lines_derived and target.lines_field:
        return {k: v for k, v in planned.items() if k != target.lines_field}
    return dict(planned)


def select_fields(payload: Mapping[str, Any], key_field: str) -> list[str]:
    """The `$select` that reads what the planned payload would set (top-level properties and the key)."""
    return list(dict.fromkeys([key_field, *(k for k in payload if not k.startswith("_"))]))


def held_shape(planned: Mapping[str, Any], have: Mapping[str, Any], line_map: Mapping[str, int]) -> dict[str, Any]:
    """B1's entity `have` restricted to the planned payload's fields; a value B1 holds in another notation
    (a date with a time, 5 for 5.0) takes the planned value, so that only real differences remain."""
    out: dict[str, Any] = {}
    for name, value in planned.items():
        if name.startswith("_"):
            out[name] = value  # reserved keys are ours, never in B1
            continue
        if name not in have:
            continue  # not read back: the diff sends it
        current = have[name]
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[name] = held_shape(value, current, line_map)
        elif isinstance(value, list) and _keyed(value) and isinstance(current, list):
            out[name] = _members(name, value, current, line_map)
        else:
            out[name] = value if same(current, value) else current
    return out


def _members(name: str, planned: list[Any], current: list[Any], line_map: Mapping[str, int]) -> list[dict[str, Any]]:
    """The B1 members matching planned ones (by line number from the line map, else by identity fields),
    each shaped like its planned member and carrying its `_key`."""
    number = MEMBER_NUMBER.get(name)
    identity = IDENTITY.get(name, ())
    by_number = {m.get(number): m for m in current if isinstance(m, Mapping)} if number else {}
    out = []
    for member in planned:
        key = str(member["_key"])
        match = None
        if number and key in line_map:
            match = by_number.get(line_map[key])
        elif identity:
            match = next((m for m in current if isinstance(m, Mapping)
                          and all(same(m.get(f), member.get(f)) for f in identity)), None)
        if match is not None:
            out.append(held_shape(member, match, line_map))
    return out


def _keyed(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(m, Mapping) and "_key" in m for m in items)
