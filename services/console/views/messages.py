"""Messages: the tenant's outbound messages searched by number, status, date range and campaign
(keyset pages, newest first), and one message's timeline. The list's figures refresh by
themselves while messages are on their way."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select

from services.core import message_search, sending
from services.core.db.campaigns_models import Campaign

from .. import i18n
from ..web import console_of, render, requires, tenant_of

routes = web.RouteTableDef()
PAGE = 50
FILTERS = ("number", "status", "campaign", "since", "until")
SETTLED = ("delivered", "failed", "expired", "suppressed")


def _day(raw: str, errors: dict[str, str], name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = i18n.gettext("Use a date such as 2026-03-31.")
        return None


def _filters(request: web.Request) -> tuple[message_search.MessageFilter, dict[str, str], dict[str, str]]:
    q = {k: request.query.get(k, "").strip() for k in FILTERS}
    errors: dict[str, str] = {}
    number = None
    if q["number"]:
        number = sending.normalise_number(q["number"])
        if number is None:
            errors["number"] = i18n.gettext("Enter a full number in international format, such as "
                                            "+8613812345678.")
    status = q["status"] if q["status"] in message_search.STATUSES else None
    zone = i18n.zone()
    since_day, until_day = _day(q["since"], errors, "since"), _day(q["until"], errors, "until")
    # Days are the tenant's days: from its midnight to the midnight after the last day.
    since = datetime.combine(since_day, time(), zone).astimezone(UTC) if since_day else None
    until = (datetime.combine(until_day + timedelta(days=1), time(), zone).astimezone(UTC)
             if until_day else None)
    f = message_search.MessageFilter(number=number, status=status,
                                     campaign_id=q["campaign"] or None, since=since, until=until)
    return f, q, errors


async def _results(request: web.Request) -> dict:
    tenant = tenant_of(request)
    f, q, errors = _filters(request)
    after = message_search.decode_cursor(request.query.get("after"))

    def load(s):
        rows, cursor = ([], None) if errors else message_search.search(
            s, tenant, f, after=after, limit=PAGE)
        names = dict(s.execute(select(Campaign.id, Campaign.name).where(
            Campaign.tenant_id == tenant).order_by(Campaign.created_at.desc()).limit(200)).all())
        return rows, cursor, names

    rows, cursor, campaigns = await console_of(request).run(load)
    base = {k: v for k, v in q.items() if v}
    return {"rows": rows, "q": q, "errors": errors, "campaigns": campaigns,
            "statuses": message_search.STATUSES, "filtered": bool(base),
            "next_url": "?" + urlencode({**base, "after": cursor}) if cursor else "",
            "first_url": "?" + urlencode(base) if request.query.get("after") else "",
            "refresh_url": "/messages/rows?" + request.query_string}


@routes.get("/messages")
@requires()
async def messages_page(request: web.Request) -> web.Response:
    return render(request, "messages.html", title=i18n.gettext("Messages"), **await _results(request))


@routes.get("/messages/rows")
@requires()
async def messages_rows(request: web.Request) -> web.Response:
    """The table alone, for the page's live refresh."""
    return render(request, "messages_rows.html", **await _results(request))


@routes.get("/messages/{id}")
@requires()
async def message_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    mid = request.match_info["id"]

    def load(s):
        msg = message_search.get(s, tenant, mid)
        if msg is None:
            return None
        campaign = s.get(Campaign, msg.campaign_id) if msg.campaign_id else None
        return msg, message_search.timeline(s, msg), campaign

    found = await console_of(request).run(load)
    if found is None:
        raise web.HTTPNotFound()
    msg, timeline, campaign = found
    settled = msg.status in SETTLED
    live = bool(request.headers.get("HX-Request"))
    resp = render(request, "messages_timeline.html" if live else "messages_detail.html",
                  title=i18n.gettext("Message to %(number)s", number=msg.recipient),
                  msg=msg, timeline=timeline, campaign=campaign, settled=settled)
    if live and settled:
        resp.set_status(286)  # htmx: stop polling, the message will not change again
    return resp
