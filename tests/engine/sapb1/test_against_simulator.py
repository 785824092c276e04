"""The client against the Service Layer simulator over real sockets (both roots where it matters)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest

from engine.retry import Backoff
from engine.sapb1 import (
    BatchRequest,
    ChangeSet,
    LoginError,
    SapB1Client,
    ServiceLayerError,
    TransportError,
    ensure_user_field,
    entity_path,
    fetch_reference_codes,
    format_date,
    odata_literal,
    parse_date,
)

simulator = pytest.importorskip("simulators.sapb1")
if not hasattr(simulator, "start_simulator"):
    pytest.skip("the SAP B1 simulator does not expose start_simulator yet", allow_module_level=True)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
FAST = Backoff(attempts=10, base=0.002, cap=0.01)
CALM = dict(latency_ms=0, workers=0, error_rate=0, drop_before_rate=0, drop_after_rate=0, internal_error_rate=0,
            session_kill_rate=0, expect_continue_500=False, user_locked=False)


@pytest.fixture(scope="module")
def sim():
    with simulator.start_simulator(seed="demo", session_timeout=1800) as running:
        yield running


@pytest.fixture(autouse=True)
def calm(sim):
    sim.set_knobs(**CALM)
    yield
    sim.set_knobs(**CALM)


def client_for(sim, version: str = "v2", **kwargs) -> SapB1Client:
    kwargs.setdefault("read_retry", FAST)
    return SapB1Client(sim.service_root(version), sim.company, sim.user, sim.password, **kwargs)


def sim_logins(sim) -> int | None:
    counters = sim.counters
    value = counters.get("logins") if isinstance(counters, dict) else getattr(counters, "logins", None)
    return int(value) if value is not None else None


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


async def test_one_login_for_many_requests(sim):
    before = sim_logins(sim)
    async with client_for(sim, max_concurrency=8) as client:
        info = await client.login()
        rows = await asyncio.gather(*(client.get(entity_path("Items", "BRK-2210")) for _ in range(40)))
    assert {row["ItemCode"] for row in rows} == {"BRK-2210"}
    assert info.b1_version and info.session_timeout_minutes == 30
    assert client.session.logins == 1
    if before is not None:
        assert sim_logins(sim) - before == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_session_expiry_mid_batch_relogs_in_exactly_once(sim, version):
    sim.set_knobs(latency_ms=5)
    async with client_for(sim, version, max_concurrency=4) as client:
        await client.login()
        done = 0

        async def read(i: int) -> dict:
            nonlocal done
            row = await client.get(entity_path("BusinessPartners", "V10001"), select="CardCode,CardName")
            done += 1
            if done == 10:
                sim.expire_sessions()
            return row

        rows = await asyncio.gather(*(read(i) for i in range(40)))
    assert all(row["CardCode"] == "V10001" for row in rows)
    assert client.session.logins == 2


async def test_concurrent_session_timeouts_cause_one_login(sim):
    sim.set_knobs(latency_ms=20)
    async with client_for(sim, max_concurrency=16) as client:
        await client.login()
        sim.expire_sessions()
        before = sim_logins(sim)
        rows = await asyncio.gather(*(client.get("Projects('P-2024-01')") for _ in range(16)))
    assert {row["Code"] for row in rows} == {"P-2024-01"}
    assert client.session.logins == 2
    if before is not None:
        assert sim_logins(sim) - before == 1


async def test_wrong_password_is_a_clean_error(sim):
    client = SapB1Client(sim.service_root("v2"), sim.company, sim.user, "not-the-Passw0rd", read_retry=FAST)
    async with client:
        with pytest.raises(LoginError) as info:
            await client.get("Items")
        with pytest.raises(LoginError):
            await client.get("Items")
    assert info.value.status == 401 and info.value.code == 100000027
    assert "not-the-Passw0rd" not in str(info.value) + repr(info.value) + info.value.body
    assert client.session.logins == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_paging_to_the_end(sim, version):
    async with client_for(sim, version) as client:
        expected = await client.count("ChartOfAccounts")
        sent = client.requests_sent
        codes = [row["Code"] async for row in client.query("ChartOfAccounts", select="Code", page_size=3)]
        assert client.requests_sent - sent == -(-expected // 3)  # one GET per page of 3
        postable = [row async for row in client.query(
            "ChartOfAccounts", filter="ActiveAccount eq 'tYES'", select=["Code", "ActiveAccount"], page_size=4)]
    assert len(codes) == expected == len(set(codes)) >= 15
    assert codes == sorted(codes)
    assert len(postable) == 10 and {row["ActiveAccount"] for row in postable} == {"tYES"}


async def test_create_find_by_quotes_patch_and_get_with_awkward_keys(sim):
    code = "Q'#/ " + uuid.uuid4().hex[:6]
    name = "O'Brien & Sons #1 + 50% / 'quoted'"
    async with client_for(sim) as client:
        created = await client.create("BusinessPartners", {"CardCode": code, "CardName": name, "CardType": "cSupplier"})
        assert created["CardCode"] == code
        found = await client.find_by("BusinessPartners", "CardName", name, select="CardCode,CardName")
        assert [row["CardCode"] for row in found] == [code]
        etag = await client.patch(entity_path("BusinessPartners", code), {"Phone1": "+1 937 555 0100"})
        row = await client.get(entity_path("BusinessPartners", code), select=["CardCode", "Phone1"])
        assert row["Phone1"] == "+1 937 555 0100"
        assert etag is None or etag.startswith("W/")
        assert await client.find_by("BusinessPartners", "CardName", name + "x") == []


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_purchase_order_create_patch_and_close(sim, version):
    async with client_for(sim, version) as client:
        due = format_date(date(2024, 5, 16), version)
        po = await client.create("PurchaseOrders", {
            "CardCode": "V10000", "DocDate": format_date(date(2024, 5, 2), version), "DocDueDate": due,
            "DocumentLines": [{"ItemCode": "BRK-2210", "Quantity": 10, "UnitPrice": 12.4, "TaxCode": "EX",
                               "AccountCode": "510000", "CostingCode": "PLANT1"}],
        })
        path = entity_path("PurchaseOrders", po["DocEntry"])
        assert po["DocDueDate"] == due and parse_date(po["DocDate"]) == date(2024, 5, 2)
        await client.patch(path, {"Comments": "from JAGGAER"})
        assert (await client.get(path, select="Comments"))["Comments"] == "from JAGGAER"
        await client.action(path, "Close")
        assert (await client.get(path, select="DocumentStatus"))["DocumentStatus"] == "bost_Close"
        with pytest.raises(ServiceLayerError) as info:
            await client.action(path, "Close")
        assert info.value.is_business and info.value.code == -10
        with pytest.raises(ServiceLayerError) as info:
            await client.get(entity_path("PurchaseOrders", 999999))
        assert info.value.is_not_found


async def test_business_answer_is_not_retried(sim):
    async with client_for(sim) as client:
        with pytest.raises(ServiceLayerError) as info:
            await client.create("PurchaseOrders", {
                "CardCode": "V10000",
                "DocumentLines": [{"ItemCode": "BRK-2210", "Quantity": 1, "AccountCode": "999999"}],
            })
    assert info.value.status == 400 and info.value.is_business and info.value.code in (-5002, -2028)


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_batch_change_set_and_read(sim, version):
    code = unique("BT")
    async with client_for(sim, version) as client:
        results = await client.batch([
            ChangeSet([
                BatchRequest("POST", "BusinessPartners", {"CardCode": code, "CardName": "Batch supplier",
                                                          "CardType": "cSupplier"}),
                BatchRequest("PATCH", entity_path("BusinessPartners", code), {"Phone1": "555"}),
            ]),
            BatchRequest("GET", f"{entity_path('BusinessPartners', code)}?$select=CardCode,Phone1"),
        ])
        assert [r.status for r in results] == [201, 204, 200]
        assert results[0].body["CardCode"] == code and results[0].request.method == "POST"
        assert results[2].body["Phone1"] == "555"
        failed = await client.batch([
            ChangeSet([
                BatchRequest("PATCH", entity_path("BusinessPartners", code), {"Phone1": "777"}),
                BatchRequest("POST", "BusinessPartners", {"CardCode": code, "CardName": "dup", "CardType": "cSupplier"}),
            ]),
            BatchRequest("GET", entity_path("BusinessPartners", code)),
        ])
        assert len(failed) == 1 and failed[0].error is not None and failed[0].error.is_duplicate
        # the change set was rolled back as a whole
        assert (await client.get(entity_path("BusinessPartners", code), select="Phone1"))["Phone1"] == "555"


async def test_reads_survive_transient_faults(sim):
    async with client_for(sim, max_concurrency=4) as client:
        await client.login()
        sim.set_knobs(error_rate=0.2, drop_before_rate=0.2)
        faults_before = sim.counters["faults"]
        rows = await asyncio.gather(*(client.get(entity_path("Items", "SEAL-0031")) for _ in range(20)))
        sim.set_knobs(**CALM)
        faults = sim.counters["faults"]
    assert {row["ItemCode"] for row in rows} == {"SEAL-0031"}
    injected = sum(faults[k] - faults_before[k] for k in ("errors", "dropped_before"))
    assert injected > 0 and client.requests_sent == 20 + injected  # one more try per injected fault


async def test_lost_write_answer_is_maybe_committed(sim):
    landed, dropped = unique("LA"), unique("LB")
    async with client_for(sim) as client:
        await client.login()
        sim.set_knobs(drop_after_rate=1.0)
        with pytest.raises(TransportError) as info:
            await client.create("BusinessPartners", {"CardCode": landed, "CardName": "x", "CardType": "cSupplier"})
        assert info.value.maybe_committed
        sim.set_knobs(drop_after_rate=0, drop_before_rate=1.0)
        with pytest.raises(TransportError) as info:
            await client.create("BusinessPartners", {"CardCode": dropped, "CardName": "x", "CardType": "cSupplier"})
        assert info.value.maybe_committed  # the client cannot tell: the loader looks the reference up
        sim.set_knobs(**CALM)
        assert len(await client.find_by("BusinessPartners", "CardCode", landed)) == 1
        assert await client.find_by("BusinessPartners", "CardCode", dropped) == []
        sim.set_knobs(error_rate=1.0)
        with pytest.raises(ServiceLayerError) as error:
            await client.patch(entity_path("BusinessPartners", landed), {"Phone1": "1"})
        assert error.value.is_transient


async def test_user_field_setup_and_lookup_by_reference(sim):
    name = unique("JGR")
    async with client_for(sim) as client:
        field = await ensure_user_field(client, "OPOR", name, "JAGGAER purchase order id", 50)
        again = await ensure_user_field(client, "OPOR", name, "JAGGAER purchase order id", 50)
        assert field.created and not again.created and again.field_id == field.field_id
        ref = "PO-O'Neil#7"
        po = await client.create("PurchaseOrders", {
            "CardCode": "V10001", field.property_name: ref,
            "DocumentLines": [{"ItemCode": "SEAL-0031", "Quantity": 4, "UnitPrice": 0.85, "TaxCode": "EX"}],
        })
        found = await client.find_by("PurchaseOrders", field.property_name, ref, select=["DocEntry", field.property_name])
    assert [row["DocEntry"] for row in found] == [po["DocEntry"]]


async def test_reference_codes(sim):
    async with client_for(sim) as client:
        codes = await fetch_reference_codes(client)
    assert codes.is_account("510000") and not codes.is_account("500000")  # title accounts are not postable
    assert codes.is_costing_code("PLANT1", 1) and codes.is_costing_code("PLANTS", 1)
    assert not codes.is_costing_code("OLDCC", 1) and codes.is_costing_code("PROD", 2)
    assert codes.is_project("P-2024-01") and not codes.is_project("P-2019-OLD")
    assert {1, 2, 3, 4} <= codes.payment_terms
    assert {"V10000", "V10004"} <= codes.suppliers and "C20000" not in codes.suppliers


async def test_idle_connection_closed_by_the_server_does_not_break_a_write(sim):
    async with client_for(sim) as client:
        await client.get(entity_path("Items", "BOLT-M8"))
        await asyncio.sleep(5.3)  # the server closes idle keep-alive connections after 5 s
        created = await client.create("BusinessPartners", {"CardCode": unique("KA"), "CardName": "idle",
                                                            "CardType": "cSupplier"})
    assert created["CardType"] == "cSupplier"


async def test_check_verb_core(sim):
    from engine.checks import check_connections
    from engine.project import Project

    profile = {"kind": "sapb1", "service_root": sim.service_root("v2"), "company_db": sim.company,
               "username": sim.user}
    project = Project(root=".", name="t", state_path="var/state.duckdb", connections={
        "b1": {**profile, "password": sim.password},
        "b1_bad": {**profile, "password": "wrong-Secret-9"},
        "jg": {"kind": "jaggaer", "base_url": "http://127.0.0.1:9", "token_url": "http://127.0.0.1:9/token",
               "client_id": "c", "client_secret": "s", "timeout": 2},
    }, environ={})
    results = {r.name: r for r in await check_connections(project)}
    assert results["b1"].ok and "session timeout 30 min" in results["b1"].detail
    assert not results["b1_bad"].ok and "100000027" in results["b1_bad"].detail
    assert "wrong-Secret-9" not in results["b1_bad"].detail
    assert not results["jg"].ok


async def test_paging_keeps_a_filter_with_reserved_characters(sim):
    name = f"A&B #{uuid.uuid4().hex[:4]} 50% 'x'"
    codes = [unique("PG") for _ in range(3)]
    async with client_for(sim, "v1") as client:
        for code in codes:
            await client.create("BusinessPartners", {"CardCode": code, "CardName": name, "CardType": "cSupplier"})
        sent = client.requests_sent
        rows = [r async for r in client.query("BusinessPartners", filter=f"CardName eq {odata_literal(name)}",
                                              select="CardCode", page_size=1)]
        assert client.requests_sent - sent == 3
    assert sorted(row["CardCode"] for row in rows) == sorted(codes)


async def test_no_expect_continue_so_apache_500_never_happens(sim):
    sim.set_knobs(expect_continue_500=True)
    async with client_for(sim) as client:
        created = await client.create("BusinessPartners", {"CardCode": unique("EX"), "CardName": "x",
                                                           "CardType": "cSupplier"})
        results = await client.batch([BatchRequest("GET", entity_path("BusinessPartners", created["CardCode"]))])
    assert results[0].status == 200


async def test_a_session_killed_again_after_relogin_fails_instead_of_looping(sim):
    async with client_for(sim) as client:
        await client.login()
        sim.set_knobs(session_kill_rate=1.0)
        with pytest.raises(ServiceLayerError) as info:
            await client.get(entity_path("Items", "BOLT-M8"))
        sim.set_knobs(**CALM)
        assert info.value.is_session_timeout and client.session.logins == 2
        assert (await client.get(entity_path("Items", "BOLT-M8")))["ItemCode"] == "BOLT-M8"


async def test_injected_internal_error_is_a_business_answer_sent_once(sim):
    async with client_for(sim) as client:
        await client.login()
        sim.set_knobs(internal_error_rate=1.0)
        sent = client.requests_sent
        with pytest.raises(ServiceLayerError) as info:
            await client.create("BusinessPartners", {"CardCode": unique("IE"), "CardName": "x", "CardType": "cSupplier"})
    assert info.value.code == -5002 and info.value.kind == "business" and client.requests_sent - sent == 1


async def test_locked_user(sim):
    sim.set_knobs(user_locked=True)
    async with client_for(sim, "v1") as client:
        with pytest.raises(LoginError) as info:
            await client.login()
    assert info.value.code == 100000055 and client.session.logins == 1
