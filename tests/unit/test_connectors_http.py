"""The HTTP connector, table-driven over services/carriers/http/testdata/*.json (each a
carrier answer, or a network condition, and the result or named error it must become), every
case over a real local socket; plus the real simulator."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import services.carriers as connectors
from services.carriers import (
    CarrierError,
    ConnectionFailed,
    Connector,
    RejectedByCarrier,
    Submission,
    SubmitResult,
    Throttled,
    TransientError,
    build,
)
from services.carriers.http.connector import HttpConnector
from services.core.carriers import Carrier
from services.simulator.server import SIMULATOR, SimulatorConfig, create_app
from tests.support.carrier_http import (
    answer_after,
    answer_with,
    carrier_answering,
    close_without_answer,
    connect_never_completes,
    nothing_listens,
)

TESTDATA = Path(connectors.__file__).parent / "http" / "testdata"
FIXTURES = sorted(TESTDATA.glob("*.json"))
TOKEN = "fixture-token-s3cret"
URL = "http://carrier.test/submit"


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), timeout=30))


def carrier(**overrides: Any) -> Carrier:
    return Carrier(**{"name": "acme", "submit_url": URL, "api_token": TOKEN, "timeout_s": 2, **overrides})


def submission(**overrides: Any) -> Submission:
    fields = {"message_id": "msg-1", "to": "+8613812345678", "sender": "10690000", "text": "hello",
              "encoding": "gsm7", "segments": 1}
    return Submission(**{**fields, **overrides})


async def submit_to(url: str, **overrides: Any) -> SubmitResult | CarrierError:
    conn = HttpConnector(carrier(submit_url=url, **overrides))
    try:
        return await conn.submit(submission())
    except CarrierError as exc:
        return exc
    finally:
        await conn.close()


async def outcome_of(fixture: dict[str, Any]) -> SubmitResult | CarrierError:
    """The fixture's answer or network condition, made real on a local socket, and what the
    connector made of it (timeouts shortened so that the table runs in seconds)."""
    condition = fixture.get("transport_error", {}).get("condition")
    if condition == "connect_never_completes":
        with connect_never_completes() as url:
            return await submit_to(url, timeout_s=0.3)
    if condition == "nothing_listens":
        return await submit_to(nothing_listens())
    if condition == "answer_too_slow":
        answer = answer_after(1.0)
    elif condition == "closed_without_answer":
        answer = close_without_answer
    else:
        assert condition is None, f"unknown condition {condition!r}"
        r = fixture["response"]
        answer = answer_with(r["status"], r["body"], r["headers"])
    async with carrier_answering(answer) as (url, seen):
        outcome = await submit_to(url, timeout_s=0.3)
        assert len(seen) == 1  # one request, never followed to a redirect's Location
        return outcome


def test_fixtures_are_present_and_well_formed():
    assert len(FIXTURES) >= 20
    names = [json.loads(p.read_text())["name"] for p in FIXTURES]
    assert names == [p.stem for p in FIXTURES]
    for p in FIXTURES:
        doc = json.loads(p.read_text())
        assert ("response" in doc) != ("transport_error" in doc), p.name
        assert ("result" in doc["expect"]) != ("error" in doc["expect"]), p.name


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_carrier_answer_becomes_the_expected_result_or_named_error(path, caplog):
    fixture = json.loads(path.read_text())
    expect = fixture["expect"]
    caplog.set_level(logging.DEBUG)

    outcome = run(lambda: outcome_of(fixture))
    if "result" in expect:
        assert outcome == SubmitResult(expect["result"]["carrier_message_id"], "acme")
    else:
        assert type(outcome).__name__ == expect["error"]
        assert outcome.reason == expect["reason"]
        assert outcome.transient is expect["transient"]
        assert len(outcome.reason) <= 200
        if "retry_after" in expect:
            assert outcome.retry_after == expect["retry_after"]
    assert TOKEN not in caplog.text


def test_submit_posts_the_simulator_protocol_with_the_bearer_token():
    async def go():
        async with carrier_answering(answer_with(200, {"carrier_message_id": "c1"})) as (url, seen):
            conn = HttpConnector(carrier(submit_url=url))
            await conn.submit(submission(text="你好", encoding="ucs2", segments=1, message_id="m-9"))
            await conn.submit(submission(sender=None))
            await conn.close()
            return list(seen)

    first, second = run(go)
    assert (first.method, first.path) == ("POST", "/submit")
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == {"to": "+8613812345678", "from": "10690000", "text": "你好",
                                      "encoding": "ucs2", "segments": 1, "reference": "m-9"}
    # No sender: "from" is left out, so the carrier applies its default (null is refused).
    assert "from" not in json.loads(second.body)


def test_one_session_and_its_few_connections_carry_every_submit():
    async def go():
        async with carrier_answering(answer_with(200, {"carrier_message_id": "c"})) as (url, seen):
            conn = HttpConnector(carrier(submit_url=url, options={"max_connections": 4}))
            await conn.submit(submission(message_id="first"))
            session = conn._session
            results = await asyncio.gather(*(conn.submit(submission(message_id=f"m{i}")) for i in range(40)))
            assert conn._session is session
            await conn.close()
            assert session.closed
            return results, list(seen)

    results, seen = run(go)
    assert results == [SubmitResult("c", "acme")] * 40
    assert len(seen) == 41
    # Kept alive and reused: 41 requests over at most max_connections TCP connections.
    assert 1 <= len({r.peer for r in seen}) <= 4


def test_the_registry_builds_an_http_connector_for_an_http_carrier():
    async def go():
        conn = build(carrier())
        assert isinstance(conn, HttpConnector)
        assert isinstance(conn, Connector)
        assert conn.name == "acme"
        assert TOKEN not in repr(conn)
        await conn.close()

    run(go)


def test_the_registry_refuses_an_unknown_kind_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"kind 'ucp'; known kinds: .*'http'.*'smpp'"):
        build(carrier(kind="ucp"))


def test_against_the_real_simulator_accept_throttle_down_reject_timeout_and_refused():
    async def go():
        app = create_app(SimulatorConfig(api_token=TOKEN, dlr_delay_ms=60_000))
        async with TestServer(app, host="127.0.0.1") as server:  # on a free port
            url = str(server.make_url("/submit"))
            sim = app[SIMULATOR]
            sim.behaviour.dlr_enabled = False  # no DLR receiver in this test
            conn = HttpConnector(carrier(submit_url=url, timeout_s=0.5))
            try:
                result = await conn.submit(submission(message_id="m-42", text="héllo"))
                [row] = sim.submissions
                assert result == SubmitResult(row.carrier_message_id, "acme")
                assert (row.reference, row.to, row.sender, row.text) == ("m-42", "+8613812345678",
                                                                         "10690000", "héllo")

                sim.behaviour.throttle = True
                with pytest.raises(Throttled) as throttled:
                    await conn.submit(submission())
                assert throttled.value.retry_after == 1.0
                sim.behaviour.throttle = False

                sim.behaviour.reject_prefix = "+999"
                with pytest.raises(RejectedByCarrier, match="invalid destination"):
                    await conn.submit(submission(to="+99912345"))

                sim.behaviour.down = True
                with pytest.raises(TransientError, match="service unavailable"):
                    await conn.submit(submission())
                sim.behaviour.down = False

                sim.behaviour.latency_ms = 2000
                with pytest.raises(TransientError, match="ReadTimeout"):
                    await conn.submit(submission())
                sim.behaviour.latency_ms = 0

                bad = HttpConnector(carrier(submit_url=url, api_token="wrong"))
                with pytest.raises(RejectedByCarrier, match="unauthorized"):
                    await bad.submit(submission())
                await bad.close()
                assert len(sim.submissions) == 1
            finally:
                await conn.close()
        # The simulator is gone: nothing listens on its port any more.
        gone = HttpConnector(carrier(submit_url=url))
        with pytest.raises(ConnectionFailed):
            await gone.submit(submission())
        await gone.close()

    run(go)


def test_waiting_for_a_pooled_connection_does_not_count_against_the_carrier_timeout():
    async def slow_accept(_request):
        await asyncio.sleep(0.15)
        return web.json_response({"carrier_message_id": "c"})

    async def go():
        async with carrier_answering(slow_accept) as (url, seen):
            conn = HttpConnector(carrier(submit_url=url, timeout_s=0.3, options={"max_connections": 1}))
            try:
                # one connection, four submissions of 0.15 s each: the last waits ~0.45 s in the
                # pool, longer than timeout_s, and still goes out
                results = await asyncio.gather(*(conn.submit(submission(message_id=f"m{i}"))
                                                 for i in range(4)))
            finally:
                await conn.close()
            return results, list(seen)

    results, seen = run(go)
    assert results == [SubmitResult("c", "acme")] * 4
    assert len({r.peer for r in seen}) == 1


def test_submissions_made_together_go_to_a_batch_url_in_one_request_each_with_its_own_answer():
    async def go():
        app = create_app(SimulatorConfig(api_token=TOKEN, dlr_delay_ms=60_000))
        requests: list[int] = []

        @web.middleware
        async def count(request: web.Request, handler):
            requests.append(len((await request.json())["messages"]))
            return await handler(request)

        app.middlewares.append(count)
        async with TestServer(app, host="127.0.0.1") as server:
            sim = app[SIMULATOR]
            sim.behaviour.dlr_enabled = False
            sim.behaviour.reject_prefix = "+999"
            conn = HttpConnector(carrier(submit_url=str(server.make_url("/submit")), options={
                "batch_url": str(server.make_url("/submit/batch")), "batch_max": 4}))
            try:
                subs = [submission(message_id=f"m-{i}", to="+99912345" if i == 2 else "+8613812345678")
                        for i in range(6)]

                async def one(s: Submission) -> SubmitResult | CarrierError:
                    try:
                        return await conn.submit(s)
                    except CarrierError as exc:
                        return exc

                got = await asyncio.gather(*(one(s) for s in subs))
                assert requests == [4, 2]  # made in the same turn of the loop: 4 a request
                by_ref = {row.reference: row.carrier_message_id for row in sim.submissions}
                assert set(by_ref) == {f"m-{i}" for i in range(6)} - {"m-2"}
                for i, result in enumerate(got):
                    if i == 2:
                        assert isinstance(result, RejectedByCarrier) and "invalid destination" in result.reason
                    else:
                        assert result == SubmitResult(by_ref[f"m-{i}"], "acme")

                sim.behaviour.throttle = True  # the whole request refused: each message told so
                both = await asyncio.gather(one(submission(message_id="t-1")), one(submission(message_id="t-2")))
                assert all(isinstance(r, Throttled) and r.retry_after == 1.0 for r in both)
            finally:
                await conn.close()

    run(go)


def test_a_batch_url_is_refused_for_a_dialect_with_its_own_body():
    from services.carriers.twilio.connector import TwilioConnector

    with pytest.raises(ValueError, match="JSON dialect only"):
        TwilioConnector(carrier(options={"batch_url": "http://carrier.test/batch", "account_sid": "AC1"}))
