"""The console's web plumbing: sessions, CSRF, roles, language and time zone, templates and
flash messages. Views (services/console/views/) stay thin on top of it: parse the form, call
the domain, render."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import math
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup
from sqlalchemy.orm import Session

from services.core.db import Database
from services.core.db.campaigns_models import CampaignSettings
from services.core.db.models import Tenant
from services.core.ratelimit import KeyedTokenBucket, retry_after
from services.core.settings import Settings

from . import i18n
from .domain import users
from .domain.users import Principal

log = logging.getLogger("herald.console")
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "herald_session"
LOGIN_CSRF_COOKIE = "herald_login_csrf"
FLASH_COOKIE = "herald_flash"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
STATIC_VERSION = "1"

CONSOLE_KEY = web.AppKey("console", object)

View = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SignInLimiter:
    """At most ``limit`` sign-in attempts per client address per minute (before any password
    is checked), so that guessing is slow even across many accounts: a token bucket per
    address (services/core/ratelimit.py) of ``limit`` saved up, refilled at ``limit`` a minute."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.bucket = KeyedTokenBucket(limit / 60.0, limit)

    def allow(self, who: str, now: float | None = None) -> bool:
        return self.bucket.take(who, 1, now) == 0.0

    def retry_after(self, who: str, now: float | None = None) -> int:
        """Whole seconds until ``who`` may try again (for a 429's Retry-After; at least 1)."""
        return retry_after(self.bucket.wait(who, 1, now))


class Console:
    """What every view needs: settings, the database, the producer and the templates."""

    def __init__(self, settings: Settings, db: Database, producer: Any = None) -> None:
        self.settings = settings
        self.db = db
        self.producer = producer
        self.limiter = SignInLimiter()
        self.key_limiter = KeyedTokenBucket(settings.api_key_rate_per_second,
                                            settings.api_key_rate_burst)  # /v1, per API key
        self._zones: dict[str, tuple[float, str]] = {}
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True,
        )
        self.templates.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
        self.templates.filters.update(
            datetime=i18n.format_datetime, date=i18n.format_date, number=i18n.format_number,
            pct=i18n.format_pct)
        self.templates.globals.update(LANGUAGES=i18n.LANGUAGES, STATIC_VERSION=STATIC_VERSION)

    async def run(self, fn: Callable[[Session], Any]) -> Any:
        """Run ``fn(session)`` in one transaction on a worker thread."""
        def go() -> Any:
            with self.db.session() as s:
                return fn(s)
        return await asyncio.to_thread(go)

    def tenant_zone(self, s: Session, tenant_id: str | None) -> str:
        if tenant_id is None:
            return "UTC"
        hit = self._zones.get(tenant_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        row = s.get(CampaignSettings, tenant_id)
        zone = row.timezone if row is not None and row.timezone else "UTC"
        self._zones[tenant_id] = (time.monotonic() + 30, zone)
        return zone

    def forget_zone(self, tenant_id: str) -> None:
        self._zones.pop(tenant_id, None)


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE_KEY]  # type: ignore[return-value]


def principal(request: web.Request) -> Principal:
    p = request.get("principal")
    if p is None:
        raise web.HTTPFound("/login")
    return p


def tenant_of(request: web.Request) -> str:
    """The signed-in user's tenant; platform operators have none and get 404 on tenant pages."""
    p = principal(request)
    if p.tenant_id is None:
        raise web.HTTPNotFound()
    return p.tenant_id


# -- middlewares -------------------------------------------------------------------------------


def _is_page(request: web.Request) -> bool:
    path = request.path
    return not (path.startswith("/v1/") or path in ("/health", "/metrics")
                or path.startswith("/static/"))


@web.middleware
async def session_middleware(request: web.Request, handler: View) -> web.StreamResponse:
    if not _is_page(request):
        return await handler(request)
    console = console_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    accept = request.headers.get("Accept-Language", "")
    fallback_locale = "zh_Hans" if accept.lower().startswith("zh") else "en"

    def load(s: Session) -> tuple[Principal, str, str] | None:
        found = users.resolve_session(s, token)
        if found is None:
            return None
        p, csrf = found
        return p, csrf, console.tenant_zone(s, p.tenant_id)

    found = await console.run(load) if token else None
    if found is not None:
        p, csrf, zone = found
        request["principal"], request["csrf"] = p, csrf
        i18n.use(p.locale, zone)
    else:
        request["csrf"] = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        i18n.use(request.query.get("lang", fallback_locale), "UTC")
    if request.method in UNSAFE:
        await _check_csrf(request)
    return await handler(request)


