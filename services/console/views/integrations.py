"""Integrations: how the institution's own systems connect.

- API keys: the secret is shown once, right after creation, then never again; revoke.
- The webhook endpoint (for ERPs that cannot speak Kafka): add its URL (the signing secret is
  shown once), change the URL, rotate the secret (shown once), disable and enable; the delivery
  log with response codes and attempts (keyset pages, live), replay of failed deliveries. All
  through services/bridge/webhooks.py, the code the bridge and the /v1/webhooks API use.
- The tenant's Kafka topics and how an ERP connects to them (no password is ever shown)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select

from services.bridge import webhooks
from services.core import tenancy
from services.core.db.models import ApiKey
from services.core.settings import Settings
from services.core.topics import tenant_topics

from .. import i18n
from ..domain import audit
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
_ = i18n.gettext
DELIVERY_PAGE = 50
DELIVERY_STATUSES = ("pending", "delivered", "failed")
# What each tenant topic is for an ERP, and the schema its records follow (schemas/).
TOPIC_ROLES = {"outbound": ("write", "schemas/tenant.outbound/v1.json"),
               "inbound": ("read", "schemas/sms.inbound/v1.json"),
               "status": ("read", "schemas/sms.status/v1.json"),
               "dlq": ("read", "schemas/dlq/v1.json")}


def _keys(s, tenant: str) -> list[ApiKey]:
    return list(s.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant)
                          .order_by(ApiKey.created_at.desc())))


def topic_purposes() -> dict[str, str]:
    return {"outbound": _("Your ERP publishes send requests here."),
            "inbound": _("Texts your customers send arrive here."),
            "status": _("The status of each of your messages (sent, delivered, failed)."),
            "dlq": _("Requests the platform could not take, with the reason.")}


def topic_keys() -> dict[str, str]:
    """The record key of each tenant topic (services/core/topics.py), in the user's language."""
    return {"outbound": _("the recipient's number"), "inbound": _("the sender's number"),
            "status": _("the platform's message id"), "dlq": _("the original record's key")}


def kafka_access(settings: Settings, tenant: str) -> dict:
    """How an ERP reaches its topics: the broker, its SASL user in deploy/kafka/acl/herald_acl.py's
    scheme (tenant-<id>) when the broker authenticates, and the topics (with any prefix)."""
    topics = []
    for spec in tenant_topics(tenant):
        kind = spec.name.rsplit(".", 1)[1]
        access, schema = TOPIC_ROLES[kind]
        topics.append({"name": settings.topic(spec.name), "kind": kind, "access": access,
                       "key": spec.key, "schema": schema})
    return {"bootstrap": settings.kafka_bootstrap, "sasl": settings.kafka_sasl,
            "protocol": settings.kafka_security_protocol,
            "mechanism": settings.kafka_sasl_mechanism, "user": f"tenant-{tenant}",
            "group_prefix": settings.topic(f"tenant.{tenant}."), "topics": topics}


def _endpoint(s, tenant: str) -> dict | None:
    ep = webhooks.endpoint_of(s, tenant)
    if ep is None:
        return None
    return {"url": ep.url, "active": ep.active, "created_at": ep.created_at,
            "updated_at": ep.updated_at}


def _endpoint_audit(ep: dict | None) -> dict | None:
    return None if ep is None else {"url": ep["url"], "active": ep["active"]}


async def _page(request: web.Request, *, status: int = 200, new_key: str | None = None,
                new_secret: str | None = None, errors: dict | None = None,
                form: dict | None = None) -> web.Response:
    tenant = tenant_of(request)
    console = console_of(request)

    def load(s):
        return _keys(s, tenant), _endpoint(s, tenant), webhooks.counts(s, tenant)

    keys, endpoint, counts = await console.run(load)
    resp = render(request, "integrations.html", status=status, title=_("Integrations"),
                  keys=keys, new_key=new_key, new_secret=new_secret, errors=errors or {},
                  form=form or {}, endpoint=endpoint, counts=counts,
                  kafka=kafka_access(console.settings, tenant), purposes=topic_purposes(),
                  key_labels=topic_keys(), key_rate=console.key_limiter.rate,
                  key_burst=console.key_limiter.burst)  # what /v1 enforces
    if new_key or new_secret:
        # Rendered (not redirected) so the secret is never stored anywhere to show it again.
        resp.headers["Cache-Control"] = "no-store"
    return resp


