"""The client against an in-process stand-in (httpx.MockTransport): session, paging, retries, writes."""

import asyncio
import json
import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from engine.errors import ConfigError
from engine.retry import Backoff
from engine.sapb1 import LoginError, SapB1Client, ServiceLayerError, TransportError, entity_path
from tests.engine.sapb1.fake_sl import FakeServiceLayer

pytestmark = pytest.mark.anyio
FAST = Backoff(attempts=3, base=0.001, cap=0.002)


def make_client(fake: FakeServiceLayer, **kwargs) -> SapB1Client:
    kwargs.setdefault("read_retry", FAST)
    return SapB1Client(fake.root, fake.company, fake.user, fake.password, transport=fake.transport(), **kwargs)


def ok(body: dict | None = None, status: int = 200, **headers) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


def options(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


async def test_one_login_many_requests_and_explicit_cookie():
    fake = FakeServiceLayer()
    fake.routes[("GET", "Items('A')")] = lambda r: ok({"ItemCode": "A"})
    async with make_client(fake) as client:
        results = await asyncio.gather(*(client.get(entity_path("Items", "A")) for _ in range(20)))
        info = client.session.info
    assert [r["ItemCode"] for r in results] == ["A"] * 20
    assert fake.logins == 1 and fake.logouts == 1
    assert info.b1_version == "1000310" and info.session_timeout_minutes == 30 and info.node == ".node1"
    login = fake.requests[0]
    assert json.loads(login.content) == {"CompanyDB": "SBODEMOUS", "UserName": "manager", "Password": "s3cret-pw"}
    for request in fake.requests[1:]:
        assert request.headers["cookie"].startswith("B1SESSION=") and request.headers["cookie"].endswith("; ROUTEID=.node1")
        assert "expect" not in request.headers


async def test_expired_session_relogs_in_once_and_replays():
    fake = FakeServiceLayer()
    fake.routes[("POST", "BusinessPartners")] = lambda r: ok({"CardCode": "V1"}, 201)
    async with make_client(fake) as client:
        await client.login()
        fake.expire_sessions()
        created = await client.create("BusinessPartners", {"CardCode": "V1"})
        assert created == {"CardCode": "V1"}
        assert fake.logins == 2
        assert client.session.info.generation == 2


async def test_concurrent_301s_cause_a_single_login():
    fake = FakeServiceLayer()

    async def slow(request):
        await asyncio.sleep(0.01)
        return ok({"value": 1})

    fake.routes[("GET", "Items('A')")] = slow
    async with make_client(fake, max_concurrency=16) as client:
        await client.login()
        fake.expire_sessions()
        await asyncio.gather(*(client.get("Items('A')") for _ in range(16)))
    assert fake.logins == 2


async def test_second_301_after_relogin_fails_without_looping():
    fake = FakeServiceLayer()
    fake.routes[("GET", "Items")] = lambda r: fake.error(401, 301, "Invalid session or session already timeout.")
    async with make_client(fake) as client:
        with pytest.raises(ServiceLayerError) as info:
            await client.get("Items")
    assert info.value.is_session_timeout
    assert fake.logins == 2


async def test_wrong_password_is_a_clean_login_error_without_secrets(caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeServiceLayer()
    client = SapB1Client(fake.root, fake.company, fake.user, "wrong-pw-123", transport=fake.transport())
    async with client:
        with pytest.raises(LoginError) as info:
            await client.get("Items")
        with pytest.raises(LoginError):  # remembered, never retried
            await client.query("Items").__anext__()
    error = info.value
    assert error.status == 401 and error.code == 100000027 and "Login failed" in str(error)
    assert fake.logins == 1
    for text in (str(error), repr(error), repr(client), repr(client.session), caplog.text, error.body):
        assert "wrong-pw-123" not in text


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [(401, -304, "Fail to get DB Credentials from SLD"), (401, 100000055, "User is locked"),
     (400, -1000, "Invalid login parameters")],
)
async def test_login_failures_carry_code_and_message(status, code, message):
    fake = FakeServiceLayer(version="v1", login_status=(status, code, message))
    async with make_client(fake) as client:
        with pytest.raises(LoginError) as info:
            await client.login()
    assert info.value.code == code and message in str(info.value)


async def test_paging_follows_v2_relative_links_and_reapplies_dropped_options():
    fake = FakeServiceLayer()
    pages = {
        None: {"value": [{"DocEntry": 1}, {"DocEntry": 2}], "@odata.nextLink": "PurchaseOrders?$skip=2"},
        "2": {"value": [{"DocEntry": 3}], "@odata.nextLink": "PurchaseOrders?$skip=3&$filter=CardCode eq 'V1'"},
        "3": {"value": [{"DocEntry": 4}]},
    }
    seen = []

    def route(request):
        seen.append((options(request), request.headers.get("prefer")))
        return ok(pages[options(request).get("$skip")])

    fake.routes[("GET", "PurchaseOrders")] = route
    async with make_client(fake) as client:
        rows = [r async for r in client.query("PurchaseOrders", filter="CardCode eq 'V1'", select=["DocEntry"],
                                             page_size=2)]
    assert [r["DocEntry"] for r in rows] == [1, 2, 3, 4]
    assert all(prefer == "odata.maxpagesize=2" for _, prefer in seen)
    assert all(opts["$filter"] == "CardCode eq 'V1'" for opts, _ in seen)
    assert seen[1][0]["$select"] == "DocEntry"  # dropped by the link, re-applied


async def test_paging_v1_absolute_path_links():
    fake = FakeServiceLayer(version="v1")

    def route(request):
        if options(request).get("$skip") == "1":
            return ok({"value": [{"Code": "B"}]})
        return ok({"value": [{"Code": "A"}], "odata.nextLink": "/b1s/v1/Projects?$skip=1"})

    fake.routes[("GET", "Projects")] = route
    async with make_client(fake) as client:
        assert [r["Code"] async for r in client.query("Projects")] == ["A", "B"]


async def test_find_by_escapes_quotes_and_reserved_characters():
    fake = FakeServiceLayer()
    captured = []

    def route(request):
        captured.append(request)
        return ok({"value": [{"DocEntry": 7}]})

    fake.routes[("GET", "PurchaseOrders")] = route
    value = "O'Brien & Co #1 +50%"
    async with make_client(fake) as client:
        rows = await client.find_by("PurchaseOrders", "U_JGR_PO_ID", value, select="DocEntry")
    assert rows == [{"DocEntry": 7}]
    assert options(captured[0])["$filter"] == "U_JGR_PO_ID eq 'O''Brien & Co #1 +50%'"
    raw = captured[0].url.raw_path.decode()
    assert "$filter=" in raw and "%26" in raw and "%23" in raw and "%2B" in raw


async def test_reads_retry_transient_faults():
    fake = FakeServiceLayer()
    answers = iter([
        httpx.Response(503, text="<html>Service Unavailable</html>"),
        "drop",
        ok({"Code": "P1"}),
    ])

    def route(request):
        answer = next(answers)
        if answer == "drop":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return answer

    fake.routes[("GET", "Projects('P1')")] = route
    async with make_client(fake) as client:
        assert (await client.get("Projects('P1')", select=["Code", "Name"]))["Code"] == "P1"
    gets = [r for r in fake.requests if r.method == "GET"]
    assert len(gets) == 3 and all(options(r) == {"$select": "Code,Name"} for r in gets)


async def test_reads_give_up_after_the_budget_and_business_errors_are_not_retried():
    fake = FakeServiceLayer()
    calls = {"n": 0}

    def failing(request):
        calls["n"] += 1
        return httpx.Response(502, text="")

    fake.routes[("GET", "Projects")] = failing
    fake.routes[("GET", "Items('X')")] = lambda r: fake.error(404, -2028, "No matching records found (ODBC -2028)")
    async with make_client(fake) as client:
        with pytest.raises(ServiceLayerError) as info:
            await client.get("Projects")
        assert info.value.status == 502 and calls["n"] == 3
        with pytest.raises(ServiceLayerError) as info:
            await client.get("Items('X')")
        assert info.value.is_not_found
    assert sum(1 for r in fake.requests if "Items" in str(r.url)) == 1


async def test_writes_are_never_retried():
    fake = FakeServiceLayer()
    calls = {"n": 0}

    def route(request):
        calls["n"] += 1
        return httpx.Response(503)

    fake.routes[("POST", "PurchaseOrders")] = route
    async with make_client(fake) as client:
        with pytest.raises(ServiceLayerError) as info:
            await client.create("PurchaseOrders", {"CardCode": "V1"})
    assert info.value.is_transient and calls["n"] == 1


async def test_lost_write_answer_is_maybe_committed_and_refused_connect_is_not():
    fake = FakeServiceLayer()

    def lost(request):
        raise httpx.ReadTimeout("timed out", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    fake.routes[("POST", "PurchaseOrders")] = lost
    fake.routes[("PATCH", "PurchaseOrders(1)")] = refused
    async with make_client(fake) as client:
        with pytest.raises(TransportError) as info:
            await client.create("PurchaseOrders", {"CardCode": "V1"})
        assert info.value.maybe_committed and info.value.request_sent
        with pytest.raises(TransportError) as info:
            await client.patch("PurchaseOrders(1)", {"Comments": "x"})
        assert not info.value.maybe_committed
        assert "B1SESSION" not in str(info.value) and info.value.__cause__ is None


async def test_patch_action_and_count_requests():
    fake = FakeServiceLayer()
    seen = {}

    def patch(request):
        seen["patch"] = request
        return httpx.Response(204, headers={"ETag": 'W/"ABC"'})

    fake.routes[("PATCH", "PurchaseOrders(5)")] = patch
    fake.routes[("POST", "PurchaseOrders(5)/Close")] = lambda r: httpx.Response(204)
    fake.routes[("GET", "PurchaseOrders/$count")] = lambda r: httpx.Response(200, text="17")
    async with make_client(fake) as client:
        etag = await client.patch("PurchaseOrders(5)", {"DocumentLines": []}, replace_collections=True,
                                  if_match='W/"X"')
        assert etag == 'W/"ABC"'
        assert await client.action("PurchaseOrders(5)", "Close") is None
        assert await client.count("PurchaseOrders", "CardCode eq 'V1'") == 17
    request = seen["patch"]
    assert request.method == "PATCH"
    assert request.headers["b1s-replacecollectionsonpatch"] == "true"
    assert request.headers["if-match"] == 'W/"X"'
    assert json.loads(request.content) == {"DocumentLines": []}


async def test_bounded_concurrency():
    fake = FakeServiceLayer()
    state = {"now": 0, "peak": 0}

    async def route(request):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.005)
        state["now"] -= 1
        return ok({})

    fake.routes[("GET", "Items")] = route
    async with make_client(fake, max_concurrency=3) as client:
        await asyncio.gather(*(client.get("Items") for _ in range(15)))
    assert state["peak"] == 3
    assert make_client(fake, max_concurrency=500).max_concurrency == 40


async def test_failed_logout_is_not_raised(caplog):
    fake = FakeServiceLayer()
    fake.routes[("GET", "Items")] = lambda r: ok({})
    client = make_client(fake)
    await client.get("Items")
    fake.expire_sessions()  # the logout will be answered 401/301
    await client.aclose()
    assert "logout failed" in caplog.text


async def test_login_without_an_answer_or_with_a_5xx_is_retried_but_a_refusal_is_not():
    fake = FakeServiceLayer()
    fake.routes[("GET", "Items")] = lambda r: ok({"value": []})
    answers = iter(["drop", httpx.Response(503, text="")])
    real_login = fake._login

    def flaky_login(request):
        answer = next(answers, None)
        if answer == "drop":
            fake.logins += 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if answer is not None:
            fake.logins += 1
            return answer
        return real_login(request)

    fake._login = flaky_login
    async with make_client(fake) as client:
        await client.get("Items")
        assert client.session.logins == 3 and client.session.info.generation == 1


async def test_login_that_never_answers_fails_the_client_for_good():
    fake = FakeServiceLayer()

    def refused(request):
        fake.logins += 1
        raise httpx.ConnectError("connection refused", request=request)

    fake._login = refused
    async with make_client(fake) as client:
        with pytest.raises(TransportError) as info:
            await client.get("Items")
        assert not info.value.is_transient  # a caller's retry loop will not hammer the Login
        with pytest.raises(TransportError):
            await client.get("Items")
    assert fake.logins == FAST.attempts


def test_from_profile_coerces_environment_strings():
    profile = {"kind": "sapb1", "service_root": "https://erp:50000/b1s/v1", "company_db": "SBODEMOUS",
               "username": "manager", "password": "pw", "max_concurrency": "12", "verify_tls": "false",
               "timeout": "60"}
    client = SapB1Client.from_profile(profile)
    assert client.max_concurrency == 12 and client.timeout == 60.0 and client.version == "v1"
    with pytest.raises(ConfigError) as info:
        SapB1Client.from_profile({**profile, "password": None})
    assert "password" in str(info.value)
    with pytest.raises(ConfigError):
        SapB1Client.from_profile({**profile, "max_concurrency": "many"})


async def test_session_idle_for_most_of_its_timeout_is_renewed_before_the_next_request():
    fake = FakeServiceLayer()  # answers SessionTimeout 30 (minutes)
    fake.routes[("GET", "Items('A')")] = lambda r: ok({"ItemCode": "A"})
    now = [1000.0]
    async with make_client(fake) as client:
        client.session._clock = lambda: now[0]
        await client.get(entity_path("Items", "A"))
        now[0] += 26 * 60  # idle, but well inside the timeout: same session
        await client.get(entity_path("Items", "A"))
        assert fake.logins == 1
        now[0] += 28 * 60  # idle for more than 90% of 30 minutes: renewed first, no refused request
        await client.get(entity_path("Items", "A"))
        assert fake.logins == 2 and client.session.info.generation == 2
    paths = [r.url.path.rsplit("/", 1)[-1] for r in fake.requests]
    assert paths[:5] == ["Login", "Items('A')", "Items('A')", "Login", "Items('A')"]  # no refused request
