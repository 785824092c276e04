"""Reading SAP B1 business partners by UpdateDate/UpdateTime (`engine.sapb1.changes`, `extract_b1_pipeline`):
stamps, the cursor window, dedupe by (CardCode, content fingerprint), key-ordered pages while records change,
crash safety; then over real sockets against the SAP B1 simulator."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.extract import extract_b1_pipeline, extract_pipelines, load_b1_cursor
from engine.kinds import SapB1Source
from engine.project import load_project
from engine.sapb1.changes import (
    ChangeCursor,
    content_fingerprint,
    parse_time,
    read_changes,
    stamp_of,
)
from engine.state import db
from engine.state.staging import iter_staged

PROJECT = """\
project: test
state: var/state.duckdb
extract: {{commit_every: {commit_every}}}
connections:
  jaggaer:
    kind: jaggaer
    base_url: "http://127.0.0.1:1"
    client_id: {{env: JAGGAER_CLIENT_ID}}
    client_secret: {{env: JAGGAER_CLIENT_SECRET}}
  sapb1:
    kind: sapb1
    service_root: "{service_root}"
    company_db: SBODEMOUS
    username: manager
    password: {{env: SAPB1_PASSWORD}}
"""

PIPELINE = """\
name: suppliers_to_jaggaer
source:
  connection: sapb1
  entity: BusinessPartners
  primary_key: CardCode
  cursor: {{date_field: UpdateDate, time_field: UpdateTime, overlap_seconds: 60}}
  filter: CardType eq 'cSupplier'
  select: [CardName, FederalTaxID, EmailAddress, U_JaggaerRef]
