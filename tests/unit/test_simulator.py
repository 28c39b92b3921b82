import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.simulator.server import SIMULATOR, SimulatorConfig, create_app

TOKEN = "test-token"
SECRET = "test-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT_S = 5


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


def message(**overrides: Any) -> dict[str, Any]:
    body = {
        "to": "+8613812345678",
        "from": "10690000",
        "text": "hello",
        "encoding": "gsm7",
        "segments": 1,
        "reference": "msg-1",
    }
    return {**body, **overrides}


@dataclass
class DlrReceiver:
    """Stands in for Herald's DLR endpoint: checks the signature and records what arrives."""

    secret: str
    fail_first: int = 0
    delay_s: float = 0.0  # how long each answer takes
    calls: int = 0
    received: asyncio.Queue = field(default_factory=asyncio.Queue)
    bad_signatures: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        raw = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Herald-Signature", ""), expected):
            self.bad_signatures.append(raw)
            return web.Response(status=401)
        if self.calls <= self.fail_first:
            return web.Response(status=500)
        await asyncio.sleep(self.delay_s)
        await self.received.put(json.loads(raw))
        return web.Response(status=204)

    async def next_dlr(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.received.get(), timeout=WAIT_S)


@asynccontextmanager
async def carrier(
    fail_first: int = 0, receiver_delay_s: float = 0.0, **config: Any
) -> AsyncIterator[tuple[TestClient, DlrReceiver]]:
    receiver = DlrReceiver(secret=SECRET, fail_first=fail_first, delay_s=receiver_delay_s)
    receiver_app = web.Application()
    receiver_app.router.add_post("/carriers/sim/dlr", receiver.handle)
    async with TestServer(receiver_app, host="127.0.0.1") as receiver_server:
        settings = {
            "dlr_url": str(receiver_server.make_url("/carriers/sim/dlr")),
            "dlr_secret": SECRET,
            "api_token": TOKEN,
            "dlr_delay_ms": 0,
            "dlr_backoff_ms": 10,
            **config,
        }
        app = create_app(SimulatorConfig(**settings))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield client, receiver


async def submit(client: TestClient, **overrides: Any):
    return await client.post("/submit", json=message(**overrides), headers=AUTH)


async def control(client: TestClient, **settings: Any) -> None:
    resp = await client.post("/control", json=settings)
    assert resp.status == 200, await resp.text()


def test_submit_with_the_right_token_is_accepted_and_recorded():
    async def go():
        async with carrier() as (client, _):
            resp = await submit(client, text="你好", encoding="ucs2")
            assert resp.status == 200
            body = await resp.json()
            assert body["status"] == "accepted"
            assert len(body["carrier_message_id"]) == 32
            int(body["carrier_message_id"], 16)

            [row] = await (await client.get("/submissions")).json()
            assert row["carrier_message_id"] == body["carrier_message_id"]
            assert (row["to"], row["from"], row["text"]) == ("+8613812345678", "10690000", "你好")
            assert (row["encoding"], row["segments"], row["reference"]) == ("ucs2", 1, "msg-1")
            assert row["received_at"].endswith("Z")
            assert isinstance(row["received_monotonic"], float)

    run(go)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_submit_without_the_right_bearer_token_is_refused_401(headers):
    async def go():
        async with carrier() as (client, _):
            resp = await client.post("/submit", json=message(), headers=headers)
            assert resp.status == 401
            assert await (await client.get("/submissions")).json() == []
            assert (await (await client.get("/stats")).json())["unauthorized"] == 1

    run(go)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps({k: v for k, v in message().items() if k != "to"}),
        json.dumps(message(to="")),
        json.dumps(message(text=5)),
        json.dumps(message(reference=None)),
        json.dumps(message(encoding="latin1")),
        json.dumps(message(segments=0)),
        json.dumps(message(segments=True)),
    ],
)
def test_malformed_submit_body_is_answered_400(body):
    async def go():
        async with carrier() as (client, _):
            resp = await client.post("/submit", data=body, headers=AUTH)
            assert resp.status == 400
            payload = await resp.json()
            assert payload["error"] == "malformed body"
            assert payload["reason"]

    run(go)


