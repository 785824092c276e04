"""Both-ways pairs, as configured: a SAP B1 -> JAGGAER pipeline's `pair`, `conflicts` and `owned_by`
settings, checked against the partner pipeline and the payload schemas (`pair_problems`, for `validate`),
and resolved into `Pair`s for a run (`load_pairs`). The rules applying them live in `engine.bidirectional`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import ConfigError
from engine.spec import Pipeline

POLICIES = ("jaggaer_wins", "b1_wins", "newest_wins")
SIDES = {"jaggaer": "JAGGAER", "b1": "SAP B1"}
DEFAULT_POLICY = "newest_wins"
COMPANY_INFO = ("company", "companyInfo")


@dataclass(frozen=True)
class FieldPair:
    jaggaer: str  # JAGGAER companyInfo field
    b1: str  # SAP B1 field


@dataclass(frozen=True)
class Pair:
    """The both-ways settings of a SAP B1 → JAGGAER pipeline (`name`) and its JAGGAER → SAP B1 partner."""

    name: str  # the SAP B1 -> JAGGAER pipeline (its YAML holds the settings)
    jaggaer_pipeline: str  # `pair.with`: the JAGGAER -> SAP B1 pipeline
    fields: tuple[FieldPair, ...]
    default_policy: str = DEFAULT_POLICY
    policies: Mapping[str, str] = field(default_factory=dict)  # JAGGAER field name -> policy
    owners: Mapping[str, str] = field(default_factory=dict)  # field name (either side's) -> jaggaer | b1
    timezone: str | None = None  # of SAP B1's stamps; None: this machine's
    b1_mapping: str = ""  # mapping files (relative to the project root)
    jaggaer_mapping: str = ""

    @property
    def names(self) -> tuple[str, str]:
        """Both pipelines: SAP B1 -> JAGGAER, then JAGGAER -> SAP B1."""
        return self.name, self.jaggaer_pipeline

    def by_jaggaer(self, name: str) -> FieldPair | None:
        return next((f for f in self.fields if f.jaggaer == name), None)

    def by_b1(self, name: str) -> FieldPair | None:
        return next((f for f in self.fields if f.b1 == name), None)

    def owner(self, name: str) -> str | None:
        """Who owns a field, named by either side (a synced pair is owned as one)."""
        if name in self.owners:
            return self.owners[name]
        pair = self.by_jaggaer(name) or self.by_b1(name)
        if pair is None:
            return None
        return self.owners.get(pair.jaggaer) or self.owners.get(pair.b1)

    def policy(self, pair: FieldPair) -> str:
        return self.policies.get(pair.jaggaer) or self.policies.get(pair.b1) or self.default_policy

    def tzinfo(self) -> Any:
        """The zone of SAP B1's stamps; None: this machine's local time (daylight saving time included)."""
        if self.timezone:
            try:
                return ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"pipelines/{self.name}.yaml: source.timezone: unknown time zone "
                                  f"{self.timezone!r}") from None
        return None


def load_pairs(pipelines: Iterable[Pipeline]) -> dict[str, Pair]:
    """The both-ways pairs among validated pipelines (`engine.project.check_project` has checked their
    settings with `pair_problems`), by the name of each of their two pipelines."""
    by_name = {p.name: p for p in pipelines}
    out: dict[str, Pair] = {}
    for pipeline in by_name.values():
        settings = pipeline.pair
        if settings is None or settings.with_pipeline not in by_name:
            continue
        partner = by_name[settings.with_pipeline]
        default, policies = _policies(settings.conflicts)
        pair = Pair(pipeline.name, partner.name, tuple(FieldPair(j, b) for j, b in settings.fields.items()),
                    default, policies, dict(settings.owned_by), getattr(pipeline.source, "timezone", None),
                    pipeline.mapping, partner.mapping)
        out[pipeline.name] = out[partner.name] = pair
    return out


def _policies(conflicts: str | Mapping[str, Any] | None) -> tuple[str, dict[str, str]]:
    """(default policy, policy per field) of a `conflicts:` setting."""
    if isinstance(conflicts, str):
        return conflicts, {}
    if isinstance(conflicts, Mapping):
        return (str(conflicts.get("default", DEFAULT_POLICY)),
                {str(k): str(v) for k, v in (conflicts.get("fields") or {}).items()})
    return DEFAULT_POLICY, {}


def pair_problems(pipeline: Pipeline, valid: Mapping[str, Pipeline], root: Path) -> list[tuple[str, str]]:
    """(field, message) for each both-ways setting of `pipeline` naming an unknown pipeline, field, policy or
    side, or a pipeline already in another pair; `valid`: the project's valid pipelines by name."""
    from engine.schemas import payload_schema_path

    settings = pipeline.pair
    if settings is None:
        return []
    partner = valid.get(settings.with_pipeline)
    if partner is None:
        return [("pair.with", f"no pipeline '{settings.with_pipeline}'")]
    out: list[tuple[str, str]] = []
    known_j = _schema_fields(payload_schema_path("jaggaer:CompanyProfileUpdate", root), COMPANY_INFO)
    known_b = _schema_fields(payload_schema_path(getattr(partner.target, "entity", "BusinessPartners"), root), ())
    for j, b in settings.fields.items():
        if known_j and j not in known_j:
            out.append((f"pair.fields.{j}", "not a JAGGAER company profile field"))
        if known_b and b not in known_b:
            out.append((f"pair.fields.{j}", f"{b!r} is not a SAP B1 field"))
    default, policies = _policies(settings.conflicts)
    names = set(settings.fields) | set(settings.fields.values())
    for value in [default, *policies.values()]:
        if value not in POLICIES:
            out.append(("conflicts", f"{value!r} is not one of {', '.join(POLICIES)}"))
    out += [(f"conflicts.fields.{key}", "not a field of pair.fields") for key in policies if key not in names]
    for key, side in settings.owned_by.items():
        if side not in SIDES:
            out.append((f"owned_by.{key}", f"{side!r} is not one of jaggaer, b1"))
        elif key not in names and key not in known_j and key not in known_b:
            out.append((f"owned_by.{key}", "not a JAGGAER company profile or SAP B1 field"))
    rivals = sorted(p.name for p in valid.values() if p.pair and p.pair.with_pipeline == partner.name)
    if partner.pair is not None or rivals[:1] != [pipeline.name]:
        out.append(("pair.with", f"pipeline '{partner.name}' is in two pairs"))
    return out


def _schema_fields(path: Path, at: tuple[str, ...]) -> set[str]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    for part in at:
        schema = (schema.get("properties") or {}).get(part) or {}
    return set((schema.get("properties") or {}).keys())
