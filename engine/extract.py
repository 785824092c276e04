"""Extraction: pull new and changed J1P records into `staging.<pipeline>` of the project's state file.

Per source, a background thread runs the async keyset walk and detail reads (engine.jaggaer.source);
this thread validates the records with a compiled JSON Schema, hands them to dlt as one Arrow table per
commit (merge on `id`), then — only after dlt has committed — writes quarantine entries and advances the
cursor (`extract_state`). A crash loses at most the uncommitted tail, which the next run reads again;
the merge on `id` keeps every record staged once. Core functions return results and never print.

A SAP B1 source (`source.entity`, e.g. business partners for the write-back to JAGGAER) is read by update
stamp instead (`extract_b1_pipeline`, `engine.sapb1.changes`): same staging table shape (`id` = the B1 key,
`last_modified` = the B1 stamp, `record` = the record as B1 sent it), same rule — the cursor moves only
after the records it covers are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import httpx
import orjson
import pyarrow as pa
from dlt.pipeline.exceptions import PipelineStepFailed

from engine.errors import ConnectorError
from engine.jaggaer.client import HostUnreachable, J1PClient, JaggaerSettings
from engine.jaggaer.keyset import KeysetState
from engine.jaggaer.source import Batch, read_source
from engine.kinds import SOURCE_KINDS, JaggaerSource, SapB1Source
from engine.locks import run_locks
from engine.project import Project
from engine.spec import Pipeline, RecordInvalid, compile_schema
from engine.state import cursors, db, quarantine
from engine.state.staging import SCHEMA, existing_keys

log = logging.getLogger("engine.extract")

ProgressFn = Callable[[str, int, int | None], None]
"""progress(pipeline, records read so far, estimated total or None)."""


@dataclass
class ExtractResult:
    pipeline: str
    new: int = 0
    changed: int = 0
    quarantined: int = 0
    read: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    warnings: int = 0
    commits: int = 0
    duration_s: float = 0.0
    error: str | None = None
    skipped: str | None = None
    unreachable: bool = False  # the tenant did not answer at all: its other sources are not tried
    keys: set[str] | None = None  # SAP B1 sources: the keys staged (new or changed)

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        if self.skipped:
            return f"{self.pipeline}: skipped — {self.skipped}"
        head = f"{self.pipeline}: {self.new} new, {self.changed} changed, {self.quarantined} quarantined"
        tail = f"{self.pages} pages, {self.requests} requests, {self.duration_s:.1f}s"
        if self.retries:
            tail += f", {self.retries} retries"
        if self.warnings:
            tail += f", {self.warnings} warnings"
        text = f"{head} ({tail})"
        return f"{text} — FAILED: {self.error}" if self.error else text


@dataclass
class StageOutcome:
    new: int = 0
    changed: int = 0
    invalid: list[quarantine.QuarantinedRecord] = field(default_factory=list)


# --------------------------------------------------------------------------- state


def load_state(conn: duckdb.DuckDBPyConnection, pipeline: str) -> KeysetState:
    return KeysetState.from_json(cursors.stored(conn, pipeline))


def save_state(conn: duckdb.DuckDBPyConnection, pipeline: str, state: KeysetState) -> None:
    cursors.store(conn, pipeline, state.to_json())


# --------------------------------------------------------------------------- staging writes


def _configure_dlt() -> None:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
    # dlt warns that our Arrow `record` column (string) carries a `json` hint: intended, DuckDB casts it.
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")


class Stager:
    """Validate records and merge them into `staging.<pipeline>` through dlt (Arrow, one table per commit)."""

    def __init__(self, project: Project, spec: Pipeline) -> None:
        import dlt

        _configure_dlt()
        self.project, self.spec = project, spec
        # SAP B1 sources have no record schema: B1 types its own records (`$metadata`)
        schema = spec.source.schema
        self.validator = compile_schema(project.root / schema) if schema else None
        project.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.pipeline = dlt.pipeline(
            pipeline_name=f"extract_{spec.name}",
            destination=dlt.destinations.duckdb(credentials=str(project.state_path)),
            dataset_name=SCHEMA,
            pipelines_dir=str(project.dlt_dir),
        )

        @dlt.resource(
            name=spec.name,
            primary_key="id",
            write_disposition={"disposition": "merge", "strategy": "upsert"},
            columns={
                "id": {"data_type": "text", "nullable": False},
                "last_modified": {"data_type": "text"},
                "record": {"data_type": "json"},
            },
        )
        def records(table: pa.Table) -> Iterable[pa.Table]:
            yield table

        self._resource = records

    def prepare(self, records: Iterable[tuple[str, str, dict[str, Any], bytes | None]], *, run_id: str | None = None
                ) -> tuple[list[tuple[str, str, str]], list[quarantine.QuarantinedRecord]]:
        """Validate; rows of (key, stamp, JSON text) — the body as the server sent it when there is one —
        and quarantine entries for the invalid. Runs as pages arrive: a chunk holds text, not dicts."""
        rows, invalid = [], []
        validate = self.validator
        for key, stamp, record, raw in records:
            try:
                if validate is not None:
                    validate(record)
            except RecordInvalid as exc:
                invalid.append(quarantine.QuarantinedRecord(
                    self.spec.name, key, "validate", f"schema {self.spec.source.schema}: {exc}", record, run_id))
                continue
            rows.append((key, stamp, raw.decode() if raw else orjson.dumps(record).decode()))
        return rows, invalid

    def load(self, rows: dict[str, tuple[str, str]], conn: duckdb.DuckDBPyConnection | None = None) -> tuple[int, int]:
        """Merge {key: (stamp, JSON text)} into staging in one dlt load; returns (new, changed).

        Our connection stays open across dlt's load (a few seconds, never across network waits): dlt's
        own connections then share its database instance, and DuckDB checkpoints once at our close
        instead of at each of dlt's (about half the time of a commit)."""
        try:
            if conn is None:
                with db.connect(self.project.state_path) as own:
                    return self._load(rows, own)
            return self._load(rows, conn)
        finally:
            # dlt's run leaves reference cycles that hold the chunk's text and its Arrow table (~110 MB
            # per 10,000 POs); with the GC thresholds raised while records stream they piled up until a
            # rare full collection (RSS grew per commit). Collect them now: ~6 ms with the heap frozen.
            # Outside streaming the usual thresholds collect them, and a full pass over an unfrozen heap
            # holding many records (the write-path benchmark) would cost far more.
            if _streaming:
                gc.collect()

    def _load(self, rows: dict[str, tuple[str, str]], conn: duckdb.DuckDBPyConnection) -> tuple[int, int]:
        if not rows:
            return 0, 0
        ids = list(rows)
        db.tune_writes(conn, compress=True)  # staging is written beside the network reads
        known = existing_keys(conn, self.spec.name, ids)
        table = pa.table({"id": pa.array(ids, pa.string()),
                          "last_modified": pa.array([v[0] for v in rows.values()], pa.string()),
                          "record": pa.array([v[1] for v in rows.values()], pa.string())})
        if self.pipeline.has_pending_data:
            # A process killed inside dlt's run leaves a load package behind, and dlt's `run` then loads
            # that package and returns WITHOUT loading the data it is given — the cursor would move past
            # records never staged. The package holds records at or after the committed cursor, which
            # this extraction has read again (newer, if they changed): drop it, stage what was read now.
            abort = getattr(self.pipeline, "abort_packages", None)  # dlt >= 1.30; drop_pending_packages before
            abort() if abort is not None else self.pipeline.drop_pending_packages()
        self.pipeline.run(self._resource(table), loader_file_format="parquet")
        return len(ids) - len(known), len(known)

    def stage(self, records: Iterable[tuple[str, str, dict[str, Any], bytes | None]], *, run_id: str | None = None) -> StageOutcome:
        """Validate, then merge the valid records by id; invalid ones come back for quarantine."""
        rows, invalid = self.prepare(records, run_id=run_id)
        new, changed = self.load({key: (stamp, text) for key, stamp, text in rows})
        return StageOutcome(new, changed, invalid)