mapping: mappings/supplier_to_jaggaer.yaml
target: {{connection: jaggaer, resource: companyprofiles}}
"""


def make_project(root: Path, service_root: str, *, commit_every: int = 1000):  # noqa: ANN201
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "mappings").mkdir(exist_ok=True)
    (root / "ml-connector.yaml").write_text(PROJECT.format(commit_every=commit_every, service_root=service_root))
    (root / "pipelines" / "suppliers_to_jaggaer.yaml").write_text(PIPELINE.format())
    (root / "mappings" / "supplier_to_jaggaer.yaml").write_text("fields: {}\n")
    return load_project(root)


@pytest.fixture(autouse=True)
def _b1_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAPB1_PASSWORD", "manager")


# -- stamps, fingerprints, the cursor --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("10:14:02", (10, 14, 2)), ("7:05", (7, 5, 0)), ("PT10H14M2S", (10, 14, 2)), (101402, (10, 14, 2)),
    (1014, (10, 14, 0)), ("23:59:59.000", (23, 59, 59)),
])
def test_update_time_forms(value, expected) -> None:
    assert parse_time(value) == expected


def test_stamp_is_the_local_date_and_time_and_ignores_the_z() -> None:
    assert stamp_of({"UpdateDate": "2026-11-20T00:00:00Z", "UpdateTime": "10:14:02"}) == "2026-11-20T10:14:02"
    assert stamp_of({"UpdateDate": "2026-11-20", "UpdateTime": None}) == "2026-11-20T00:00:00"
    assert stamp_of({"UpdateTime": "10:14:02"}) is None
    with pytest.raises(ValueError):
        parse_time("noon")


def test_the_fingerprint_is_content_not_stamps_or_annotations() -> None:
    a = {"CardCode": "V1", "CardName": "A", "UpdateDate": "2026-11-20T00:00:00Z", "UpdateTime": "10:00:00",
         "@odata.etag": 'W/"1"', "DataVersion": 1}
    b = {**a, "UpdateTime": "10:00:05", "@odata.etag": 'W/"2"', "DataVersion": 2}
    assert content_fingerprint(a) == content_fingerprint(b)
    assert content_fingerprint(a) != content_fingerprint({**a, "CardName": "B"})


def test_the_window_opens_overlap_plus_the_last_reads_span_before_the_newest_stamp() -> None:
    cursor = ChangeCursor("2026-11-20T10:00:00", {"A": ["2026-11-20T09:58:50", "x"], "B": ["2026-11-20T10:00:00", "y"],
                                                  "Z": ["2026-11-20T09:58:49", "w"]}, span=10)
    assert cursor.floor(60) == datetime(2026, 11, 20, 9, 58, 50)
    cursor.prune(60)
    assert set(cursor.seen) == {"A", "B"}
    cursor.commit({"C": ["2026-11-20T10:01:00", "z"]}, stamp="2026-11-20T10:01:00", span=0.5, overlap_seconds=60)
    assert (cursor.stamp, cursor.span, set(cursor.seen)) == ("2026-11-20T10:01:00", 0.5, {"B", "C"})
    cursor.commit({}, stamp="2026-11-20T09:00:00", span=3)  # a read that saw only older stamps never moves it back
    assert cursor.stamp == "2026-11-20T10:01:00"
    assert ChangeCursor.from_json(cursor.to_json()) == cursor
    assert ChangeCursor().floor(60) is None


# -- the walk, against a fake Service Layer that changes records between pages ----------------------------------


class FakeB1:
    """`SapB1Client.query` over a dict of business partners, honouring `UpdateDate ge`, `CardCode gt`, `$top`
    (ordered by CardCode); `between_pages` runs after each page (changes during the read)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.between_pages: list[Any] = []
        self.queries: list[str] = []
        self.missing_fields: set[str] = set()

    def put(self, code: str, when: str, **fields: Any) -> None:
        day, time = when.split("T")
        self.records[code] = {"CardCode": code, "CardType": "cSupplier", "UpdateDate": f"{day}T00:00:00Z",
                              "UpdateTime": time, "@odata.etag": 'W/"x"', **fields}

    async def query(self, entity: str, *, filter: str, select: Any = None, orderby: str | None = None,  # noqa: A002
                    top: int | None = None, page_size: int | None = None, **_: Any):
        from engine.sapb1 import ServiceLayerError

        self.queries.append(filter)
        bad = [f for f in (select or []) if f in self.missing_fields]
        if bad:
            raise ServiceLayerError(400, -1000, f"Property '{bad[0]}' of 'BusinessPartner' is invalid")
        day = filter.split("UpdateDate ge '")[1][:10]
        after = filter.split("CardCode gt '")[1].rstrip("'") if "CardCode gt" in filter else None
        rows = sorted((r for r in self.records.values() if r["UpdateDate"][:10] >= day
                       and (after is None or r["CardCode"] > after)), key=lambda r: r["CardCode"])[:top]
        for row in rows:
            yield {k: v for k, v in row.items() if select is None or k in select or k == "@odata.etag"}
        if self.between_pages:
            self.between_pages.pop(0)()


def walk(fake: FakeB1, cursor: ChangeCursor, page_size: int = 2, select: tuple[str, ...] | None = None
         ) -> tuple[list[str], ChangeCursor]:
    """One read; the cursor committed as the extractor does (after each page). The keys handed over, in order."""
    source = SapB1Source("b1", "BusinessPartners", "CardCode", filter="CardType eq 'cSupplier'", select=select)

    async def run() -> list[str]:
        keys = []
        async for batch in read_changes(fake, source, cursor, page_size=page_size):  # type: ignore[arg-type]
            keys += [key for key, _, _ in batch.records]
            cursor.commit(batch.seen, stamp=batch.stamp if batch.last else None, span=batch.span)
        return keys

    return asyncio.run(run()), cursor


def test_records_sharing_a_stamp_across_pages_are_all_read_once() -> None:
    fake = FakeB1()
    for i in range(7):
        fake.put(f"V{i}", "2026-11-20T10:00:00", CardName=f"n{i}")
    keys, cursor = walk(fake, ChangeCursor())
    assert keys == [f"V{i}" for i in range(7)]
    assert cursor.stamp == "2026-11-20T10:00:00"
    assert walk(fake, cursor)[0] == [], "the same content is not handed over again"
    fake.put("V3", "2026-11-20T10:00:00", CardName="renamed")  # same stamp, new content
    assert walk(fake, cursor)[0] == ["V3"]


