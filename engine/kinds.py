"""Connection kinds: what a pipeline can read from and write to, chosen by name, as dlt chooses a paginator.

A pipeline's `source:` and `target:` are typed when the pipeline is loaded (`engine.spec`): the key that
tells the kind (`list` or `entity` in a source, `entity` or `resource` in a target) picks a `SourceKind` or
`TargetKind` below, whose `config` class holds the block's values. The same table tells which adapter
extracts a source into staging and which loads a run's pipelines into their target, so the runner and
`extract` never test a kind by name. Adapters are named as `module:function` and imported on use (the CLI
starts without the HTTP clients).

A new kind is one `config` class (and its `$defs` entry in `schemas/pipeline.schema.json`), one adapter
function and one row in `SOURCE_KINDS` or `TARGET_KINDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class JaggaerCursor:
    """The J1P keyset cursor (J1P §4.5): stamp filter key, stamp field, id filter key for ties."""

    filter_key: str
    field: str
    tiebreak_key: str
    initial: str = "1970-01-01T00:00:00.000Z"
    overlap_seconds: float = 60.0


@dataclass(frozen=True)
class JaggaerSource:
    """A J1P list read by keyset cursor (`engine.jaggaer.source`), each record optionally read in detail."""

    kind: ClassVar[str] = "jaggaer"
    connection: str
    list: str
    records: str  # dotted path of the record array in the list answer
    primary_key: str  # dotted path of the id in a list item
    cursor: JaggaerCursor
    schema: str  # the JSON Schema every staged record must satisfy (project-relative)
    detail: str | None = None  # single-record path with {id}
    filter: str | None = None  # extra `flt` constraints

    @property
    def endpoint(self) -> str:
        """What the source reads, for messages."""
        return self.list

    @classmethod
    def from_yaml(cls, data: Mapping[str, Any]) -> JaggaerSource:
        return cls(data["connection"], data["list"], data["records"], data["primary_key"],
                   JaggaerCursor(**data["cursor"]), data["schema"], data.get("detail"), data.get("filter"))


@dataclass(frozen=True)
class SapB1Source:
    """A Service Layer entity set polled by its `UpdateDate`/`UpdateTime` stamps (`engine.sapb1.changes`)."""

    kind: ClassVar[str] = "sapb1"
    connection: str
    entity: str
    primary_key: str
    date_field: str = "UpdateDate"
    time_field: str = "UpdateTime"
    initial: str | None = None  # the date the first read starts from
    overlap_seconds: float = 60.0
    filter: str | None = None  # OData $filter ANDed to the cursor's
    select: tuple[str, ...] | None = None
    timezone: str | None = None  # IANA zone of the company's stamps; None: this machine's

    @property
    def endpoint(self) -> str:
        return self.entity

    @property
    def schema(self) -> None:
        """A SAP B1 source has no record schema: B1 answers in its own metadata's shape."""
        return None

    @classmethod
    def from_yaml(cls, data: Mapping[str, Any]) -> SapB1Source:
        cursor = data.get("cursor") or {}
        select = data.get("select")
        return cls(data["connection"], data["entity"], data["primary_key"],
                   cursor.get("date_field", "UpdateDate"), cursor.get("time_field", "UpdateTime"),
                   cursor.get("initial"), float(cursor.get("overlap_seconds", 60)), data.get("filter"),
                   tuple(select) if select else None, data.get("timezone"))


Source = JaggaerSource | SapB1Source

# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class SapB1Target:
    """A Service Layer entity set, upserted by the external reference held in a user field."""

    kind: ClassVar[str] = "sapb1"
    connection: str
    entity: str
    external_ref: str  # the user field holding the JAGGAER reference (U_JaggaerRef)

    @property
    def endpoint(self) -> str:
        return self.entity

    @classmethod
    def from_yaml(cls, data: Mapping[str, Any]) -> SapB1Target:
        return cls(data["connection"], data["entity"], data["external_ref"])


@dataclass(frozen=True)
class JaggaerTarget:
    """A J1P resource written by UPDATE (the company-profile write-back, `engine.jaggaer.writer`)."""

    kind: ClassVar[str] = "jaggaer"
    connection: str
    resource: str

    @property
    def endpoint(self) -> str:
        return self.resource

    @classmethod
    def from_yaml(cls, data: Mapping[str, Any]) -> JaggaerTarget:
        return cls(data["connection"], data["resource"])


Target = SapB1Target | JaggaerTarget

# --------------------------------------------------------------------------- the registry


def _resolve(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SourceKind:
    name: str
    marker: str  # the key in `source:` that tells this kind
    config: type[JaggaerSource] | type[SapB1Source]
    extract: str  # `module:function(project, pipeline, *, progress, run_id, transport) -> ExtractResult`

    def extractor(self) -> Callable[..., Any]:
        return _resolve(self.extract)


@dataclass(frozen=True)
class TargetKind:
    name: str
    marker: str  # the key in `target:` that tells this kind
    config: type[SapB1Target] | type[JaggaerTarget]
    load: str  # async `module:function(project, pipelines, report, refs, notify, concurrency, two_ways, versions)`

    def loader(self) -> Callable[..., Any]:
        return _resolve(self.load)


SOURCE_KINDS: dict[str, SourceKind] = {k.name: k for k in (
    SourceKind("jaggaer", "list", JaggaerSource, "engine.extract:extract_pipeline"),
    SourceKind("sapb1", "entity", SapB1Source, "engine.extract:extract_b1_pipeline"),
)}
# In this order within a run: SAP B1 is written first, then the write-back to JAGGAER reads what the run
# wrote there as its own (engine.bidirectional).
TARGET_KINDS: dict[str, TargetKind] = {k.name: k for k in (
    TargetKind("sapb1", "entity", SapB1Target, "engine.runner:load_to_sapb1"),
    TargetKind("jaggaer", "resource", JaggaerTarget, "engine.runner:load_to_jaggaer"),
)}


@dataclass(frozen=True)
class ConnectionKind:
    """A kind of connection in `ml-connector.yaml` (`kind:`): how `check` probes it."""

    name: str
    check: str  # `module:function(name, profile, *, pipelines, root, transport) -> ConnectionCheck`

    def checker(self) -> Callable[..., Any]:
        return _resolve(self.check)


CONNECTION_KINDS: dict[str, ConnectionKind] = {k.name: k for k in (
    ConnectionKind("jaggaer", "engine.checks:check_jaggaer"),
    ConnectionKind("sapb1", "engine.checks:check_sapb1"),
)}


def _kind_of(kinds: Mapping[str, Any], data: Mapping[str, Any], default: str) -> Any:
    return next((k for k in kinds.values() if k.marker in data), kinds[default])


def source_kind_of(data: Mapping[str, Any]) -> SourceKind:
    """The kind a `source:` block is of, told by its marker key (J1P when none matches)."""
    return _kind_of(SOURCE_KINDS, data, "jaggaer")  # type: ignore[no-any-return]


def target_kind_of(data: Mapping[str, Any]) -> TargetKind:
    """The kind a `target:` block is of, told by its marker key (SAP B1 when none matches)."""
    return _kind_of(TARGET_KINDS, data, "sapb1")  # type: ignore[no-any-return]


def parse_source(data: Mapping[str, Any]) -> Source:
    return source_kind_of(data).config.from_yaml(data)


def parse_target(data: Mapping[str, Any]) -> Target:
    return target_kind_of(data).config.from_yaml(data)