def test_dlr_arrives_signed_with_the_same_carrier_message_id():
    async def go():
        async with carrier() as (client, receiver):
            resp = await submit(client, reference="ref-42")
            carrier_id = (await resp.json())["carrier_message_id"]
            dlr = await receiver.next_dlr()
            assert dlr["carrier_message_id"] == carrier_id
            assert dlr["reference"] == "ref-42"
            assert dlr["status"] == "delivered"
            assert dlr["error_code"] is None
            assert dlr["reported_at"].endswith("Z")
            assert receiver.bad_signatures == []
            stats = await (await client.get("/stats")).json()
            assert stats["dlr_sent"] == 1
            [row] = await (await client.get("/submissions")).json()
            assert row["dlr"] == "sent"

    run(go)


def test_dlr_signed_with_another_secret_is_refused_by_the_receiver_and_not_retried():
    async def go():
        async with carrier(dlr_secret="not-the-receivers-secret") as (client, receiver):
            await submit(client)
            while (await (await client.get("/stats")).json())["dlr_failed"] == 0:
                await asyncio.sleep(0.01)
            assert len(receiver.bad_signatures) == 1
            assert receiver.received.empty()

    run(go)


def test_dlr_is_retried_with_backoff_until_the_receiver_accepts_it():
    async def go():
        async with carrier(fail_first=2, dlr_attempts=4) as (client, receiver):
            resp = await submit(client)
            carrier_id = (await resp.json())["carrier_message_id"]
            dlr = await receiver.next_dlr()
            assert dlr["carrier_message_id"] == carrier_id
            assert receiver.calls == 3

    run(go)


def test_dlr_is_given_up_after_the_configured_attempts():
    async def go():
        async with carrier(fail_first=100, dlr_attempts=3) as (client, receiver):
            await submit(client)
            while (await (await client.get("/stats")).json())["dlr_failed"] == 0:
                await asyncio.sleep(0.01)
            assert receiver.calls == 3
            [row] = await (await client.get("/submissions")).json()
            assert row["dlr"] == "failed"

    run(go)


def test_submit_is_answered_before_a_slow_dlr_is_sent():
    async def go():
        async with carrier(dlr_delay_ms=60_000) as (client, receiver):
            resp = await asyncio.wait_for(submit(client), timeout=2)
            assert resp.status == 200
            assert (await (await client.get("/stats")).json())["dlr_pending"] == 1
            assert receiver.calls == 0

    run(go)


def test_fail_ratio_of_a_half_fails_exactly_half_of_ten_submits():
    async def go():
        async with carrier() as (client, _):
            await control(client, fail_ratio=0.5)
            statuses = [(await submit(client, reference=f"m{i}")).status for i in range(10)]
            assert statuses == [200, 503] * 5
            stats = await (await client.get("/stats")).json()
            assert (stats["submitted"], stats["failed"]) == (5, 5)

    run(go)


@pytest.mark.parametrize(("ratio", "failures"), [(0, 0), (0.1, 1), (0.25, 3), (1 / 3, 4), (1, 12)])
def test_fail_ratio_fails_a_deterministic_share_of_submits(ratio, failures):
    async def go():
        async with carrier(dlr_delay_ms=60_000) as (client, _):
            await control(client, fail_ratio=ratio)
            statuses = [(await submit(client)).status for _ in range(12)]
            assert statuses.count(503) == failures

    run(go)


def test_throttle_answers_429_with_retry_after():
    async def go():
        async with carrier() as (client, _):
            await control(client, throttle=True)
            resp = await submit(client)
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            await control(client, throttle=False)
            assert (await submit(client)).status == 200

    run(go)


def test_down_answers_503_even_before_checking_the_token():
    async def go():
        async with carrier() as (client, _):
            await control(client, down=True)
            assert (await submit(client)).status == 503
            assert (await client.post("/submit", json=message())).status == 503
            assert await (await client.get("/submissions")).json() == []

    run(go)


def test_reject_prefix_answers_a_permanent_400_invalid_destination():
    async def go():
        async with carrier() as (client, _):
            await control(client, reject_prefix="+999")
            resp = await submit(client, to="+99912345")
            assert resp.status == 400
            assert await resp.json() == {"error": "invalid destination"}
            assert (await submit(client, to="+8613812345678")).status == 200

    run(go)


def test_dlr_status_control_sets_the_status_reported():
    async def go():
        async with carrier() as (client, receiver):
            await control(client, dlr_status="undeliverable", dlr_error_code="E42")
            await submit(client)
            dlr = await receiver.next_dlr()
            assert (dlr["status"], dlr["error_code"]) == ("undeliverable", "E42")

    run(go)