@routes.get("/integrations")
@requires()
async def integrations_page(request: web.Request) -> web.Response:
    return await _page(request)


@routes.post("/integrations/keys")
@requires(owner=True)
async def create_key(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    label = str(form.get("label", "")).strip()
    if not label or len(label) > 100:
        return await _page(request, status=422, form={"label": label},
                           errors={"label": i18n.gettext("Give the key a name of 1 to 100 "
                                                         "characters, such as the system that "
                                                         "will use it.")})

    def run(s):
        key = tenancy.issue_api_key(s, tenant, label)
        prefix = key.split("_")[1]
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="api_key",
                     object_id=prefix, after={"label": label, "prefix": prefix})
        return key

    return await _page(request, new_key=await console_of(request).run(run))


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


# -- the webhook endpoint ----------------------------------------------------------------------


@routes.post("/integrations/webhook")
@requires(owner=True)
async def save_webhook(request: web.Request) -> web.Response:
    """Add the endpoint (its secret shown once), or point it at a new URL (same secret)."""
    tenant = tenant_of(request)
    p = request["principal"]
    console = console_of(request)
    url = str((await request.post()).get("url", "")).strip()
    if not url.startswith(("http://", "https://")) or len(url) > 500 or " " in url:
        return await _page(request, status=422, form={"url": url}, errors={"url": _(
            "Give the full address, starting with https:// (or http://), of at most 500 "
            "characters.")})

    def run(s):
        before = _endpoint_audit(_endpoint(s, tenant))
        if before is None:
            secret = webhooks.set_endpoint(s, console.settings, tenant, url)
        else:
            webhooks.change_url(s, tenant, url)
            secret = None
        audit.record(s, tenant_id=tenant, actor=p.actor,
                     action="create" if before is None else "update",
                     object_type="webhook_endpoint", object_id=tenant, before=before,
                     after=_endpoint_audit(_endpoint(s, tenant)))
        return secret

    secret = await console.run(run)
    if secret is None:
        raise redirect("/integrations#webhook", _("The webhook address is changed; the signing "
                                                  "secret stays the same."))
    return await _page(request, new_secret=secret)


@routes.post("/integrations/webhook/rotate")
@requires(owner=True)
async def rotate_webhook_secret(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    p = request["principal"]
    console = console_of(request)

    def run(s):
        secret = webhooks.rotate_secret(s, console.settings, tenant)
        if secret is not None:
            audit.record(s, tenant_id=tenant, actor=p.actor, action="rotate_secret",
                         object_type="webhook_endpoint", object_id=tenant,
                         note="signing secret replaced")
        return secret

    secret = await console.run(run)
    if secret is None:
        raise web.HTTPNotFound()
    return await _page(request, new_secret=secret)


async def _switch(request: web.Request, active: bool) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]

    def run(s) -> bool:
        before = _endpoint_audit(_endpoint(s, tenant))
        if before is None:
            return False
        if before["active"] != active:
            (webhooks.enable_endpoint if active else webhooks.disable_endpoint)(s, tenant)
            audit.record(s, tenant_id=tenant, actor=p.actor,
                         action="enable" if active else "disable",
                         object_type="webhook_endpoint", object_id=tenant, before=before,
                         after=_endpoint_audit(_endpoint(s, tenant)))
        return True

    if not await console_of(request).run(run):
        raise web.HTTPNotFound()
    raise redirect("/integrations#webhook", _(
        "Webhooks are on again; deliveries that waited go out first.") if active else _(
        "Webhooks are off; new events wait until you turn them on again."))


@routes.post("/integrations/webhook/disable")
@requires(owner=True)
async def disable_webhook(request: web.Request) -> web.StreamResponse:
    return await _switch(request, False)


