"""Running an aiohttp service (ingress is one) the Herald way: /health and /metrics, fixed
start-up order, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web
from confluent_kafka import KafkaException
from sqlalchemy.exc import InterfaceError, OperationalError

from . import metrics
from .db import Database
from .health import HealthCheck
from .kafka import AsyncProducer, BrokerUnavailable
from .settings import Settings, get_settings

log = logging.getLogger(__name__)


# A dependency away (the broker not acknowledging in time, its local queue full, the database
# connection lost) is a passing state, not a server bug: the caller is told to retry, as it
# would be by a load balancer, and the request is idempotent by its request id. Only the type
# is logged: a database error's text can carry connection details.
RETRY_AFTER_S = 5
_UNAVAILABLE = (KafkaException, BrokerUnavailable, BufferError, OperationalError, InterfaceError)


@web.middleware
async def unavailable_as_503(request: web.Request, handler):
    try:
        return await handler(request)
    except _UNAVAILABLE as exc:
        log.warning("%s %s: answered 503, a dependency is unavailable (%s)", request.method,
                    request.path, type(exc).__name__)
        return web.json_response({"error": "temporarily unavailable, retry later"}, status=503,
                                 headers={"Retry-After": str(RETRY_AFTER_S)})


def add_health_routes(app: web.Application, name: str, health: HealthCheck) -> None:
    async def health_view(_request: web.Request) -> web.Response:
        status = await health.status()
        status["processor"] = name
        return web.json_response(status, status=200 if status["status"] == "ok" else 503)

    async def metrics_view(_request: web.Request) -> web.Response:
        body, _ctype = metrics.render()
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    app.router.add_get("/health", health_view)
    app.router.add_get("/metrics", metrics_view)


async def open_stores(s: Settings) -> tuple[Database, AsyncProducer]:
    """The database and an acknowledged producer, each checked before the service starts: a
    dependency that is not there stops the process with a clear message (serve() prints it)."""
    db = Database(s.database_url)
    try:
        await asyncio.to_thread(db.ping)
    except Exception as exc:
        raise RuntimeError(f"database {s.database_url} unreachable: {exc}") from exc
    producer = AsyncProducer(s)
    try:
        await asyncio.to_thread(producer.check)
    except Exception as exc:
        producer.close(1)
        raise RuntimeError(f"Kafka broker {s.kafka_bootstrap} unreachable: {exc}") from exc
    return db, producer


def close_stores_on_cleanup(app: web.Application, db: Database, producer: AsyncProducer) -> None:
    """Flush the producer and close the database when the app stops (reverse start order)."""

    async def lifecycle(_app: web.Application):
        yield
        await asyncio.to_thread(producer.close)
        db.dispose()

    app.cleanup_ctx.append(lifecycle)


def serve(app_factory: Callable[[], Awaitable[web.Application]], host: str, port: int,
          name: str, settings: Settings | None = None) -> None:
    """Build the app (dependencies start here), serve until a signal, then clean up. With
    HERALD_TLS_CERT and HERALD_TLS_KEY set the port speaks HTTPS only (a certificate that does
    not load stops the process before anything starts)."""

    async def main() -> None:
        tls = (settings or get_settings()).server_ssl_context()
        app = await app_factory()
        app.middlewares.append(unavailable_as_503)  # innermost: it sees the handler's exception first
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        await site.start()
        log.info("%s: listening on %s://%s:%d", name, "https" if tls else "http", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("%s: stopping", name)
        await runner.cleanup()  # runs the app's cleanup contexts in reverse order

    try:
        asyncio.run(main())
    except (OSError, RuntimeError) as exc:
        sys.exit(f"{name}: failed to start: {exc}")