def test_disabled_dlrs_are_not_sent():
    async def go():
        async with carrier() as (client, receiver):
            await control(client, dlr_enabled=False)
            assert (await submit(client)).status == 200
            [row] = await (await client.get("/submissions")).json()
            assert row["dlr"] == "disabled"
            assert (await (await client.get("/stats")).json())["dlr_pending"] == 0
            assert receiver.calls == 0

    run(go)


def test_latency_delays_the_submit_answer():
    async def go():
        async with carrier() as (client, _):
            await control(client, latency_ms=50)
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert (await submit(client)).status == 200
            assert loop.time() - start >= 0.05

    run(go)


def test_submissions_can_be_filtered_and_cleared():
    async def go():
        async with carrier(dlr_delay_ms=60_000) as (client, _):
            await submit(client, to="+1", reference="a")
            await submit(client, to="+2", reference="b")
            await submit(client, to="+1", reference="c")
            by_to = await (await client.get("/submissions", params={"to": "+1"})).json()
            assert [r["reference"] for r in by_to] == ["a", "c"]
            by_ref = await (await client.get("/submissions", params={"reference": "b"})).json()
            assert [r["to"] for r in by_ref] == ["+2"]
            assert (await client.delete("/submissions")).status == 200
            assert await (await client.get("/submissions")).json() == []

    run(go)


def test_reset_clears_submissions_and_restores_default_behaviour():
    async def go():
        async with carrier(dlr_delay_ms=60_000) as (client, _):
            await submit(client)
            await control(client, throttle=True, down=True, dlr_delay_ms=5)
            await control(client, reset=True)
            behaviour = (await (await client.get("/control")).json())["behaviour"]
            assert behaviour["throttle"] is False
            assert behaviour["down"] is False
            assert behaviour["dlr_delay_ms"] == 60_000
            assert await (await client.get("/submissions")).json() == []
            stats = await (await client.get("/stats")).json()
            assert stats["submitted"] == 0
            assert stats["dlr_pending"] == 0

    run(go)


@pytest.mark.parametrize(
    "settings",
    [
        {"bogus": 1},
        {"fail_ratio": 2},
        {"throttle": "yes"},
        {"dlr_status": "ok"},
        {"latency_ms": -1},
        {"fail_status": 404},
        {"drop_connection": "sometimes"},
    ],
)
def test_control_rejects_unknown_or_invalid_settings(settings):
    async def go():
        async with carrier() as (client, _):
            resp = await client.post("/control", json=settings)
            assert resp.status == 400
            assert (await resp.json())["reason"]

    run(go)


def test_health_answers_ok():
    async def go():
        async with carrier() as (client, _):
            resp = await client.get("/health")
            assert await resp.json() == {"status": "ok"}

    run(go)


def test_app_exposes_its_state_for_tests():
    app = create_app(SimulatorConfig())
    assert app[SIMULATOR].config.port == 8900


def test_config_reads_herald_sim_environment_variables():
    env = {
        "HERALD_SIM_PORT": "9001",
        "HERALD_SIM_NAME": "acme",
        "HERALD_SIM_DLR_URL": "http://127.0.0.1:1/dlr",
        "HERALD_SIM_DLR_SECRET": "s",
        "HERALD_SIM_DLR_DELAY_MS": "5",
        "HERALD_SIM_API_TOKEN": "t",
    }
    config = SimulatorConfig.from_env(env).validate()
    assert (config.port, config.name, config.dlr_url) == (9001, "acme", "http://127.0.0.1:1/dlr")
    assert (config.dlr_secret, config.dlr_delay_ms, config.api_token) == ("s", 5, "t")
    assert SimulatorConfig.from_env({}) == SimulatorConfig()


@pytest.mark.parametrize(
    "env",
    [
        {"HERALD_SIM_PORT": "eighty"},
        {"HERALD_SIM_PORT": "70000"},
        {"HERALD_SIM_DLR_URL": "ftp://x"},
    ],
)
def test_config_rejects_bad_values_with_the_reason(env):
    with pytest.raises(ValueError):
        SimulatorConfig.from_env(env).validate()


