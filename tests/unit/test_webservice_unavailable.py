"""A web service whose broker or database is away answers 503 with Retry-After (the caller
retries, the request id keeps it idempotent), not a 500 that reads as a bug; other errors are
still errors."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import KafkaError, KafkaException
from sqlalchemy.exc import IntegrityError, OperationalError

from services.core.webservice import RETRY_AFTER_S, unavailable_as_503


def answer_to(exc: Exception) -> tuple[int, dict, str]:
    async def handler(_request: web.Request) -> web.Response:
        raise exc

    async def main() -> tuple[int, dict, str]:
        app = web.Application(middlewares=[unavailable_as_503])
        app.router.add_post("/v1/messages", handler)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            r = await client.post("/v1/messages", json={})
            return r.status, dict(r.headers), await r.text()

    return asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("exc", [
    KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)),
    BufferError("Local: Queue full"),
    OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")),
], ids=["produce-timed-out", "queue-full", "database-connection-lost"])
def test_a_dependency_away_is_answered_503_with_retry_after(exc):
    status, headers, body = answer_to(exc)
    assert status == 503
    assert headers["Retry-After"] == str(RETRY_AFTER_S)
    assert "retry" in body


def test_a_database_error_that_is_not_an_outage_is_still_a_500():
    status, _headers, _body = answer_to(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert status == 500
