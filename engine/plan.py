"""Fingerprints, field-level diffs and the plan: what a run would do with each staged record.

Each staged record is rendered with the pipeline's mapping and compared with what the ledger says
was last synced for its external reference:

- no ledger entry (or no B1 key yet)  -> create (the whole payload)
- same fingerprint as last synced      -> skip
- different                            -> update with ONLY the changed fields (a PATCH body)
- the mapping says wait / quarantine / not applicable -> wait / quarantine / ignore (`skip_unless`: the
  ledger keeps it `ignored`, with the mapping's reason, until the record or the mapping changes)
- B1 refused exactly this payload before -> failed (a run does not re-send it; `replay` does)
- B1 refused exactly this payload because the document is closed -> skip (held: not applied, not re-sent)
- an intent left in flight by a crash   -> create/update with `resume` (look it up in B1 first)

PATCH semantics (SL §8.2): properties not sent stay unchanged; collections are MERGED: a member
carrying its identity is updated in place, a member without it is appended. So a changed document
line is sent as `{"LineNum": <from the line map>, "_key": ..., <changed fields>}`, a new line in full
(appended), and a line that disappeared from the source is reported but never deleted. Business
partner addresses carry `AddressName` + `AddressType`. Fields that disappeared are reported, not
cleared. Reserved keys (`_key`, `_base`) stay in the patch for the loader; `strip_reserved` removes them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.mapping.core import CrosswalkEntry, Lookups, MappingFile, strip_reserved

Action = Literal["create", "update", "skip", "wait", "quarantine", "ignore", "failed"]
# a rendering that is not ok -> the plan's action: left out by `skip_unless`, waiting, quarantined
HELD_BACK: dict[str, Action] = {"skip": "ignore", "wait": "wait", "quarantine": "quarantine"}
ACTIONS: tuple[Action, ...] = ("create", "update", "skip", "wait", "quarantine", "ignore", "failed")

# Fields always sent with a changed member / nested object, so B1 (or J1P) can tell which one it is.
IDENTITY: dict[str, tuple[str, ...]] = {
    "BPAddresses": ("AddressName", "AddressType"),
    "company": ("operationCode", "sendEMail"),
    "company.companyInfo": ("bravoId",),
}
# Collection -> the B1 property numbering its members (filled from the ledger's line map).
MEMBER_NUMBER = {"DocumentLines": "LineNum", "BPAddresses": "RowNum"}
_MISSING = object()


def fingerprint(payload: Any) -> str:
    """Stable hash of the canonical JSON of a rendered payload (reserved keys included)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any
    note: str = ""  # e.g. "new line", "removed: not deleted in B1"

    def __str__(self) -> str:
        suffix = f"  ({self.note})" if self.note else ""
        return f"{self.path}: {_show(self.before)} -> {_show(self.after)}{suffix}"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict | list):
        text = json.dumps(strip_reserved(value), default=str, ensure_ascii=False)
        return text if len(text) <= 80 else text[:77] + "..."
    return repr(value)


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any], *, line_map: Mapping[str, int] | None = None
         ) -> tuple[dict[str, Any], list[FieldChange]]:
    """(PATCH body, field-level changes) turning `before` (last synced payload) into `after`."""
    return _diff_obj(before or {}, after, "", line_map or {})


def _diff_obj(before: Mapping[str, Any], after: Mapping[str, Any], path: str, line_map: Mapping[str, int]
              ) -> tuple[dict[str, Any], list[FieldChange]]:
    patch: dict[str, Any] = {}
    changes: list[FieldChange] = []
    for name, new in after.items():
        if name == "_key":
            continue
        here = f"{path}.{name}" if path else name
        old = before.get(name, _MISSING)
        if isinstance(new, Mapping) and isinstance(old, Mapping) and not name.startswith("_"):
            sub_patch, sub_changes = _diff_obj(old, new, here, line_map)
            changes += sub_changes
            if sub_patch:
                patch[name] = {**{k: new[k] for k in IDENTITY.get(_schema_path(here), ()) if k in new}, **sub_patch}
        elif isinstance(new, list) and _keyed(new) and (old is _MISSING or isinstance(old, list)):
            members, sub_changes = _diff_members(old if isinstance(old, list) else [], new, here, name, line_map)
            changes += sub_changes
            if members:
                patch[name] = members
        elif old is _MISSING or new != old:
            patch[name] = new
            changes.append(FieldChange(here, None if old is _MISSING else old, new))
    for name, old in before.items():
        if name not in after and name != "_key":
            changes.append(FieldChange(f"{path}.{name}" if path else name, old, None, "removed at the source: left unchanged in B1"))
    return patch, changes


def _keyed(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(m, Mapping) and "_key" in m for m in items)


