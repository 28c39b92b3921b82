"""Sign in, sign out (here or everywhere), and the user's own language."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from .. import i18n
from ..domain import audit, users
from ..web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    console_of,
    redirect,
    render_login,
    requires,
    session_lifetime,
    set_session_cookie,
)

routes = web.RouteTableDef()


def _safe_next(value: str | None) -> str:
    # Only paths of this site: "//evil.example" and absolute URLs are not followed.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    if request.get("principal") is not None:
        raise web.HTTPFound("/")
    return render_login(request, title=i18n.gettext("Sign in"), errors={}, email="",
                        next=_safe_next(request.query.get("next")))


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    form = await request.post()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "")))
    settings = console.settings

    def fail(message: str, status: int) -> web.Response:
        return render_login(request, status=status, title=i18n.gettext("Sign in"),
                            errors={"form": message}, email=email, next=nxt)

    who = client_address(request)
    if not console.limiter.allow(who):
        limited = fail(i18n.gettext(
            "Too many sign-in attempts from your address. Wait a minute and try again."), 429)
        limited.headers["Retry-After"] = str(console.limiter.retry_after(who))
        return limited

    def attempt(s):
        try:
            u = users.sign_in(s, email, password, max_failures=settings.console_max_failed_logins,
                              lockout=timedelta(minutes=settings.console_lockout_minutes))
        except users.SignInRefused as refused:
            if refused.reason == "locked":
                audit.record(s, tenant_id=None, actor=email[:254] or "?", action="sign_in_locked",
                             object_type="user", object_id=email[:128])
            return refused
        token = users.start_session(s, u, session_lifetime(settings))
        audit.record(s, tenant_id=u.tenant_id, actor=u.email, action="sign_in", object_type="user",
                     object_id=str(u.id))
        return token

    result = await console.run(attempt)
    if isinstance(result, users.SignInRefused):
        if result.reason == "locked":
            return fail(i18n.gettext(
                "This account is locked after too many wrong passwords. Try again in "
                "%(minutes)s minutes, or ask an owner to reset it.",
                minutes=int(settings.console_lockout_minutes)), 423)
        return fail(i18n.gettext("The email or password is not right."), 401)
    resp = web.HTTPFound(nxt)
    set_session_cookie(resp, settings, result)
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise resp


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    await console_of(request).run(lambda s: users.end_session(s, token))
    resp = redirect("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


@routes.post("/logout/everywhere")
@requires()
async def logout_everywhere(request: web.Request) -> web.StreamResponse:
    p = request["principal"]

    def run(s):
        n = users.end_all_sessions(s, p.user_id)
        audit.record(s, tenant_id=p.tenant_id, actor=p.actor, action="sign_out_everywhere",
                     object_type="user", object_id=str(p.user_id), after={"sessions_ended": n})

    await console_of(request).run(run)
    resp = redirect("/login", i18n.gettext("You are signed out on every device."))
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


@routes.post("/profile/language")
async def set_language(request: web.Request) -> web.StreamResponse:
    p = request.get("principal")
    if p is None:
        raise web.HTTPFound("/login")
    form = await request.post()
    locale = str(form.get("locale", ""))
    if locale not in i18n.LANGUAGES:
        raise redirect("/", i18n.gettext("Unknown language."), "error")

    def run(s):
        users.set_locale(s, p.user_id, locale)
        audit.record(s, tenant_id=p.tenant_id, actor=p.actor, action="set_language",
                     object_type="user", object_id=str(p.user_id), before={"locale": p.locale},
                     after={"locale": locale})

    await console_of(request).run(run)
    raise web.HTTPFound(_safe_next(str(form.get("next", "/"))))
