"""The account's people: owners add users with a role, change roles, unlock, reset a
password (which signs the user out everywhere) and deactivate. Every change is audited."""

from __future__ import annotations

import secrets

from aiohttp import web
from sqlalchemy import select

from services.core.db.console_models import ConsoleUser

from .. import i18n
from ..domain import audit, users
from ..web import console_of, field_errors, redirect, render, requires, tenant_of

routes = web.RouteTableDef()


def _view(u: ConsoleUser) -> dict:
    return {"email": u.email, "name": u.name, "role": u.role, "active": u.active,
            "locked": u.locked_until is not None}


async def _page(request: web.Request, status: int = 200, errors: dict | None = None,
                form: dict | None = None, temporary: tuple[str, str] | None = None) -> web.Response:
    tenant = tenant_of(request)
    rows = await console_of(request).run(lambda s: users.users_of(s, tenant))
    resp = render(request, "team.html", status=status, title=i18n.gettext("Team"), rows=rows,
                  errors=errors or {}, form=form or {}, roles=users.TENANT_ROLES,
                  temporary=temporary)
    if temporary:
        resp.headers["Cache-Control"] = "no-store"
    return resp


def _user_of_tenant(s, tenant: str, user_id: str) -> ConsoleUser:
    u = None
    if user_id.isdigit():
        u = s.scalar(select(ConsoleUser).where(ConsoleUser.id == int(user_id),
                                               ConsoleUser.tenant_id == tenant))
    if u is None:
        raise web.HTTPNotFound()
    return u


@routes.get("/team")
@requires()
async def team_page(request: web.Request) -> web.Response:
    return await _page(request)


@routes.post("/team")
@requires(owner=True)
async def add_user(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    data = {k: str(form.get(k, "")).strip() for k in ("email", "name", "role")}
    password = secrets.token_urlsafe(12)

    def run(s):
        u = users.create_user(s, email=data["email"], password=password, role=data["role"],
                              tenant_id=tenant, name=data["name"], locale=p.locale)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="user",
                     object_id=str(u.id), after=_view(u))
        return u.email

    try:
        email = await console_of(request).run(run)
    except users.UserError as exc:
        return await _page(request, 422, field_errors(exc), data)
    # The first password is shown once, to hand over; the user should change it.
    return await _page(request, temporary=(email, password))


@routes.post("/team/{id}/role")
@requires(owner=True)
async def change_role(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    role = str((await request.post()).get("role", ""))
    if role not in users.TENANT_ROLES:
        raise redirect("/team", i18n.gettext("Choose a role from the list."), "error")

    def run(s):
        u = _user_of_tenant(s, tenant, request.match_info["id"])
        if u.id == p.user_id and role != "owner":
            return i18n.gettext("You cannot take the owner role from yourself; ask another owner.")
        before = _view(u)
        u.role = role
        audit.record(s, tenant_id=tenant, actor=p.actor, action="change_role", object_type="user",
                     object_id=str(u.id), before=before, after=_view(u))
        users.end_all_sessions(s, u.id)  # the new role applies from the next sign-in
        return None

    problem = await console_of(request).run(run)
    if problem:
        raise redirect("/team", problem, "error")
    raise redirect("/team", i18n.gettext("The role is changed."))


@routes.post("/team/{id}/unlock")
@requires(owner=True)
async def unlock(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]

    def run(s):
        u = _user_of_tenant(s, tenant, request.match_info["id"])
        before = _view(u)
        u.locked_until, u.failed_logins = None, 0
        audit.record(s, tenant_id=tenant, actor=p.actor, action="unlock", object_type="user",
                     object_id=str(u.id), before=before, after=_view(u))

    await console_of(request).run(run)
    raise redirect("/team", i18n.gettext("The account is unlocked."))


@routes.post("/team/{id}/reset-password")
@requires(owner=True)
async def reset_password(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    p = request["principal"]
    password = secrets.token_urlsafe(12)

    def run(s):
        u = _user_of_tenant(s, tenant, request.match_info["id"])
        users.set_password(s, u, password)
        u.locked_until, u.failed_logins = None, 0
        audit.record(s, tenant_id=tenant, actor=p.actor, action="reset_password",
                     object_type="user", object_id=str(u.id), after=_view(u))
        return u.email

    email = await console_of(request).run(run)
    return await _page(request, temporary=(email, password))


@routes.post("/team/{id}/deactivate")
@requires(owner=True)
async def deactivate(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]

    def run(s):
        u = _user_of_tenant(s, tenant, request.match_info["id"])
        if u.id == p.user_id:
            return i18n.gettext("You cannot deactivate yourself.")
        before = _view(u)
        u.active = False
        users.end_all_sessions(s, u.id)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="deactivate", object_type="user",
                     object_id=str(u.id), before=before, after=_view(u))
        return None

    problem = await console_of(request).run(run)
    if problem:
        raise redirect("/team", problem, "error")
    raise redirect("/team", i18n.gettext("The user can no longer sign in."))
