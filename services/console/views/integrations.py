"""Integrations: the tenant's API keys (the secret is shown once, right after creation, then
never again; revoke). Webhook endpoints and Kafka credentials join this page."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from services.core import tenancy
from services.core.db.models import ApiKey

from .. import i18n
from ..domain import audit
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()


def _keys(s, tenant: str) -> list[ApiKey]:
    return list(s.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant)
                          .order_by(ApiKey.created_at.desc())))


@routes.get("/integrations")
@requires()
async def integrations_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    keys = await console_of(request).run(lambda s: _keys(s, tenant))
    return render(request, "integrations.html", title=i18n.gettext("Integrations"), keys=keys,
                  new_key=None, errors={})


@routes.post("/integrations/keys")
@requires(owner=True)
async def create_key(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    label = str(form.get("label", "")).strip()
    if not label or len(label) > 100:
        keys = await console_of(request).run(lambda s: _keys(s, tenant))
        return render(request, "integrations.html", status=422, title=i18n.gettext("Integrations"),
                      keys=keys, new_key=None,
                      errors={"label": i18n.gettext("Give the key a name of 1 to 100 characters, "
                                                    "such as the system that will use it.")})

    def run(s):
        key = tenancy.issue_api_key(s, tenant, label)
        prefix = key.split("_")[1]
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="api_key",
                     object_id=prefix, after={"label": label, "prefix": prefix})
        return key, _keys(s, tenant)

    key, keys = await console_of(request).run(run)
    # Rendered (not redirected) so the secret is never stored anywhere to show it again.
    resp = render(request, "integrations.html", title=i18n.gettext("Integrations"), keys=keys,
                  new_key=key, errors={})
    resp.headers["Cache-Control"] = "no-store"
    return resp


@routes.post("/integrations/keys/{prefix}/revoke")
@requires(owner=True)
async def revoke_key(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    prefix = request.match_info["prefix"]

    def run(s) -> bool:
        row = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.tenant_id == tenant))
        if row is None:
            return False
        if row.revoked_at is None:
            tenancy.revoke_api_key(s, prefix)
            audit.record(s, tenant_id=tenant, actor=p.actor, action="revoke", object_type="api_key",
                         object_id=prefix, before={"label": row.label, "revoked": False},
                         after={"label": row.label, "revoked": True})
        return True

    if not await console_of(request).run(run):
        raise web.HTTPNotFound()
    raise redirect("/integrations", i18n.gettext("The key is revoked; requests with it are refused now."))
