"""Operator pages (platform role only): tenants, a new tenant with its first owner, suspend
and resume (a suspended tenant's API keys are refused with 403 naming the suspension; its
inbound texts are still recorded), and the installation's processes with their restart counts
(shown on the pipeline tab, views/operator_pipeline.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from services.core.db.models import Tenant
from services.core.topics import ensure_topics, tenant_topics

from .. import i18n
from ..domain import audit, platform
from ..domain.users import UserError
from ..web import console_of, field_errors, redirect, render, requires

routes = web.RouteTableDef()


async def _page(request: web.Request, status: int = 200, errors: dict | None = None,
                form: dict | None = None, created: tuple[str, str] | None = None) -> web.Response:
    console = console_of(request)
    rows = await console.run(platform.tenants)
    resp = render(request, "operator.html", status=status, title=i18n.gettext("Platform"),
                  rows=rows, errors=errors or {}, form=form or {}, created=created)
    if created:
        resp.headers["Cache-Control"] = "no-store"
    return resp


@routes.get("/operator")
@requires(platform=True)
async def operator_page(request: web.Request) -> web.Response:
    return await _page(request)


@routes.get("/operator/processes")
@requires(platform=True)
async def processes(request: web.Request) -> web.Response:
    state = platform.stack_state(Path(console_of(request).settings.stack_state_file))
    return render(request, "_operator_processes.html", state=state)


@routes.post("/operator/tenants")
@requires(platform=True)
async def create_tenant(request: web.Request) -> web.Response:
    console = console_of(request)
    p = request["principal"]
    form = await request.post()
    data = {k: str(form.get(k, "")).strip() for k in ("tenant_id", "name", "number", "owner_email")}

    def run(s):
        t, password = platform.create_tenant_with_owner(
            s, tenant_id=data["tenant_id"], name=data["name"], number=data["number"],
            owner_email=data["owner_email"])
        audit.record(s, tenant_id=None, actor=p.actor, action="create", object_type="tenant",
                     object_id=t.id, after={"name": t.name, "number": data["number"],
                                            "owner": data["owner_email"]})
        return t.id, password

    try:
        tenant_id, password = await console.run(run)
    except UserError as exc:
        return await _page(request, 422, field_errors(exc), data)
    # The tenant's own topics (ERP in/out, status, dlq), as the CLI makes them.
    await asyncio.to_thread(ensure_topics, console.settings, tenant_topics(tenant_id))
    return await _page(request, created=(data["owner_email"].lower(), password))


@routes.post("/operator/tenants/{id}/{action:suspend|resume}")
@requires(platform=True)
async def suspend(request: web.Request) -> web.StreamResponse:
    p = request["principal"]
    tenant_id, action = request.match_info["id"], request.match_info["action"]

    def run(s) -> bool:
        t = s.get(Tenant, tenant_id)
        if t is None:
            return False
        before = {"active": t.active}
        t.active = action == "resume"
        audit.record(s, tenant_id=None, actor=p.actor, action=action, object_type="tenant",
                     object_id=t.id, before=before, after={"active": t.active})
        return True

    if not await console_of(request).run(run):
        raise web.HTTPNotFound()
    raise redirect("/operator", i18n.gettext("Tenant %(id)s: %(action)s done.", id=tenant_id,
                                             action=i18n.gettext(action)))
