"""Both ways: a JAGGAER → SAP B1 pipeline and the SAP B1 → JAGGAER pipeline that writes the same objects back
(`pair:` in the latter's YAML), without echoes, with conflicts settled by policy and with field ownership.

    # pipelines/suppliers_to_jaggaer.yaml
    pair:
      with: suppliers                       # the JAGGAER -> SAP B1 pipeline of the same suppliers
      fields: {fiscalCode: FederalTaxID, standardPaymentTermsCode: PayTermsGrpCode, ...}
    conflicts: newest_wins                  # or {default: b1_wins, fields: {bizEmail: jaggaer_wins}}
    owned_by: {fiscalCode: b1, standardPaymentTermsCode: jaggaer}

**The last-synced base of each side** is the ledger payload of the pipeline that reads that side, kept by
the ordinary ledger rules (committed with each write's outcome, refreshed when nothing needs writing):

- JAGGAER's side: the `suppliers` row of the bravoId — the company profile as last synced, rendered into
  SAP B1 fields (`JB`).
- SAP B1's side: the `suppliers_to_jaggaer` row of the CardCode — the business partner as last synced,
  rendered into JAGGAER fields (`BJ`).

**A side changed a synced field** when its current value differs from its own base *and* from what the
other direction last synced into it:

    JAGGAER changed f   <=>  render(J now)[f] != JB[f]   and  J now[f] != BJ[f]
    SAP B1 changed f    <=>  render(B now)[f] != BJ[f]   and  B now[f] != JB[f]

The second half is the echo suppression: a value we wrote ourselves (B1's copy of what the JAGGAER → B1
write sent, or JAGGAER's copy of what the UPDATE sent) equals the other direction's base, so reading it
back is no change, even after a crash between the write and the next read. A business partner seen from
the SAP B1 side for the first time (no `BJ` yet) has changed only where it differs from a value JAGGAER
gave it (`JB`); everything else is taken as the baseline, so enabling the write-back sends nothing.

**What is written**: a change goes to the other side unless that side holds the value already. A field
changed on both sides to different values is a conflict: the owner wins when the field has one, else the
policy (`jaggaer_wins`, `b1_wins`, `newest_wins`: the record changed last, JAGGAER's `lastModTime` against
SAP B1's `UpdateDate`/`UpdateTime` in the source's time zone; a tie goes to JAGGAER). A change of an owned
field from the other side is not propagated. Conflicts and refused changes are recorded with both values
in the `conflicts` table (`ml-connector audit conflicts`) and named in the run report.

Both pipelines' plans are filtered here (`TwoWay.to_b1`, `TwoWay.to_jaggaer`) before anything is sent;
the filters decide from the same inputs, so they agree. The runner reads both sides' changes before the
first write of a run, and SAP B1's again before the write-back (it then sees the run's own B1 writes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.pairs import COMPANY_INFO, SIDES, FieldPair, Pair
from engine.state import conflicts, db

IDENTITY = "bravoId"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def norm(value: Any) -> Any:
    """Values as compared across sides: an empty string is no value."""
    if value is None or value == "":
        return None
    return value


def _differ(a: Any, b: Any) -> bool:
    return norm(a) != norm(b)


# ---------------------------------------------------------------- one object seen from both sides


@dataclass
class Sides:
    """One object (a bravoId and its CardCode) from both sides, with both bases."""

    jaggaer_id: str | None
    b1_key: str | None
    j_now: Mapping[str, Any] | None = None  # JAGGAER's record (companyInfo), as staged
    j_rendered: Mapping[str, Any] | None = None  # it rendered into SAP B1 fields (JAGGAER -> B1 mapping)
    j_base: Mapping[str, Any] | None = None  # JB: the JAGGAER -> B1 ledger payload (B1 fields)
    j_stamp: str | None = None  # lastModTime (UTC)
    b_now: Mapping[str, Any] | None = None  # SAP B1's record, as staged
    b_rendered: Mapping[str, Any] | None = None  # it rendered into JAGGAER fields (B1 -> JAGGAER mapping)
    b_base: Mapping[str, Any] | None = None  # BJ: the B1 -> JAGGAER ledger payload (JAGGAER fields)
    b_stamp: str | None = None  # UpdateDate/UpdateTime (company-local)


@dataclass
class Decision:
    """What happens with one synced field of one object."""

    field: FieldPair
    j_changed: bool
    b_changed: bool
    to_b1: bool = False  # JAGGAER's value goes to SAP B1
    to_jaggaer: bool = False  # SAP B1's value goes to JAGGAER
    finding: Finding | None = None


@dataclass(frozen=True)
class Finding:
    """A conflict (changed on both sides) or a change refused because the other side owns the field."""

    pair: str
    jaggaer_id: str | None
    b1_key: str | None
    field: str
    b1_field: str | None
    kind: str  # conflict | not_owner
    changed_on: str  # jaggaer | b1 | both
    jaggaer_value: Any
    b1_value: Any
    policy: str
    winner: str
    jaggaer_stamp: str | None = None
    b1_stamp: str | None = None

    @property
    def message(self) -> str:
        j, b = _show(self.jaggaer_value), _show(self.b1_value)
        if self.kind == "conflict":
            return (f"{self.field} changed on both sides (JAGGAER {j}, SAP B1 {b}): {self.policy} -> "
                    f"{SIDES[self.winner]}'s value kept")
        loser = "b1" if self.winner == "jaggaer" else "jaggaer"
        theirs, kept = (j, b) if loser == "jaggaer" else (b, j)
        return (f"{self.field} is owned by {SIDES[self.winner]}: {SIDES[loser]}'s change to {theirs} is not "
                f"propagated ({SIDES[self.winner]} keeps {kept})")

    @property
    def ref(self) -> str:
        return str(self.jaggaer_id if self.jaggaer_id is not None else self.b1_key)


def _show(value: Any) -> str:
    return "(none)" if norm(value) is None else repr(value)


# ---------------------------------------------------------------- the filters


class Rules:
    """The rule of the module text for one pair: `decide` what happens with a synced field of one object."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.tz = pair.tzinfo()

    # -- the rule -----------------------------------------------------------------------------------

    def decide(self, s: Sides, fp: FieldPair) -> Decision:
        """Changed on which side, and where the value goes (module text)."""
        jn = _get(s.j_now, fp.jaggaer)
        jr = _get(s.j_rendered, fp.b1)
        jb = _get(s.j_base, fp.b1)
        bn = _get(s.b_now, fp.b1)
        br = _get(s.b_rendered, fp.jaggaer)
        bb = _get(s.b_base, fp.jaggaer)
        j_changed = (jr is not MISSING and jb is not MISSING and _differ(jr, jb)
                     and (bb is MISSING or jn is MISSING or _differ(jn, bb)))
        if bb is not MISSING:
            b_changed = br is not MISSING and _differ(br, bb) and (jb is MISSING or bn is MISSING or _differ(bn, jb))
        else:  # first seen from SAP B1: changed only where it differs from a value JAGGAER gave it
            b_changed = bn is not MISSING and jb is not MISSING and norm(jb) is not None and _differ(bn, jb)
        decision = Decision(fp, j_changed, b_changed)
        b1_holds = bn is not MISSING and jr is not MISSING and not _differ(bn, jr)
        jaggaer_holds = jn is not MISSING and br is not MISSING and not _differ(jn, br)
        owner = self.pair.owner(fp.jaggaer)
        if j_changed and b_changed:
            if b1_holds or jaggaer_holds:
                return decision  # both sides made the same change
            if owner is not None:
                winner, policy, kind = owner, f"owned_by:{owner}", "not_owner"
            else:
                policy, kind = self.pair.policy(fp), "conflict"
                winner = self._winner(policy, s)
            decision.finding = self._finding(s, fp, kind, "both", policy, winner, jn, bn)
            decision.to_b1 = winner == "jaggaer"
            decision.to_jaggaer = winner == "b1"
        elif j_changed:
            if owner == "b1":
                decision.finding = self._finding(s, fp, "not_owner", "jaggaer", "owned_by:b1", "b1", jn, bn)
            else:
                decision.to_b1 = not b1_holds
        elif b_changed:
            if owner == "jaggaer":
                decision.finding = self._finding(s, fp, "not_owner", "b1", "owned_by:jaggaer", "jaggaer", jn, bn)
            else:
                decision.to_jaggaer = not jaggaer_holds
        return decision

    def _winner(self, policy: str, s: Sides) -> str:
        if policy == "jaggaer_wins":
            return "jaggaer"
        if policy == "b1_wins":
            return "b1"
        j_ms, b_ms = self._j_ms(s.j_stamp), self._b_ms(s.b_stamp)
        if j_ms is None or b_ms is None:
            return "b1" if j_ms is None and b_ms is not None else "jaggaer"
        return "b1" if b_ms > j_ms else "jaggaer"

    @staticmethod
    def _j_ms(stamp: str | None) -> int | None:
        from engine.jaggaer.keyset import stamp_ms

        try:
            return stamp_ms(stamp) if stamp else None
        except ValueError:
            return None

    def _b_ms(self, stamp: str | None) -> int | None:
        from engine.sapb1.changes import stamp_datetime

        if not stamp:
            return None
        try:
            local = stamp_datetime(stamp)
        except ValueError:
            return None
        if self.tz is not None:
            local = local.replace(tzinfo=self.tz)
        return int(local.timestamp() * 1000)  # a naive datetime: this machine's local time

    def _finding(self, s: Sides, fp: FieldPair, kind: str, changed_on: str, policy: str, winner: str,
                 jaggaer_value: Any, b1_value: Any) -> Finding:
        return Finding(self.pair.name, s.jaggaer_id, s.b1_key, fp.jaggaer, fp.b1, kind, changed_on,
                       None if jaggaer_value is MISSING else jaggaer_value, None if b1_value is MISSING else b1_value,
                       policy, winner, s.j_stamp, s.b_stamp)

    def _one_sided(self, s: Sides, name: str, b1_field: str | None, changed_on: str, *, patch_value: Any) -> Finding:
        """A field outside `pair.fields` that one side changed although the other owns it; `patch_value` is the
        changing side's value as it would have been written."""
        if changed_on == "jaggaer":
            owner, j_value, b_value = "b1", patch_value, _get(s.b_now, name)
        else:
            owner, j_value, b_value = "jaggaer", _get(s.j_now, name), patch_value
        return Finding(self.pair.name, s.jaggaer_id, s.b1_key, name, b1_field, "not_owner", changed_on,
                       None if j_value is MISSING else j_value, None if b_value is MISSING else b_value,
                       f"owned_by:{owner}", owner, s.j_stamp, s.b_stamp)


