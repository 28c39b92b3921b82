"""The HTTP connector, table-driven over services/carriers/http/testdata/*.json (each a
carrier answer and the result or named error it must become), plus the real simulator."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
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


def responder(fixture: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        if "transport_error" in fixture:
            err = fixture["transport_error"]
            raise getattr(httpx, err["type"])(err["message"], request=request)
        r = fixture["response"]
        body = r["body"]
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = dict(r["headers"])
        if not isinstance(body, str):
            headers.setdefault("Content-Type", "application/json")
        return httpx.Response(r["status"], headers=headers, content=content)

    return handle


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

    async def go():
        conn = HttpConnector(carrier(), transport=httpx.MockTransport(responder(fixture)))
        try:
            return await conn.submit(submission())
        except CarrierError as exc:
            return exc
        finally:
            await conn.close()

    outcome = run(go)
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
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"carrier_message_id": "c1"})

    async def go():
        conn = HttpConnector(carrier(), transport=httpx.MockTransport(handle))
        await conn.submit(submission(text="你好", encoding="ucs2", segments=1, message_id="m-9"))
        await conn.submit(submission(sender=None))
        await conn.close()

    run(go)
    first, second = seen
    assert (first.method, str(first.url)) == ("POST", URL)
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.content) == {"to": "+8613812345678", "from": "10690000", "text": "你好",
                                         "encoding": "ucs2", "segments": 1, "reference": "m-9"}
    # No sender: "from" is left out, so the carrier applies its default (null is refused).
    assert "from" not in json.loads(second.content)


def test_one_client_and_its_connections_are_reused_across_submits():
    async def go():
        conn = HttpConnector(carrier(), transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json={"carrier_message_id": "c"})))
        client = conn._client
        await asyncio.gather(*(conn.submit(submission(message_id=f"m{i}")) for i in range(20)))
        assert conn._client is client
        await conn.close()
        assert client.is_closed

    run(go)


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