# --------------------------------------------------------------------------- the fetch thread


class _Fetcher(threading.Thread):
    """Runs the async read in its own event loop, validates and serializes each page there (no GIL
    ping-pong with the committing thread), and hands pages over a bounded queue (back-pressure)."""

    def __init__(self, settings: JaggaerSettings, name: str, source: JaggaerSource, state: KeysetState,
                 transport: httpx.AsyncBaseTransport | None, prepare: Callable[..., Any], maxsize: int) -> None:
        super().__init__(name=f"extract-{name}", daemon=True)
        self.settings, self.source, self.state, self.transport = settings, source, state, transport
        self.prepare = prepare
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()
        self.client: J1PClient | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 — reported to the consuming thread
            self._put(("error", exc))

    def _put(self, event: tuple[str, Any]) -> None:
        while not self.stop.is_set():
            try:
                self.events.put(event, timeout=0.2)
                return
            except queue.Full:
                continue

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        async with J1PClient(self.settings, transport=self.transport) as client:
            self.client = client
            async for batch in read_source(client, self.source, self.state):
                rows, invalid = self.prepare(batch.records)
                batch.records = []
                await loop.run_in_executor(None, self._put, ("batch", (batch, rows, invalid)))
                if self.stop.is_set():
                    return
        self._put(("done", None))