def test_fail_status_makes_the_failures_of_fail_ratio_answer_500():
    async def go():
        async with carrier() as (client, _):
            await control(client, fail_ratio=1, fail_status=500)
            assert (await submit(client)).status == 500
            await control(client, fail_ratio=0)
            assert (await submit(client)).status == 200

    run(go)


def test_with_dlr_before_response_the_report_has_arrived_when_the_submit_is_answered():
    async def go():
        async with carrier(dlr_delay_ms=60_000) as (client, receiver):
            await control(client, dlr_before_response=True)
            resp = await submit(client, reference="early")
            assert resp.status == 200
            assert receiver.received.qsize() == 1
            dlr = receiver.received.get_nowait()
            assert dlr["carrier_message_id"] == (await resp.json())["carrier_message_id"]
            assert dlr["reference"] == "early"

    run(go)


@pytest.mark.parametrize(("mode", "recorded"), [("before_accept", 0), ("after_accept", 1)])
def test_drop_connection_resets_the_submit_with_no_answer_and_records_it_only_after_accept(mode, recorded):
    async def go():
        async with carrier(dlr_delay_ms=60_000) as (client, _):
            await control(client, drop_connection=mode)
            with pytest.raises(aiohttp.ClientError):
                await submit(client, reference="cut")
            assert len(await (await client.get("/submissions")).json()) == recorded
            assert (await (await client.get("/stats")).json())["dropped"] == 1
            await control(client, drop_connection=None)
            assert (await submit(client)).status == 200

    run(go)


def test_batched_dlrs_go_several_to_a_signed_body_and_each_is_marked_sent():
    async def go():
        # The receiver answers slowly: the reports that come due meanwhile wait for the next body.
        async with carrier(dlr_batch=4, receiver_delay_s=0.2) as (client, receiver):
            ids = [(await (await submit(client, reference=f"ref-{i}")).json())["carrier_message_id"]
                   for i in range(10)]
            got: list[dict[str, Any]] = []
            bodies = 0
            while len(got) < 10:
                body = await receiver.next_dlr()
                bodies += 1
                assert set(body) == {"reports"} and 1 <= len(body["reports"]) <= 4
                got += body["reports"]
            assert sorted(r["carrier_message_id"] for r in got) == sorted(ids)
            assert {r["reference"] for r in got} == {f"ref-{i}" for i in range(10)}
            assert 3 <= bodies <= 5  # due together, sent together, never more than 4 a body
            assert receiver.bad_signatures == []
            stats = await (await client.get("/stats")).json()
            assert stats["dlr_sent"] == 10
            rows = await (await client.get("/submissions")).json()
            assert {r["dlr"] for r in rows} == {"sent"}

    run(go)


def test_a_batched_dlr_body_is_retried_whole_until_the_receiver_accepts_it():
    async def go():
        async with carrier(fail_first=2, dlr_attempts=4, dlr_batch=8) as (client, receiver):
            await submit(client, reference="ref-a")
            body = await receiver.next_dlr()
            assert [r["reference"] for r in body["reports"]] == ["ref-a"]
            assert receiver.calls == 3
            assert (await (await client.get("/stats")).json())["dlr_sent"] == 1

    run(go)


def test_a_batch_submit_answers_each_message_as_a_single_submit_would_in_order():
    async def go():
        async with carrier(dlr_delay_ms=60_000) as (client, _):
            await control(client, reject_prefix="+999")
            resp = await client.post("/submit/batch", headers=AUTH, json={"messages": [
                message(reference="b-1"), message(to="+99912345", reference="b-2"),
                {"to": "+8613812345678"}, message(reference="b-4")]})
            assert resp.status == 200
            results = (await resp.json())["results"]
            assert [r["http_status"] for r in results] == [200, 400, 400, 200]
            assert results[1]["error"] == "invalid destination"
            assert results[2]["error"] == "malformed body" and "missing field" in results[2]["reason"]
            rows = await (await client.get("/submissions")).json()
            assert [r["reference"] for r in rows] == ["b-1", "b-4"]
            assert [r["carrier_message_id"] for r in rows] == [results[0]["carrier_message_id"],
                                                               results[3]["carrier_message_id"]]
            for body in ({"messages": []}, {"messages": "x"}, [message()],
                         {"messages": [message()] * 1001}):
                bad = await client.post("/submit/batch", headers=AUTH, json=body)
                assert bad.status == 400, body
            assert (await client.post("/submit/batch", json={"messages": [message()]})).status == 401

    run(go)
