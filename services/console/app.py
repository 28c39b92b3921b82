"""The console process: the web program and the public admin API, over aiohttp.

Start-up: settings -> database (reachable) -> Kafka producer (broker reachable) -> the web
application (pages, /v1 admin API, /health, /metrics) -> serve until SIGTERM/SIGINT -> stop in
reverse order."""

from __future__ import annotations

import logging

from aiohttp import web

from services.core.health import HealthCheck
from services.core.settings import Settings, get_settings
from services.core.webservice import add_health_routes, close_stores_on_cleanup, open_stores, serve

from . import api
from .views import analytics as analytics_views
from .views import audit as audit_views
from .views import auth, dashboard, integrations, operator, operator_pipeline, operator_platform, team
from .views import brands as brand_views
from .views import campaigns as campaign_views
from .views import club as club_views
from .views import codes as code_views
from .views import contacts as contacts_views
from .views import content as content_views
from .views import inbox as inbox_views
from .views import keywords as keyword_views
from .views import lottery as lottery_views
from .views import messages as message_views
from .views import points as points_views
from .views import send as send_views
from .web import CONSOLE_KEY, HERE, Console, error_pages, session_middleware

NAME = "console"
log = logging.getLogger("herald.console")

PAGE_ROUTES = [auth.routes, dashboard.routes, audit_views.routes, integrations.routes, team.routes,
               operator.routes]
PAGE_ROUTES += [send_views.routes, message_views.routes, inbox_views.routes]
PAGE_ROUTES += [keyword_views.routes]
PAGE_ROUTES += [content_views.routes, campaign_views.routes]  # content's paths before /campaigns/{id}
PAGE_ROUTES += [contacts_views.routes]
PAGE_ROUTES += [code_views.routes, analytics_views.routes, brand_views.routes]  # before /brands/{slug}
PAGE_ROUTES += [lottery_views.routes, points_views.routes, club_views.routes]  # issue 12 pages 4-6
PAGE_ROUTES += [operator_pipeline.routes, operator_platform.routes]  # issue 12 operator area


def build_app(console: Console) -> web.Application:
    """The aiohttp application over a ready Console (tests build it over their own)."""
    app = web.Application(middlewares=[error_pages, session_middleware],
                          client_max_size=64 * 1024 * 1024)
    app[CONSOLE_KEY] = console
    add_health_routes(app, NAME, HealthCheck(console.settings.kafka_config(), console.db))
    app.router.add_static("/static/", HERE / "static", append_version=False)
    for routes in PAGE_ROUTES:
        app.add_routes(routes)
    api.install(app, console)
    return app


async def create_app(settings: Settings | None = None) -> web.Application:
    s = settings or get_settings()
    db, producer = await open_stores(s)
    app = build_app(Console(s, db, producer))

    close_stores_on_cleanup(app, db, producer)
    return app


def main() -> None:
    s = get_settings()
    logging.basicConfig(level=s.log_level.upper().replace("WARN", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(lambda: create_app(s), s.web_host, s.console_port, NAME)