# --------------------------------------------------------------------------- extraction


def extract_pipelines(project: Project, names: Iterable[str] | None = None, *, progress: ProgressFn | None = None,
                      run_id: str | None = None,
                      transport: httpx.AsyncBaseTransport | None = None, lock: bool = True,
                      wait: float = 0.0) -> list[ExtractResult]:
    """Extract the named pipelines (default: all), in dependency order. A failing source does not
    stop the others; its result carries the error. Holds the project lock (`engine.locks`) unless the
    caller (a run) already does."""
    specs = project.select(names)
    run_id = run_id or f"extract-{uuid.uuid4().hex[:12]}"
    results: list[ExtractResult] = []
    unreachable: dict[str, str] = {}  # connection -> why: one budget spent per tenant, not one per source
    with run_locks(project.state_path, wait=wait) if lock else contextlib.nullcontext(), _gc_for_streaming():
        for spec in specs:
            connection = spec.source.connection
            if connection in unreachable:
                results.append(ExtractResult(spec.name, error=unreachable[connection], unreachable=True))
                continue
            extract = SOURCE_KINDS[spec.source.kind].extractor()  # extract_pipeline, extract_b1_pipeline
            result = extract(project, spec, progress=progress, run_id=run_id, transport=transport)
            if result.unreachable:
                unreachable[connection] = result.error or "unreachable"
            results.append(result)
    return results


_streaming = False  # inside _gc_for_streaming: GC held back, each staging commit collects


@contextlib.contextmanager
def _gc_for_streaming() -> Iterator[None]:
    """Parsing a purchase order allocates hundreds of small dicts; with dlt, pyarrow and DuckDB loaded,
    each collection the cyclic GC runs then scans a large heap — it cost more than the parsing itself
    (measured: ~150 µs per record, ~35 µs without). Freeze what is loaded and collect young objects
    less often while records stream through; restore afterwards."""
    global _streaming
    threshold, was_streaming = gc.get_threshold(), _streaming
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), threshold[1], threshold[2])
    _streaming = True
    try:
        yield
    finally:
        _streaming = was_streaming
        gc.set_threshold(*threshold)
        gc.unfreeze()