def _schema_path(path: str) -> str:
    """`BPAddresses[MAIN]` -> `BPAddresses`, for the IDENTITY table."""
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _diff_members(old: list[Any], new: list[Any], path: str, name: str, line_map: Mapping[str, int]
                  ) -> tuple[list[dict[str, Any]], list[FieldChange]]:
    old_by_key = {str(m["_key"]): m for m in old if isinstance(m, Mapping) and "_key" in m}
    number_field = MEMBER_NUMBER.get(name)
    identity = IDENTITY.get(_schema_path(path), ())
    members: list[dict[str, Any]] = []
    changes: list[FieldChange] = []
    for member in new:
        key = str(member["_key"])
        here = f"{path}[{key}]"
        previous = old_by_key.get(key)
        if previous is None:
            members.append(dict(member))
            changes.append(FieldChange(here, None, member, "new: appended"))
            continue
        sub_patch, sub_changes = _diff_obj(previous, member, here, line_map)
        changes += sub_changes
        if sub_patch:
            entry: dict[str, Any] = {"_key": key}
            if number_field and key in line_map:
                entry[number_field] = line_map[key]
            entry.update({k: member[k] for k in identity if k in member})
            entry.update(sub_patch)
            members.append(entry)
    new_keys = {str(m["_key"]) for m in new}
    for key, member in old_by_key.items():
        if key not in new_keys:
            changes.append(FieldChange(f"{path}[{key}]", member, None, "removed at the source: not deleted in B1"))
    return members, changes


