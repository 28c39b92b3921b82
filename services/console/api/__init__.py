"""The public admin REST API under /v1 (API-key authenticated), and its OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.campaigns.config import get_config
from services.core.tenancy import KeyResolver

from ..web import Console
from .campaigns import CampaignsApi
from .webhooks import WebhooksApi

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.json"
RESOLVER_KEY = web.AppKey("api_key_resolver", KeyResolver)


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of every public endpoint (no key needed to read it)."""
    return web.Response(body=OPENAPI.read_bytes(), content_type="application/json")


def install(app: web.Application, console: Console) -> None:
    resolver = KeyResolver(console.db.session)
    app[RESOLVER_KEY] = resolver
    app.router.add_get("/v1/openapi.json", openapi)
    CampaignsApi(console, resolver, get_config()).install(app)
    WebhooksApi(console, resolver).install(app)
