"""Running an aiohttp service (ingress is one) the Herald way: /health and /metrics, fixed
start-up order, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import metrics
from .health import HealthCheck

log = logging.getLogger(__name__)


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


def serve(app_factory: Callable[[], Awaitable[web.Application]], host: str, port: int,
          name: str) -> None:
    """Build the app (dependencies start here), serve until a signal, then clean up."""

    async def main() -> None:
        app = await app_factory()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("%s: listening on http://%s:%d", name, host, port)
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