def apply_patch(before: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`before` with a PATCH body of `diff` applied as B1 merges it (§8.2): fields set, nested objects
    merged, collection members matched by `_key` (their B1 number, e.g. LineNum, is not kept: payloads
    carry none) and updated, the others appended. `apply_patch(a, diff(a, b)[0])` is `b`, but for what
    `diff` never sends (removals)."""
    out = dict(before)
    for name, value in patch.items():
        old = out.get(name)
        if isinstance(value, Mapping) and isinstance(old, Mapping) and not name.startswith("_"):
            out[name] = apply_patch(old, value)
        elif isinstance(value, list) and isinstance(old, list) and _keyed(value):
            number = MEMBER_NUMBER.get(name)
            members = [dict(m) if isinstance(m, Mapping) else m for m in old]
            at = {str(m["_key"]): i for i, m in enumerate(members) if isinstance(m, Mapping) and "_key" in m}
            for member in value:
                key = str(member["_key"])
                if key in at:
                    previous = members[at[key]]
                    members[at[key]] = apply_patch(previous, {k: v for k, v in member.items()
                                                              if k != number or k in previous})
                else:
                    at[key] = len(members)
                    members.append({k: v for k, v in member.items() if k != number})
            out[name] = members
        else:
            out[name] = value
    return out


# ---------------------------------------------------------------- the plan


@dataclass
class PlanItem:
    pipeline: str
    external_ref: str
    action: Action
    record_key: str | None = None
    reason: str | None = None
    payload: dict[str, Any] | None = None  # the whole rendered payload (reserved keys included)
    patch: dict[str, Any] | None = None  # update: the changed fields only (reserved keys included)
    changes: list[FieldChange] = field(default_factory=list)
    fingerprint: str | None = None
    mapping_version: str | None = None
    previous_mapping_version: str | None = None
    target_key: str | None = None
    crosswalk_key: str | None = None
    line_map: dict[str, int] | None = None
    resume: bool = False  # an intent of an interrupted run: look it up in B1 before sending
    attempted: bool = False  # a write of this reference was sent (or about to be) in an earlier run
    plan_hash: str | None = None  # of the staged record and mapping version (the ledger keeps it: not re-planned)
    held: bool = False  # skip: B1 refused this very rendering (closed document), the ledger keeps `not_applied`

    @property
    def body(self) -> dict[str, Any] | None:
        """What B1 receives: the payload (create) or the patch (update), reserved keys removed."""
        source = self.patch if self.action == "update" else self.payload
        return None if source is None else strip_reserved(source)


@dataclass
class Plan:
    items: list[PlanItem] = field(default_factory=list)
    mapping_versions: dict[str, str] = field(default_factory=dict)

    def of(self, action: Action, pipeline: str | None = None) -> list[PlanItem]:
        return [i for i in self.items if i.action == action and (pipeline is None or i.pipeline == pipeline)]

    def counts(self, pipeline: str | None = None) -> dict[str, int]:
        found = Counter(i.action for i in self.items if pipeline is None or i.pipeline == pipeline)
        return {a: found.get(a, 0) for a in ACTIONS}

    @property
    def writes(self) -> int:
        return sum(1 for i in self.items if i.action in ("create", "update"))

    def extend(self, other: Plan) -> None:
        self.items += other.items
        self.mapping_versions.update(other.mapping_versions)


def _get(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


LedgerRows = Mapping[str, Any] | Callable[[list[str]], Mapping[str, Any]]
BATCH = 1000


def plan_records(
    pipeline: str,
    mapping: MappingFile,
    records: Iterable[tuple[str, Any]],
    ledger_rows: LedgerRows,
    *,
    lookups: Lookups | None = None,
    replay: bool = False,
    hashes: Mapping[str, str] | None = None,
) -> Plan:
    """The plan for staged `(key, record)` pairs against `ledger_rows` (ref -> LedgerRow or dict; or a
    function giving the rows of a list of refs, asked once per batch of records). Pure."""
    plan = Plan(mapping_versions={pipeline: mapping.version})
    seen: set[str] = set()
    batch: list[tuple[str, Any]] = []
    for key, record in records:
        result = mapping.render(record, key, lookups=lookups)
        ref = result.external_ref or str(key)
        if ref in seen:
            continue
        seen.add(ref)
        batch.append((str(key), result))
        if len(batch) >= BATCH:
            _decide(plan, pipeline, batch, ledger_rows, replay, hashes or {})
            batch = []
    _decide(plan, pipeline, batch, ledger_rows, replay, hashes or {})
    return plan


def _decide(plan: Plan, pipeline: str, batch: list[tuple[str, Any]], ledger_rows: LedgerRows, replay: bool,
            hashes: Mapping[str, str]) -> None:
    if not batch:
        return
    if callable(ledger_rows):
        ledger_rows = ledger_rows([r.external_ref or key for key, r in batch])
    for key, result in batch:
        ref = result.external_ref or key
        row = ledger_rows.get(ref)
        item = PlanItem(pipeline, ref, "skip", record_key=key, mapping_version=result.mapping_version,
                        previous_mapping_version=_get(row, "mapping_version") if row is not None else None,
                        target_key=_get(row, "target_key") if row is not None else None,
                        crosswalk_key=result.crosswalk_key, plan_hash=hashes.get(key))
        plan.items.append(item)
        if result.status != "ok":
            item.action = HELD_BACK[result.status]
            item.reason = result.reason
            continue
        compare(item, result.payload or {}, row, replay=replay)


def compare(item: PlanItem, payload: dict[str, Any], row: Any, *, replay: bool = False) -> PlanItem:
    """Set `item`'s action for a rendered `payload` against its ledger row (None: never synced):
    create, update (with the patch and field changes), skip, or failed (refused before; `replay` re-sends)."""
    item.target_key = _get(row, "target_key") if row is not None else None
    item.payload = payload
    item.fingerprint = fp = fingerprint(payload)
    status = _get(row, "status") if row is not None else None
    item.resume = status == "in_flight"
    item.attempted = row is not None and bool(_get(row, "attempt_fingerprint"))
    if status == "failed" and _get(row, "attempt_fingerprint") == fp and not replay:
        item.action = "failed"
        item.reason = f"SAP B1 refused this payload: {_get(row, 'last_error') or 'see the audit'} (use `replay` once fixed)"
    elif row is None or not item.target_key:
        item.action = "create"
    elif _get(row, "fingerprint") == fp and status != "in_flight":
        item.action = "skip"
    elif status == "not_applied" and _get(row, "attempt_fingerprint") == fp and not replay:
        item.action, item.held = "skip", True
        item.reason = f"not applied: {_get(row, 'last_error') or 'the document is closed in SAP B1'}"
    else:
        item.line_map = _get(row, "line_map") or {}
        patch, changes = diff(_get(row, "payload") or {}, payload, line_map=item.line_map)
        item.changes = changes
        if patch:
            item.action, item.patch = "update", patch
        else:
            item.action = "skip"
            item.reason = "only removals at the source, which are not applied" if changes else None
    return item


def assume_created(plan: Plan, mapping: MappingFile, lookups: Lookups) -> None:
    """Add the crosswalk entries the plan's creates would produce (for planning dependants in one go):
    b1_key `(new)` and line map by position. Only for display: the runner re-plans after loading."""
    if not mapping.crosswalk_type:
        return
    table = dict(lookups.crosswalk.get(mapping.crosswalk_type) or {})
    for item in plan.items:
        if item.action == "create" and item.crosswalk_key and item.crosswalk_key not in table:
            lines = [m for m in (item.payload or {}).get("DocumentLines") or [] if "_key" in m]
            table[item.crosswalk_key] = CrosswalkEntry(
                str((item.payload or {}).get("CardCode", "(new)")) if mapping.target == "BusinessPartners" else "(new)",
                {str(m["_key"]): i for i, m in enumerate(lines)} or None,
            )
    lookups.crosswalk = {**lookups.crosswalk, mapping.crosswalk_type: table}
    lookups._reverse.clear()
