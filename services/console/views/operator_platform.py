"""Operator pages across tenants (platform role only): sender numbers and keywords with their
conflicts and reassigning a number, carriers (configuration without secrets, live state from
egress's /health, rate limits, submissions and errors per minute), the users of every tenant,
and the platform audit log filtered by tenant."""

from __future__ import annotations

from aiohttp import web

from services.core import kafka_admin

from .. import i18n
from ..domain import audit, platform
from ..domain.users import UserError
from ..web import console_of, field_errors, redirect, render, requires, svg_bars

routes = web.RouteTableDef()
PAGE = 50


# -- numbers and keywords ------------------------------------------------------------------------

async def _numbers(request: web.Request, status: int = 200, errors: dict | None = None,
                   form: dict | None = None) -> web.Response:
    q = request.query.get("q", "")
    after = request.query.get("after") or None

    def load(s):
        return (platform.numbers(s, q=q, after=after, limit=PAGE + 1), platform.keyword_conflicts(s),
                platform.tenant_ids(s))

    rows, conflicts, tenants = await console_of(request).run(load)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render(request, "operator_numbers.html", status=status, title=i18n.gettext("Numbers and keywords"),
                  tab="numbers", rows=rows, conflicts=conflicts, tenants=tenants, q=q,
                  next_after=rows[-1].number if more and rows else None,
                  errors=errors or {}, form=form or {})


@routes.get("/operator/numbers")
@requires(platform=True)
async def numbers_page(request: web.Request) -> web.Response:
    return await _numbers(request)


@routes.post("/operator/numbers/reassign")
@requires(platform=True, write=True)
async def reassign(request: web.Request) -> web.StreamResponse:
    p = request["principal"]
    form = await request.post()
    data = {k: str(form.get(k, "")).strip() for k in ("number", "from_tenant", "to_tenant")}

    def run(s):
        row = platform.reassign_number(s, data["number"], data["from_tenant"], data["to_tenant"])
        audit.record(s, tenant_id=None, actor=p.actor, action="reassign", object_type="sender_number",
                     object_id=row.number, before={"tenant": data["from_tenant"]},
                     after={"tenant": row.tenant_id, "shared": row.shared})

    try:
        await console_of(request).run(run)
    except UserError as exc:
        return await _numbers(request, 422, {k: i18n.gettext(v) for k, v in field_errors(exc).items()},
                              data)
    raise redirect("/operator/numbers", i18n.gettext(
        "%(number)s now belongs to %(tenant)s.", number=data["number"], tenant=data["to_tenant"]))


# -- carriers ------------------------------------------------------------------------------------

async def _carriers(request: web.Request) -> dict:
    console = console_of(request)
    views, problem = platform.carriers(console.settings.carriers_file)
    names = [c.name for c in views]
    minutes = await console.run(lambda s: platform.carrier_minutes(s, names)) if names else {}
    egress_url = kafka_admin.health_urls(console.settings)["egress"]
    [egress] = await kafka_admin.healths(console.settings, urls={"egress": egress_url})
    binds = (egress.detail.get("checks") or {}).get("carriers") or {}
    for c in views:
        c.minutes = minutes.get(c.name, [])
        c.live = binds.get(c.name) if isinstance(binds.get(c.name), dict) else None
    charts = {c.name: (svg_bars([(m.strftime("%H:%M"), sent) for m, sent, _ in c.minutes], height=60),
                       svg_bars([(m.strftime("%H:%M"), failed) for m, _, failed in c.minutes],
                                height=60, color="#dc2626"))
              for c in views}
    return {"carriers": views, "problem": problem, "egress": egress, "charts": charts}


@routes.get("/operator/carriers")
@requires(platform=True)
async def carriers_page(request: web.Request) -> web.Response:
    return render(request, "operator_carriers.html", title=i18n.gettext("Carriers"), tab="carriers",
                  **await _carriers(request))


@routes.get("/operator/carriers/live")
@requires(platform=True)
async def carriers_live(request: web.Request) -> web.Response:
    return render(request, "_operator_carriers_live.html", **await _carriers(request))


# -- users and the audit log ---------------------------------------------------------------------

def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@routes.get("/operator/users")
@requires(platform=True)
async def users_page(request: web.Request) -> web.Response:
    tenant, q = request.query.get("tenant", ""), request.query.get("q", "")
    after = _int(request.query.get("after"))

    def load(s):
        return platform.all_users(s, tenant=tenant, q=q, after=after, limit=PAGE + 1), platform.tenant_ids(s)

    rows, tenants = await console_of(request).run(load)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render(request, "operator_users.html", title=i18n.gettext("Users of every tenant"),
                  tab="users", rows=rows, tenants=tenants, tenant=tenant, q=q,
                  next_after=rows[-1].id if more and rows else None)


@routes.get("/operator/audit")
@requires(platform=True)
async def audit_page(request: web.Request) -> web.Response:
    tenant = request.query.get("tenant", "")
    before = _int(request.query.get("before"))

    def load(s):
        tenants = platform.tenant_ids(s)
        if tenant and tenant not in tenants:
            return None, tenants
        return audit.entries(s, tenant or None, before_id=before, limit=PAGE + 1), tenants

    rows, tenants = await console_of(request).run(load)
    if rows is None:
        raise web.HTTPNotFound()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render(request, "operator_audit.html", title=i18n.gettext("Platform audit log"),
                  tab="audit", rows=rows, tenants=tenants, tenant=tenant,
                  next_before=rows[-1].id if more and rows else None)