def test_a_save_that_changes_nothing_is_no_change() -> None:
    fake = FakeB1()
    fake.put("V1", "2026-11-20T10:00:00", CardName="A")
    _, cursor = walk(fake, ChangeCursor())
    fake.put("V1", "2026-11-20T10:05:00", CardName="A")
    assert walk(fake, cursor)[0] == []
    assert cursor.stamp == "2026-11-20T10:05:00", "the stamp still moves on"


def test_changes_during_the_read_are_never_lost() -> None:
    fake = FakeB1()
    for i in range(6):
        fake.put(f"V{i}", "2026-11-20T09:00:00", CardName=f"n{i}")
    # after the first page (V0, V1): V0 (already read) and V4 (not yet) change; a V00 is created before the page end
    fake.between_pages = [lambda: (fake.put("V0", "2026-11-20T09:00:07", CardName="changed"),
                                   fake.put("V4", "2026-11-20T09:00:07", CardName="changed"),
                                   fake.put("V00", "2026-11-20T09:00:07", CardName="new"))]
    keys, cursor = walk(fake, ChangeCursor())
    assert keys == ["V0", "V1", "V2", "V3", "V4", "V5"], "pages by key: the insert shifts nothing"
    again, cursor = walk(fake, cursor)
    assert sorted(again) == ["V0", "V00"], "what changed behind the read comes next time; V4 was read changed"
    assert walk(fake, cursor)[0] == []


def test_older_stamps_than_the_window_are_not_read_again() -> None:
    fake = FakeB1()
    fake.put("V1", "2026-11-20T08:00:00", CardName="old")
    fake.put("V2", "2026-11-20T10:00:00", CardName="new")
    _, cursor = walk(fake, ChangeCursor())
    cursor.seen.clear()  # even with nothing remembered, a record stamped before the window is not handed over
    fake.put("V3", "2026-11-20T10:00:30", CardName="newer")
    fake.queries.clear()
    assert walk(fake, cursor)[0] == ["V2", "V3"]
    assert fake.queries[0] == "(CardType eq 'cSupplier') and UpdateDate ge '2026-11-20'", "the date only (§7.1)"


def test_a_user_field_b1_does_not_have_yet_is_read_without() -> None:
    fake = FakeB1()
    fake.missing_fields = {"U_JaggaerRef"}
    fake.put("V1", "2026-11-20T10:00:00", CardName="A")
    keys, _ = walk(fake, ChangeCursor(), select=("CardCode", "UpdateDate", "UpdateTime", "CardName", "U_JaggaerRef"))
    assert keys == ["V1"]
    fake.missing_fields = {"FederalTaxID"}  # any other invalid property is an error
    with pytest.raises(Exception, match="FederalTaxID"):
        walk(fake, ChangeCursor(), select=("CardCode", "UpdateDate", "UpdateTime", "FederalTaxID"))


# -- over real sockets: the SAP B1 simulator ------------------------------------------------------------------


@pytest.fixture
def sim():
    from simulators.sapb1 import start_simulator

    with start_simulator(seed="demo", session_timeout=1800) as s:
        yield s


def b1_patch(sim, code: str, changes: dict[str, Any]) -> None:  # noqa: ANN001
    with httpx.Client(base_url=sim.service_root("v2") + "/", timeout=30) as client:
        client.post("Login", json=sim.login_body()).raise_for_status()
        assert client.patch(f"BusinessPartners('{code}')", json=changes).status_code == 204


def b1_create(sim, code: str) -> None:  # noqa: ANN001
    with httpx.Client(base_url=sim.service_root("v2") + "/", timeout=30) as client:
        client.post("Login", json=sim.login_body()).raise_for_status()
        response = client.post("BusinessPartners", json={"CardCode": code, "CardName": code, "CardType": "cSupplier"})
        assert response.status_code == 201, response.text