async def _check_csrf(request: web.Request) -> None:
    expected = request.get("csrf") or ""
    sent = request.headers.get("X-CSRF-Token", "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        sent = str(form.get("csrf_token", ""))
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise web.HTTPForbidden(text=i18n.gettext(
            "This form has expired or did not come from the console. Reload the page and try again."))


@web.middleware
async def error_pages(request: web.Request, handler: View) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not _is_page(request) or exc.status < 400 or exc.status == 405:
            raise
        if request.headers.get("HX-Request"):
            raise
        titles = {403: i18n.gettext("Not allowed"), 404: i18n.gettext("Not found"),
                  429: i18n.gettext("Too many attempts")}
        body = render_page(request, "error.html", status=exc.status,
                           title=titles.get(exc.status, i18n.gettext("Something went wrong")),
                           message=exc.text if exc.status in (403, 429) and exc.text else "")
        return web.Response(text=body, status=exc.status, content_type="text/html")


# -- roles -------------------------------------------------------------------------------------


def requires(*, write: bool = False, owner: bool = False, platform: bool = False
             ) -> Callable[[View], View]:
    """Signed-in users only; ``write`` refuses analysts, ``owner`` needs an owner,
    ``platform`` a platform operator. A tenant page is 404 for a platform operator."""

    def wrap(view: View) -> View:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if request.get("principal") is None:
                raise web.HTTPFound(f"/login?next={request.path_qs}" if request.method == "GET"
                                    else "/login")
            p: Principal = request["principal"]
            if platform and p.role != "platform":
                raise web.HTTPNotFound()
            if not platform and p.tenant_id is None:
                raise web.HTTPNotFound()
            if write and not p.can_write:
                raise web.HTTPForbidden(text=i18n.gettext("Your role can look but not change this."))
            if owner and not p.is_owner:
                raise web.HTTPForbidden(text=i18n.gettext("Only an owner of this account can do this."))
            return await view(request)
        guarded.__name__ = view.__name__
        guarded.__doc__ = view.__doc__
        return guarded
    return wrap


# -- rendering ---------------------------------------------------------------------------------


def flash(response: web.StreamResponse, message: str, kind: str = "success") -> None:
    """A message shown once on the next page (success, error or info)."""
    raw = json.dumps({"kind": kind, "message": message}).encode()
    response.set_cookie(FLASH_COOKIE, base64.urlsafe_b64encode(raw).decode(), httponly=True,
                        samesite="Lax", max_age=60, path="/")


def _read_flash(request: web.Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        return {"kind": str(data["kind"]), "message": str(data["message"])}
    except (ValueError, KeyError, TypeError):
        return None


def render_page(request: web.Request, template: str, **ctx: Any) -> str:
    console = console_of(request)
    p = request.get("principal")
    ctx.setdefault("title", "")
    return console.templates.get_template(template).render(
        request=request, user=p, csrf_token=request.get("csrf", ""), nav=_nav(p),
        current=request.path, flash=_read_flash(request), locale=i18n.current_locale(),
        query=request.query, **ctx)


def render(request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
    resp = web.Response(text=render_page(request, template, **ctx), status=status,
                        content_type="text/html")
    if request.cookies.get(FLASH_COOKIE):
        resp.del_cookie(FLASH_COOKIE, path="/")
    return resp


def redirect(location: str, message: str | None = None, kind: str = "success") -> web.HTTPFound:
    exc = web.HTTPFound(location)
    if message:
        flash(exc, message, kind)
    return exc


def _nav(p: Principal | None) -> list[tuple[str, str]]:
    """(path, label) of the sidebar, by role; labels translated at render time."""
    if p is None:
        return []
    if p.role == "platform":
        return [("/operator", i18n.gettext("Platform")), ("/audit", i18n.gettext("Audit log"))]
    items = [
        ("/", i18n.gettext("Dashboard")),
        ("/send", i18n.gettext("Send")),
        ("/messages", i18n.gettext("Messages")),
        ("/inbox", i18n.gettext("Inbox")),
        ("/contacts", i18n.gettext("Contacts")),
        ("/campaigns", i18n.gettext("Campaigns")),
        ("/keywords", i18n.gettext("Keywords and numbers")),
        ("/integrations", i18n.gettext("Integrations")),
        ("/brands", i18n.gettext("Brands")),
        ("/lottery", i18n.gettext("Lottery")),
        ("/points", i18n.gettext("Points and gifts")),
        ("/club", i18n.gettext("Member club")),
        ("/team", i18n.gettext("Team")),
        ("/audit", i18n.gettext("Audit log")),
    ]
    if not p.can_write:
        items = [i for i in items if i[0] != "/send"]
    return items


def set_session_cookie(response: web.StreamResponse, settings: Settings, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/",
                        secure=settings.console_secure_cookies,
                        max_age=int(settings.console_session_hours * 3600))


def render_login(request: web.Request, status: int = 200, **ctx: Any) -> web.Response:
    """The sign-in page with a fresh form token (double submit: the cookie and the form field
    must match, since there is no session yet to hold it)."""
    token = secrets.token_urlsafe(24)
    request["csrf"] = token
    resp = render(request, "login.html", status=status, **ctx)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/",
                    secure=console_of(request).settings.console_secure_cookies, max_age=3600)
    return resp


def session_lifetime(settings: Settings) -> timedelta:
    return timedelta(hours=settings.console_session_hours)


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def field_errors(exc: Exception) -> dict[str, str]:
    f = getattr(exc, "field", None) or "form"
    return {f: getattr(exc, "message", None) or str(exc)}


# Axis labels are HTML under the bars, at their own size whatever the chart's width (text inside
# the stretched SVG was squeezed and ran together). How many to show is decided here, for the
# narrowest a chart gets (a dashboard card just above the 900px breakpoint, a 220px analytics
# cell), so labels stay apart at every width without script.
CHART_MIN_PX = 220
AXIS_FONT_PX = 11
AXIS_GAP_PX = 8
LABEL_STEPS = (1, 2, 3, 4, 6, 8, 12, 15, 20, 30, 60)


def label_px(label: str, font_px: float = AXIS_FONT_PX) -> float:
    """A generous width for a label: full-width (CJK) characters take an em, others 0.65 em
    (the widest digits of the fonts the console asks for are about 0.64 em)."""
    return sum(font_px * (1.0 if unicodedata.east_asian_width(ch) in "WF" else 0.65) for ch in label)


def label_step(labels: list[str], min_px: float = CHART_MIN_PX) -> int:
    """Label every step-th bar, the smallest round step whose labels fit side by side at min_px:
    hours every 1, 2, 3, 4, 6 or 12, so that the labels shown are round hours."""
    if not labels:
        return 1
    need = (max(label_px(label) for label in labels) + AXIS_GAP_PX) * len(labels) / min_px
    return next((s for s in LABEL_STEPS if s >= need), math.ceil(need))


def svg_bars(values: list[tuple[str, float]], height: int = 120, color: str = "#2563eb") -> Markup:
    """A small bar chart as inline SVG (no JavaScript): a bar per value with its label and value
    as the bar's title, and under the bars every label_step()-th label, each centred on its bar
    and never wider than the bars between it and the next (past that it ends in an ellipsis)."""
    if not values:
        return Markup("")
    top = max(v for _, v in values) or 1
    n = len(values)
    width = max(n * 14, 280)
    bw = width / n
    parts = [f'<div class="chart-box"><svg viewBox="0 0 {width} {height}" class="chart" role="img" '
             f'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, v) in enumerate(values):
        h = (v / top) * height
        parts.append(f'<rect x="{i * bw + 1:.1f}" y="{height - h:.1f}" width="{bw - 2:.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{Markup.escape(label)}: {v:g}</title></rect>')
    parts.append('</svg><div class="chart-axis" aria-hidden="true">')
    step = label_step([label for label, _ in values])
    for i in range(0, n, step):
        parts.append(f'<span class="axis" style="left: {(i + 0.5) * 100 / n:.3f}%; '
                     f'max-width: {step * 100 / n:.3f}%">{Markup.escape(values[i][0])}</span>')
    parts.append("</div></div>")
    return Markup("".join(parts))


def tenant_name(s: Session, tenant_id: str | None) -> str:
    if tenant_id is None:
        return "Herald"
    t = s.get(Tenant, tenant_id)
    return t.name if t else tenant_id
