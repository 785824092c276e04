"""Extraction into a real DuckDB staging file through dlt, against the in-process fake J1P."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import duckdb
import httpx
import pytest

from engine.extract import extract_pipelines
from engine.state.staging import iter_staged, staged_count

from .conftest import make_project
from .fake_j1p import FakeJ1P, stamp


def extract(project, fake: FakeJ1P):  # noqa: ANN001, ANN201
    [result] = extract_pipelines(project, ["purchase_orders"], transport=fake.transport())
    return result


def detail_reads(fake: FakeJ1P) -> list[int]:
    return [int(line.split("/")[-1].split("?")[0]) for line in fake.log if "/purchaseorders/" in line]


def rows(project) -> dict[str, dict]:  # noqa: ANN001
    return dict(iter_staged(project.state_path, "purchase_orders"))


def test_first_pull_gets_everything_second_only_changes(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    fake = FakeJ1P(page_size=3)
    for i in range(1, 11):
        fake.add(i, stamp(i))
    fake.add(11, stamp(11), status="Pending")
    r = extract(project, fake)
    assert (r.new, r.changed, r.quarantined, r.error) == (10, 0, 0, None)
    assert staged_count(project.state_path, "purchase_orders") == 10
    staged = rows(project)
    assert staged["4"]["lineList"]["purchaseOrderLine"][0]["quantity"] == 1  # the whole detail record

    fake.log.clear()
    r = extract(project, fake)
    assert (r.new, r.changed) == (0, 0)
    assert detail_reads(fake) == []  # the overlap re-reads list pages only

    fake.add(3, stamp(200), currency="EUR")  # a change
    fake.add(11, stamp(201))  # Pending -> Completed
    fake.add(12, stamp(202))  # new
    fake.log.clear()
    r = extract(project, fake)
    assert (r.new, r.changed) == (2, 1)
    assert sorted(detail_reads(fake)) == [3, 11, 12]
    assert rows(project)["3"]["header"]["currency"] == "EUR"
    assert staged_count(project.state_path, "purchase_orders") == 12


def test_ties_on_equal_stamps_across_pages(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    fake = FakeJ1P(page_size=3)
    for i in range(1, 15):
        fake.add(i, stamp(5))  # 14 records, one millisecond
    fake.add(20, stamp(6))
    r = extract(project, fake)
    assert r.new == 15
    assert any("lastUpdate==2024-05-02T13:00:05.000Z;purchaseOrderId=gt=" in unquote(line) for line in fake.log)


def test_changes_during_the_read_are_not_lost(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    fake = FakeJ1P(page_size=2)
    for i in range(1, 9):
        fake.add(i, stamp(i))

    def mutate(call: int) -> None:
        if call == 1:
            fake.add(1, stamp(100), currency="CHF")  # already read: moves to the end
            fake.add(7, stamp(101), currency="GBP")  # not read yet: moves to the end too

    fake.after_list = mutate
    r = extract(project, fake)
    staged = rows(project)
    assert len(staged) == 8 and r.error is None
    assert staged["1"]["header"]["currency"] == "CHF" and staged["7"]["header"]["currency"] == "GBP"


def test_stamp_equal_to_cursor_after_read_is_caught_by_overlap(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    fake = FakeJ1P(page_size=5)
    fake.add(5, stamp(10))
    extract(project, fake)
    fake.add(3, stamp(10))  # same millisecond as the cursor, lower id: behind (T, X)
    r = extract(project, fake)
    assert r.new == 1 and "3" in rows(project)


def test_list_failure_fails_the_source_and_keeps_the_cursor(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    fake = FakeJ1P(page_size=2)
    for i in range(1, 6):
        fake.add(i, stamp(i))
    extract(project, fake)
    with duckdb.connect(str(project.state_path)) as conn:
        before = conn.execute("SELECT cursor FROM extract_state").fetchone()
    fake.add(9, stamp(50))
    lists = []

    def fail_second_page(req: httpx.Request) -> httpx.Response | None:
        if not req.url.path.endswith("/purchaseorders"):
            return None
        lists.append(req)
        if len(lists) < 2:
            return None
        return httpx.Response(200, json={"returnCode": 2, "returnMessage": "operation not completed", "totRecords": 0})

    fake.faults.append(fail_second_page)
    r = extract(project, fake)
    assert not r.ok and "returnCode 2: operation not completed" in r.error
    assert "FAILED" in r.summary()
    with duckdb.connect(str(project.state_path)) as conn:
        assert conn.execute("SELECT cursor FROM extract_state").fetchone() == before
    assert "9" not in rows(project)


def test_bad_records_are_quarantined_rest_goes_on(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    fake = FakeJ1P(page_size=3)
    for i in range(1, 7):
        fake.add(i, stamp(i))
    fake.orders[2]["lineList"] = "none"  # wrong type in the detail read
    fake.faults.append(lambda req: __import__("httpx").Response(200, json={"returnCode": 2, "returnMessage": "Record not found: 4"})
                       if req.url.path.endswith("/purchaseorders/4") else None)
    r = extract(project, fake)
    assert (r.new, r.quarantined) == (4, 2)
    assert set(rows(project)) == {"1", "3", "5", "6"}
    with duckdb.connect(str(project.state_path)) as conn:
        q = dict(conn.execute("SELECT record_key, stage || ': ' || reason FROM quarantine").fetchall())
    assert q["4"] == "extract: detail read failed: returnCode 2: Record not found: 4"
    assert q["2"].startswith("validate: schema schemas/jaggaer/purchase-order.schema.json: lineList: \"none\" is not of type \"object\"")

    # once fixed and changed, the record is staged and its quarantine entry closed
    fake.orders[2]["lineList"] = {"purchaseOrderLine": []}
    fake.orders[2]["header"]["lastUpdate"] = stamp(300)
    r = extract(project, fake)
    assert r.new == 1
    with duckdb.connect(str(project.state_path)) as conn:
        assert conn.execute("SELECT count(*) FROM quarantine WHERE resolved_at IS NULL").fetchone()[0] == 1


def test_commits_in_chunks_advance_the_cursor(tmp_path: Path) -> None:
    project = make_project(tmp_path, commit_every=4)
    fake = FakeJ1P(page_size=2)
    for i in range(1, 12):
        fake.add(i, stamp(i))
    r = extract(project, fake)
    assert r.new == 11 and r.commits >= 3
    assert [k for k, _ in iter_staged(project.state_path, "purchase_orders", keys=["3", "10", "99"])] == ["10", "3"]
    assert len(list(iter_staged(project.state_path, "purchase_orders", batch_size=4))) == 11


@pytest.mark.parametrize("missing", ["JAGGAER_CLIENT_SECRET"])
def test_missing_secret_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    from engine.errors import ConfigError

    project = make_project(tmp_path)
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigError, match=missing):
        extract_pipelines(project, ["purchase_orders"], transport=FakeJ1P().transport())


def test_a_commit_does_not_keep_its_records_in_memory(tmp_path: Path) -> None:
    """Peak memory must not grow with the number of records: a committed chunk is freed at once, even
    with the cyclic GC held back as it is while records stream (dlt's run leaves reference cycles)."""
    import gc
    import weakref

    from engine.extract import Stager, _gc_for_streaming
    from engine.project import load_project

    class Chunk(dict):  # a dict that can be watched with a weak reference
        pass

    project = make_project(tmp_path)
    spec = next(s for s in load_project(project.root, ["purchase_orders"], check_mappings=False).pipelines
                if s.name == "purchase_orders")
    stager = Stager(project, spec)
    refs = []
    with _gc_for_streaming():
        gc.disable()  # the young-generation collections held back, deterministically
        try:
            for n in range(2):
                chunk = Chunk({f"{n}-{i}": ("2024-01-01T00:00:00.000Z", '{"header": {}}') for i in range(50)})
                refs.append(weakref.ref(chunk))
                assert stager.load(chunk) == (50, 0)
                del chunk
            freed = [r() is None for r in refs]
        finally:
            gc.enable()
    assert freed == [True, True]
    assert staged_count(project.state_path, "purchase_orders") == 100


def test_a_detail_read_that_keeps_failing_transiently_is_not_skipped(tmp_path: Path) -> None:
    """Retries spent on 503s say nothing about the record: the source fails, the cursor stays before the
    record, nothing is quarantined, and the next run stages it (a change is never skipped)."""
    project = make_project(tmp_path)
    fake = FakeJ1P(page_size=2)
    for i in range(1, 6):
        fake.add(i, stamp(i))
    down = {"on": True}
    fake.faults.append(lambda req: httpx.Response(503) if down["on"] and req.url.path.endswith("/purchaseorders/4")
                       else None)
    first = extract(project, fake)
    assert not first.ok and "gave up" in (first.error or "")
    assert "4" not in rows(project)
    with duckdb.connect(str(project.state_path)) as conn:
        tables = {t for (t,) in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert "quarantine" not in tables or conn.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    down["on"] = False
    second = extract(project, fake)
    assert second.ok and set(rows(project)) == {"1", "2", "3", "4", "5"}


def test_a_load_package_left_by_a_killed_run_never_swallows_the_next_commit(tmp_path: Path) -> None:
    """dlt's `run` loads a pending package and returns without the data it was given: a package left by a
    process killed inside dlt must not make the next commit stage nothing while its cursor moves on."""
    from engine.extract import Stager
    from engine.project import load_project

    project = make_project(tmp_path)
    spec = load_project(project.root, ["purchase_orders"], check_mappings=False).pipeline("purchase_orders")
    Stager(project, spec).load({"0": ("2023-01-01T00:00:00.000Z", '{"v": "zero"}')})  # an earlier run
    killed = Stager(project, spec)
    old = pa_table({"1": ("2024-01-01T00:00:00.000Z", '{"v": "old"}')})
    killed.pipeline.extract(killed._resource(old), loader_file_format="parquet")  # then killed inside dlt
    killed.pipeline.normalize()
    assert killed.pipeline.has_pending_data
    new, changed = Stager(project, spec).load({"1": ("2024-01-02T00:00:00.000Z", '{"v": "new"}'),
                                               "2": ("2024-01-02T00:00:00.000Z", '{"v": "two"}')})
    assert (new, changed) == (2, 0)
    assert rows(project) == {"0": {"v": "zero"}, "1": {"v": "new"}, "2": {"v": "two"}}


def pa_table(rows: dict[str, tuple[str, str]]):  # noqa: ANN201
    import pyarrow as pa

    return pa.table({"id": pa.array(list(rows), pa.string()),
                     "last_modified": pa.array([v[0] for v in rows.values()], pa.string()),
                     "record": pa.array([v[1] for v in rows.values()], pa.string())})