@routes.post("/integrations/webhook/enable")
@requires(owner=True)
async def enable_webhook(request: web.Request) -> web.StreamResponse:
    return await _switch(request, True)


# -- the delivery log --------------------------------------------------------------------------


def _dated(row: dict) -> dict:
    """The API's ISO timestamps back to datetimes, for the tenant's time zone."""
    return {**row, **{k: datetime.fromisoformat(row[k]) if row[k] else None
                      for k in ("created_at", "next_attempt_at", "delivered_at")}}


def _before(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


async def _deliveries(request: web.Request) -> dict:
    tenant = tenant_of(request)
    status = request.query.get("status", "")
    status = status if status in DELIVERY_STATUSES else ""
    before = _before(request.query.get("before"))

    def load(s):
        rows = webhooks.list_deliveries(s, tenant, status or None, DELIVERY_PAGE + 1, before)
        return rows, webhooks.counts(s, tenant), _endpoint(s, tenant)

    rows, counts, endpoint = await console_of(request).run(load)
    more = len(rows) > DELIVERY_PAGE
    rows = [_dated(r) for r in rows[:DELIVERY_PAGE]]
    base = {"status": status} if status else {}
    return {"rows": rows, "counts": counts, "endpoint": endpoint, "chosen": status,
            "statuses": DELIVERY_STATUSES,
            "next_url": "?" + urlencode({**base, "before": rows[-1]["id"]}) if more else "",
            "first_url": "?" + urlencode(base) if before else "",
            "refresh_url": "/integrations/deliveries/rows?" + request.query_string}


@routes.get("/integrations/deliveries")
@requires()
async def deliveries_page(request: web.Request) -> web.Response:
    return render(request, "integrations_deliveries.html", title=_("Webhook deliveries"),
                  **await _deliveries(request))


@routes.get("/integrations/deliveries/rows")
@requires()
async def deliveries_rows(request: web.Request) -> web.Response:
    """The counts and the table alone, for the page's live refresh."""
    return render(request, "integrations_deliveries_rows.html", **await _deliveries(request))


@routes.post("/integrations/deliveries/replay")
@requires(write=True)
async def replay_failed(request: web.Request) -> web.StreamResponse:
    """Every failed delivery back in the queue."""
    tenant = tenant_of(request)
    p = request["principal"]
    max_age = console_of(request).settings.webhook_max_age_s

    def run(s) -> int:
        n = webhooks.replay(s, tenant, max_age)
        if n:
            audit.record(s, tenant_id=tenant, actor=p.actor, action="replay",
                         object_type="webhook_deliveries", object_id="failed",
                         after={"replayed": n, "ids": "all failed"})
        return n

    n = await console_of(request).run(run)
    raise redirect("/integrations/deliveries", i18n.ngettext(
        "%(num)d failed delivery is queued again.", "%(num)d failed deliveries are queued again.",
        n) if n else _("There is no failed delivery to replay."), "success" if n else "info")


@routes.post("/integrations/deliveries/{id}/replay")
@requires(write=True)
async def replay_one(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    delivery_id = int(raw)
    max_age = console_of(request).settings.webhook_max_age_s

    def run(s) -> int | None:
        rows = webhooks.list_deliveries(s, tenant, None, 1, delivery_id + 1)
        if not rows or rows[0]["id"] != delivery_id:
            return None
        n = webhooks.replay(s, tenant, max_age, [delivery_id])
        if n:
            audit.record(s, tenant_id=tenant, actor=p.actor, action="replay",
                         object_type="webhook_deliveries", object_id=str(delivery_id),
                         after={"replayed": n, "ids": [delivery_id]})
        return n

    n = await console_of(request).run(run)
    if n is None:
        raise web.HTTPNotFound()
    raise redirect("/integrations/deliveries", _(
        "Delivery %(id)s is queued again.", id=delivery_id) if n else _(
        "Delivery %(id)s has not failed; only failed deliveries can be replayed.",
        id=delivery_id), "success" if n else "info")