def staged(project) -> dict[str, dict]:  # noqa: ANN001
    return dict(iter_staged(project.state_path, "suppliers_to_jaggaer"))


def test_against_the_simulator_first_read_then_only_changes(tmp_path: Path, sim) -> None:  # noqa: ANN001
    project = make_project(tmp_path, sim.service_root("v2"))
    [first] = extract_pipelines(project, ["suppliers_to_jaggaer"])
    assert (first.error, first.new, first.changed) == (None, 5, 0)
    assert first.warnings == 1, "U_JaggaerRef does not exist before the first run that writes: read without it"
    rows = staged(project)
    assert sorted(rows) == ["V10000", "V10001", "V10002", "V10003", "V10004"], "suppliers only (not C20000)"
    assert set(rows["V10001"]) == {"CardCode", "UpdateDate", "UpdateTime", "CardName", "FederalTaxID", "EmailAddress"}
    assert "Northwind Components" in first.summary() or rows["V10001"]["CardName"] == "Northwind Components"

    [second] = extract_pipelines(project, ["suppliers_to_jaggaer"])
    assert (second.error, second.new, second.changed) == (None, 0, 0)

    b1_patch(sim, "V10002", {"FederalTaxID": "47-9999999"})
    b1_patch(sim, "V10003", {"FederalTaxID": staged(project)["V10003"]["FederalTaxID"]})  # a save changing nothing
    b1_patch(sim, "V10004", {"Notes": "not a selected field"})
    [third] = extract_pipelines(project, ["suppliers_to_jaggaer"])
    assert (third.error, third.new, third.changed) == (None, 0, 1)
    assert staged(project)["V10002"]["FederalTaxID"] == "47-9999999"


def test_a_crash_before_the_cursor_is_stored_loses_nothing(tmp_path: Path, sim, monkeypatch) -> None:  # noqa: ANN001
    project = make_project(tmp_path, sim.service_root("v2"), commit_every=2)
    spec = load_project(tmp_path, ["suppliers_to_jaggaer"], check_mappings=False).pipeline("suppliers_to_jaggaer")
    for i in range(4):
        b1_create(sim, f"V2000{i}")
    import engine.extract as extract_module

    real = extract_module.save_b1_cursor
    saves: list[Any] = []

    def crash_on_the_last(conn, pipeline, cursor):  # noqa: ANN001, ANN202
        saves.append(cursor.stamp)
        if cursor.stamp is not None:  # the end of the read: the process dies before the cursor is stored
            raise KeyboardInterrupt("killed")
        real(conn, pipeline, cursor)

    monkeypatch.setattr(extract_module, "save_b1_cursor", crash_on_the_last)
    with pytest.raises(KeyboardInterrupt):
        extract_b1_pipeline(project, spec, page_size=2)
    assert len(saves) >= 3, "partial commits stored the seen pairs of their pages"
    with db.connect(project.state_path) as conn:
        assert load_b1_cursor(conn, spec.name).stamp is None
    monkeypatch.setattr(extract_module, "save_b1_cursor", real)
    b1_patch(sim, "V20001", {"CardName": "changed meanwhile"})
    result = extract_b1_pipeline(project, spec, page_size=2)
    assert result.error is None
    rows = staged(project)
    assert len(rows) == 9 and rows["V20001"]["CardName"] == "changed meanwhile"
    assert result.new + result.changed <= 3, "pages committed before the crash are not handed over again"
    with db.connect(project.state_path) as conn:
        assert load_b1_cursor(conn, spec.name).stamp is not None


def test_an_unreachable_service_layer_fails_the_source_naming_the_url(tmp_path: Path) -> None:
    project = make_project(tmp_path, "http://127.0.0.1:9/b1s/v2")
    [result] = extract_pipelines(project, ["suppliers_to_jaggaer"])
    assert result.error and "127.0.0.1:9" in result.error and result.unreachable