def extract_pipeline(project: Project, spec: Pipeline, *, progress: ProgressFn | None = None,
                     run_id: str | None = None, transport: httpx.AsyncBaseTransport | None = None) -> ExtractResult:
    """The `jaggaer` source kind's adapter: stage a J1P list's new and changed records (keyset walk in a
    background thread, chunks of `commit_every` committed with the cursor after them)."""
    source = spec.source
    assert isinstance(source, JaggaerSource)
    result = ExtractResult(spec.name)
    started = time.perf_counter()
    conn_name = source.connection
    settings = JaggaerSettings.from_profile(conn_name, project.connection(conn_name))
    stager = Stager(project, spec)
    with db.connect(project.state_path) as conn:
        committed = load_state(conn, spec.name)
    walk_state = KeysetState(committed.stamp, committed.id, dict(committed.seen))
    prepare = functools.partial(stager.prepare, run_id=run_id)
    fetcher = _Fetcher(settings, spec.name, source, walk_state, transport, prepare, maxsize=max(2, project.commit_every // 100))
    fetcher.start()
    chunk: dict[str, tuple[str, str]] = {}
    entries: list[quarantine.QuarantinedRecord] = []
    pending = _Pending()
    try:
        while True:
            kind, payload = fetcher.events.get()
            if kind == "batch":
                batch, rows, invalid = payload
                pending.add(batch)
                for key, stamp, text in rows:
                    chunk.pop(key, None)  # a record read twice in one chunk: keep the later read
                    chunk[key] = (stamp, text)
                for entry in invalid:
                    chunk.pop(entry.record_key, None)
                entries += invalid
                entries += [quarantine.QuarantinedRecord(spec.name, f.key, "extract", f.reason, f.record, run_id)
                            for f in batch.failed]
                result.read += batch.fetched
                result.pages += 1
                if progress:
                    progress(spec.name, result.read, pending.first_total)
                if len(chunk) + len(entries) >= project.commit_every:
                    _commit(project, spec, source, stager, chunk, entries, pending, committed, result)
            elif kind == "done":
                _commit(project, spec, source, stager, chunk, entries, pending, committed, result)
                break
            else:
                raise payload
    except HostUnreachable as exc:
        result.error, result.unreachable = str(exc), True
    except ConnectorError as exc:
        result.error = str(exc)
    except ValueError as exc:
        result.error = f"{spec.source.endpoint}: {exc}"
    except PipelineStepFailed as exc:
        result.error = f"staging write failed (cursor not advanced): {exc.exception}"
    finally:
        fetcher.stop.set()
        fetcher.join(timeout=5)
        if fetcher.client is not None:
            c = fetcher.client.counters
            result.requests, result.retries, result.warnings = c.requests, c.retries, c.warnings
            result.requests += fetcher.client.tokens.fetches
        result.duration_s = time.perf_counter() - started
    return result


@dataclass
class _Pending:
    """Cursor movement and `seen` pairs of the batches read since the last commit."""

    stamp: str | None = None
    id: str | None = None
    seen: dict[str, str] = field(default_factory=dict)
    first_total: int | None = None

    def add(self, batch: Batch) -> None:
        self.stamp, self.id = batch.stamp, batch.id
        self.seen.update(batch.seen_added)
        if self.first_total is None:
            self.first_total = batch.total


def _commit(project: Project, spec: Pipeline, source: JaggaerSource, stager: Stager, chunk: dict[str, tuple[str, str]],
            entries: list[quarantine.QuarantinedRecord], pending: _Pending, committed: KeysetState,
            result: ExtractResult) -> None:
    """Stage the chunk, then record quarantine entries and advance the cursor. Clears the buffers."""
    if pending.stamp is not None:
        committed.stamp, committed.id = pending.stamp, pending.id
        committed.seen.update(pending.seen)
        committed.prune(source.cursor.overlap_seconds)
    with db.connect(project.state_path) as conn:
        new, changed = stager.load(chunk, conn)  # committed by dlt before the cursor moves below
        quarantine.add(conn, list({(e.record_key, e.stage): e for e in entries}.values()))  # latest per record
        quarantine.resolve_extracted(conn, spec.name, list(chunk))
        save_state(conn, spec.name, committed)
    result.new += new
    result.changed += changed
    result.quarantined += len({(e.record_key, e.stage) for e in entries})
    result.commits += 1
    chunk.clear()
    entries.clear()
    pending.stamp = pending.id = None
    pending.seen = {}


# --------------------------------------------------------------------------- SAP B1 sources


def load_b1_cursor(conn: duckdb.DuckDBPyConnection, pipeline: str) -> Any:
    """The committed `engine.sapb1.changes.ChangeCursor` of a SAP B1 source (empty before its first read)."""
    from engine.sapb1.changes import ChangeCursor

    return ChangeCursor.from_json(cursors.stored(conn, pipeline))


def save_b1_cursor(conn: duckdb.DuckDBPyConnection, pipeline: str, cursor: Any) -> None:
    cursors.store(conn, pipeline, cursor.to_json())


def extract_b1_pipeline(project: Project, spec: Pipeline, *, progress: ProgressFn | None = None,
                        run_id: str | None = None, transport: httpx.AsyncBaseTransport | None = None,
                        client_factory: Callable[[], Any] | None = None, page_size: int | None = None) -> ExtractResult:
    """The `sapb1` source kind's adapter. Stage the SAP B1 records changed since the source's cursor
    (`engine.sapb1.changes`): each page's changed records are merged into `staging.<pipeline>` (keyed by the
    primary key), then the cursor takes what they cover; the read's newest stamp is stored only once the whole read is committed. A crash loses at most the
    records of an uncommitted page, which the next read finds again (they are not in its `seen`)."""
    from engine.sapb1 import SapB1Client, TransportError
    from engine.sapb1.changes import PAGE_SIZE, read_changes

    staged_keys: set[str] = set()
    result = ExtractResult(spec.name, keys=staged_keys)
    started = time.perf_counter()
    source = spec.source
    assert isinstance(source, SapB1Source)
    del run_id  # reading SAP B1 sets nothing aside: B1 answers in its own metadata's shape
    profile = project.connection(source.connection)
    stager = Stager(project, spec)
    with db.connect(project.state_path) as conn:
        committed = load_b1_cursor(conn, spec.name)
    chunk: dict[str, tuple[str, str]] = {}
    seen: dict[str, list[str]] = {}
    client_holder: list[Any] = []

    def commit(stamp: str | None = None, span: float | None = None) -> None:
        with db.connect(project.state_path) as conn:
            new, changed = stager.load(dict(chunk), conn)  # committed by dlt before the cursor moves below
            committed.commit(seen, stamp=stamp, span=span, overlap_seconds=source.overlap_seconds)
            save_b1_cursor(conn, spec.name, committed)
        result.new += new
        result.changed += changed
        result.commits += 1
        staged_keys.update(chunk)
        chunk.clear()
        seen.clear()

    async def walk() -> None:
        client = client_factory() if client_factory else SapB1Client.from_profile(profile, transport=transport)
        client_holder.append(client)
        async with client:
            async for batch in read_changes(client, source, committed, page_size=page_size or PAGE_SIZE):
                result.pages += 1
                result.read += batch.fetched
                for key, stamp, record in batch.records:
                    chunk[key] = (stamp, orjson.dumps(record).decode())
                seen.update(batch.seen)
                if progress:
                    progress(spec.name, result.read, None)
                if batch.last:
                    if batch.dropped_fields:
                        result.warnings += len(batch.dropped_fields)
                    commit(batch.stamp, batch.span)
                elif len(chunk) >= project.commit_every:
                    commit()

    try:
        asyncio.run(walk())
    except TransportError as exc:
        result.error, result.unreachable = str(exc), not exc.request_sent
    except ConnectorError as exc:
        result.error = str(exc)
    except PipelineStepFailed as exc:
        result.error = f"staging write failed (cursor not advanced): {exc.exception}"
    finally:
        if client_holder:
            result.requests = getattr(client_holder[0], "requests_sent", 0)
        result.duration_s = time.perf_counter() - started
    return result
