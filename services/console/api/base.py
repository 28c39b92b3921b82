"""The /v1 admin API's plumbing: the API-key check (services.core.tenancy.KeyResolver, the one
every public API uses), JSON in and out, the error shape, transactions and the audit log.

Every route needs a tenant API key (``Authorization: Bearer hk_...`` or ``X-API-Key``) and sees
only that tenant's data; another tenant's object is 404, as if it did not exist. Bad input is
a 4xx with ``{"error": reason}`` (and ``"field"`` when one field is at fault) and changes
nothing. Every change is written to the audit log with the actor ``api-key:<prefix>``."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from services.campaigns.domain.audience import FilterError
from services.campaigns.domain.campaigns import CampaignError
from services.campaigns.domain.contacts import ContactError, CsvError
from services.campaigns.domain.settings import SettingsError
from services.core import metrics
from services.core.ratelimit import per_key_limit_error, retry_after
from services.core.tenancy import KeyIdentity, KeyRefused, KeyResolver

from ..domain import audit
from ..web import Console

log = logging.getLogger("herald.console.api")
NAME = "console"
UPLOAD_MAX = 256 * 1024 * 1024
SPOOL_IN_MEMORY = 4 * 1024 * 1024
PAGE_MAX = 1000
KEY_KEY = web.RequestKey("api_key", KeyIdentity)  # the caller

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    def __init__(self, reason: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.field = field


def error(status: int, reason: str, route: str, field: str | None = None) -> web.Response:
    metrics.HTTP_REQUESTS.labels(NAME, route, str(status)).inc()
    body = {"error": reason, **({"field": field} if field else {})}
    return web.json_response(body, status=status, dumps=_dumps)


def ok(body: Any, route: str, status: int = 200) -> web.Response:
    metrics.HTTP_REQUESTS.labels(NAME, route, str(status)).inc()
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    except RecursionError:  # nesting deeper than the parser's stack
        raise BadRequest("body is not JSON Herald reads: nested too deeply") from None


async def spool(request: web.Request) -> tempfile.SpooledTemporaryFile:
    """The request body in a spooled file: small bodies in memory, large ones on disk, read in
    pieces so a big CSV is never one string in memory."""
    f = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    size = 0
    async for piece in request.content.iter_chunked(256 * 1024):
        size += len(piece)
        if size > UPLOAD_MAX:
            f.close()
            raise BadRequest(f"upload larger than {UPLOAD_MAX // (1024 * 1024)} MB", 413)
        f.write(piece)
    f.seek(0)
    return f


def int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number", field=name) from None
    if v < 0:
        raise BadRequest(f"{name} must not be negative", field=name)
    return v


def caller(request: web.Request) -> KeyIdentity:
    return request[KEY_KEY]


def record(s: Session, request: web.Request, action: str, object_type: str, object_id: Any = "",
           *, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           note: str = "") -> None:
    """Audit one change made through the API, by the calling key."""
    who = caller(request)
    audit.record(s, tenant_id=who.tenant_id, actor=who.actor, action=action,
                 object_type=object_type, object_id=str(object_id), before=before, after=after,
                 note=note)


class ApiBase:
    """Shared by the API modules: the console (database, settings), the key resolver and the
    route wrapper that authenticates and turns domain errors into the error shape."""

    def __init__(self, console: Console, resolver: KeyResolver) -> None:
        self.console = console
        self.db = console.db
        self.settings = console.settings
        self.resolver = resolver

    def route(self, name: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                who = await self.resolver.check_async(request.headers)
            except KeyRefused as exc:
                return error(exc.status, exc.reason, name)
            wait = self.console.key_limiter.take(who.prefix)
            if wait > 0:
                metrics.HTTP_REQUESTS.labels(NAME, name, "429").inc()
                return web.json_response(per_key_limit_error(self.console.key_limiter, who.prefix, wait),
                                         status=429, headers={"Retry-After": str(retry_after(wait))})
            request[KEY_KEY] = who
            try:
                return await handler(request, who.tenant_id)
            except BadRequest as exc:
                return error(exc.status, exc.reason, name, exc.field)
            except CampaignError as exc:
                return error(exc.status, exc.reason, name)
            except (ContactError, CsvError, FilterError, SettingsError) as exc:
                return error(400, str(exc), name)
            except web.HTTPException:
                raise
            except Exception:  # noqa: BLE001 - a bug: say so without leaking internals
                log.exception("console api: %s %s failed", request.method, request.path)
                return error(500, "internal error", name)
        wrapped.__name__ = getattr(handler, "__name__", name)
        return wrapped

    def tx(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run ``fn(session, *args)`` in one transaction in a worker thread."""
        return self.console.run(lambda s: fn(s, *args))

    def add(self, app: web.Application, method: str, path: str, name: str, handler: Handler) -> None:
        app.router.add_route(method, path, self.route(name, handler))