class TwoWay(Rules):
    """The both-ways rules of one pair for one run: filters for both pipelines' plans, findings recorded once."""

    def __init__(self, pair: Pair, root: Path | str, state: Path | str, *,
                 reference_codes: Mapping[str, Any] | None = None) -> None:
        from engine.mapping import load_mapping

        super().__init__(pair)
        self.root = Path(root)
        self.state = Path(state)
        self.to_b1_mapping = load_mapping(self.root / pair.jaggaer_mapping, project_root=self.root)
        self.to_jaggaer_mapping = load_mapping(self.root / pair.b1_mapping, project_root=self.root)
        self.reference_codes = reference_codes
        self._reported: set[tuple[Any, ...]] = set()
        self.findings: list[Finding] = []  # this run's, in the order found

    # -- JAGGAER -> SAP B1 ------------------------------------------------------------------------

    def to_b1(self, plan: Any, run_id: str) -> list[Finding]:
        """Filter the JAGGAER → B1 plan's updates: keep a synced field only when JAGGAER changed it, SAP B1 does
        not hold it already and no conflict or owner says otherwise; drop fields SAP B1 owns. An update left
        with nothing to send becomes a skip (its changes kept, so the ledger takes the new base)."""
        items = [i for i in plan.items if i.pipeline == self.pair.jaggaer_pipeline and i.action == "update"
                 and i.patch and i.payload is not None]
        if not items:
            return []
        links = [(str(i.external_ref), _b1_key_of(i)) for i in items]
        sides = self._sides(links, j_rendered={str(i.external_ref): i.payload for i in items})
        found: list[Finding] = []
        for item, link in zip(items, links, strict=True):
            s = sides[link]
            patch = dict(item.patch)
            for name in list(patch):
                if name.startswith("_"):
                    continue
                fp = self.pair.by_b1(name)
                if fp is None:
                    if self.pair.owner(name) == "b1":
                        del patch[name]
                        found.append(self._one_sided(s, name, name, "jaggaer", patch_value=item.payload.get(name)))
                    continue
                decision = self.decide(s, fp)
                if decision.finding is not None and decision.j_changed:
                    found.append(decision.finding)
                if not decision.to_b1:
                    del patch[name]
            if any(not k.startswith("_") for k in patch):
                item.patch = patch
            else:
                item.action, item.patch = "skip", None
                item.reason = "nothing to send: SAP B1 holds it already, or it is SAP B1's (conflict or owner)"
        return self._record(found, run_id)

    # -- SAP B1 -> JAGGAER ------------------------------------------------------------------------

    def to_jaggaer(self, plan: Any, run_id: str) -> list[Finding]:
        """Turn the B1 → JAGGAER plan's creates and updates into UPDATE bodies of the fields SAP B1 changed,
        JAGGAER does not hold already, and no conflict or owner keeps out. Nothing to send: a skip (the first
        sight of a business partner is its baseline)."""
        items = [i for i in plan.items if i.pipeline == self.pair.name and i.action in ("create", "update")
                 and i.payload is not None]
        if not items:
            return []
        links = [(_jaggaer_id_of(i), str(i.external_ref)) for i in items]
        sides = self._sides(links, b_rendered={str(i.external_ref): _company_info(i.payload) for i in items})
        found: list[Finding] = []
        for item, link in zip(items, links, strict=True):
            s = sides[link]
            info = _company_info(item.payload)
            send: dict[str, Any] = {}
            for name, value in info.items():
                if name == IDENTITY:
                    continue
                fp = self.pair.by_jaggaer(name)
                if fp is None:  # written back only: changed since the last sync, JAGGAER lacks it, not owned
                    changed = s.b_base is None or _differ(value, s.b_base.get(name))
                    if changed and self.pair.owner(name) == "jaggaer":
                        found.append(self._one_sided(s, name, None, "b1", patch_value=value))
                    elif changed and s.b_base is not None and (s.j_now is None or _differ(s.j_now.get(name), value)):
                        send[name] = value
                    continue
                decision = self.decide(s, fp)
                if decision.finding is not None and decision.b_changed:
                    found.append(decision.finding)
                if decision.to_jaggaer and norm(value) is not None:
                    send[name] = value
            item.target_key = link[0]
            if send:
                company = dict(item.payload.get(COMPANY_INFO[0]) or {})
                company[COMPANY_INFO[1]] = {IDENTITY: info.get(IDENTITY), **send}
                item.action, item.patch = "update", {**item.payload, COMPANY_INFO[0]: company}
            else:
                item.action, item.patch = "skip", None
                item.reason = ("baseline: first seen from SAP B1" if s.b_base is None else
                               "nothing to send: JAGGAER holds it already, or it is JAGGAER's (conflict or owner)")
        return self._record(found, run_id)

    # -- loading both sides -----------------------------------------------------------------------

    def _sides(self, links: Sequence[tuple[str | None, str | None]], *,
               j_rendered: Mapping[str, Any] | None = None, b_rendered: Mapping[str, Any] | None = None,
               ) -> dict[tuple[str | None, str | None], Sides]:
        """Both sides of each (jaggaer id, B1 key): staged records, renderings, ledger bases; a rendering the
        caller has (its plan's payloads) is taken as it is, the other side's is rendered here."""
        from engine.mapping.core import Lookups
        from engine.state import ledger
        from engine.state.staging import iter_staged

        j_ids = sorted({j for j, _ in links if j is not None})
        b_keys = sorted({b for _, b in links if b is not None})
        with db.connect(self.state) as conn:
            j_records = dict(iter_staged(conn, self.pair.jaggaer_pipeline, keys=j_ids))
            b_records = dict(iter_staged(conn, self.pair.name, keys=b_keys))
            j_rows = ledger.ledger_rows(conn, self.pair.jaggaer_pipeline, j_ids)
            b_rows = ledger.ledger_rows(conn, self.pair.name, b_keys)
            crosswalk = ledger.load_crosswalk(conn)
        lookups = Lookups(crosswalk=crosswalk, reference_codes=self.reference_codes)
        out: dict[tuple[str | None, str | None], Sides] = {}
        for j_id, b_key in links:
            s = Sides(j_id, b_key)
            if j_id is not None and (j_record := j_records.get(j_id)) is not None:
                s.j_now = _dig(j_record, "returnCompanyInfo") or {}
                s.j_stamp = s.j_now.get("lastModTime")
                if j_rendered is not None and j_id in j_rendered:
                    s.j_rendered = j_rendered[j_id]
                else:
                    result = self.to_b1_mapping.render(j_record, j_id, lookups=lookups)
                    s.j_rendered = result.payload if result.ok else None
            if b_key is not None and (b_record := b_records.get(b_key)) is not None:
                from engine.sapb1.changes import stamp_of

                s.b_now = b_record
                try:
                    s.b_stamp = stamp_of(b_record)
                except ValueError:
                    s.b_stamp = None
                if b_rendered is not None and b_key in b_rendered:
                    s.b_rendered = b_rendered[b_key]
                else:
                    result = self.to_jaggaer_mapping.render(b_record, b_key, lookups=lookups)
                    s.b_rendered = _company_info(result.payload) if result.ok else None
            j_row = j_rows.get(j_id) if j_id is not None else None
            if j_row is not None and j_row.payload is not None and j_row.target_key:
                s.j_base = j_row.payload
            b_row = b_rows.get(b_key) if b_key is not None else None
            if b_row is not None and b_row.payload is not None:
                s.b_base = _company_info(b_row.payload)
            out[(j_id, b_key)] = s
        return out

    # -- recording ----------------------------------------------------------------------------------

    def _record(self, found: list[Finding], run_id: str) -> list[Finding]:
        """Findings not reported yet in this run: into the `conflicts` table (once per object, field, kind and
        values across runs) and returned for the run report."""
        fresh = []
        for f in found:
            key = (f.jaggaer_id, f.b1_key, f.field, f.kind, conflicts.value_json(f.jaggaer_value), conflicts.value_json(f.b1_value))
            if key not in self._reported:
                self._reported.add(key)
                fresh.append(f)
        if fresh:
            with db.connect(self.state) as conn:
                conflicts.record(conn, run_id, fresh)
        self.findings += fresh
        return fresh


# ---------------------------------------------------------------- helpers


def _get(record: Mapping[str, Any] | None, name: str) -> Any:
    if record is None:
        return MISSING
    return norm(record.get(name))


def _dig(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else None


def _company_info(payload: Any) -> dict[str, Any]:
    company = _dig(payload, COMPANY_INFO[0])
    info = _dig(company, COMPANY_INFO[1])
    return dict(info) if isinstance(info, Mapping) else {}


def _b1_key_of(item: Any) -> str | None:
    key = (item.payload or {}).get("CardCode") or item.target_key
    return None if key is None else str(key)


def _jaggaer_id_of(item: Any) -> str | None:
    value = _company_info(item.payload).get(IDENTITY)
    return None if value is None else str(value)
