"""Member club and market research (issue 12, page 6): the tenant's clubs (campaigns
subscription topics: SUB <club> joins and UNSUB <club> leaves by SMS), their members, adding
and removing a member from the console, and inviting participants (the verified buyers of a
product, or a club's members) to a survey or club campaign through a contact list. The
composition is services/console/domain/club.py over the campaigns and verifier domains."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.campaigns.domain.campaigns import CampaignError
from services.campaigns.domain.contacts import ContactError
from services.campaigns.domain.subscriptions import create_topic
from services.core import sending
from services.verifier.domain.replies import mask

from .. import i18n
from ..domain import audit
from ..domain import club as club_domain
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
PAGE = 50
_ = i18n.gettext


async def _page(request: web.Request, status: int = 200, errors: dict | None = None,
                form: Any = None) -> web.Response:
    tenant = tenant_of(request)
    name = request.query.get("club", "")
    after = request.query.get("after", "")
    raw = request.query.get("number", "").strip()
    number = sending.normalise_number(raw) if raw else None
    errors = dict(errors or {})
    if raw and number is None:
        errors["search"] = _("Enter a full number in international format, such as +8613812345678.")

    def load(s):
        found = club_domain.clubs(s, tenant)
        chosen = next((c for c in found if c.topic.name == name.upper()), found[0] if found else None)
        rows = club_domain.members(s, tenant, chosen.topic.name, after=after or None, number=number,
                                   limit=PAGE + 1) if chosen else []
        return found, chosen, rows, club_domain.products(s, tenant)

    clubs, chosen, rows, products = await console_of(request).run(load)
    if name and (chosen is None or chosen.topic.name != name.upper()):
        raise web.HTTPNotFound()
    can_write = request["principal"].can_write
    next_url = f"?club={chosen.topic.name}&after={rows[PAGE - 1].msisdn}" if len(rows) > PAGE else ""
    return render(request, "club.html", status=status, title=_("Member club"), clubs=clubs, chosen=chosen,
                  rows=rows[:PAGE], products=products, errors=errors, form=form or {}, next_url=next_url,
                  shown=(lambda n: n) if can_write else mask, raw=raw)


@routes.get("/club")
@requires()
async def club_page(request: web.Request) -> web.Response:
    return await _page(request)


@routes.post("/club")
@requires(write=True)
async def club_create(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()

    def run(s) -> str:
        topic = create_topic(s, tenant, {"name": str(form.get("name", "")),
                                         "description": str(form.get("description", ""))})
        routed = club_domain.route_sub_unsub(s, tenant)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="club",
                     object_id=topic.name, after={"name": topic.name, "description": topic.description,
                                                  "keywords_added": routed})
        return topic.name

    try:
        name = await console_of(request).run(run)
    except CampaignError as exc:
        message = (_("A club of that name exists already.") if exc.status == 409 else
                   _("A club's name is 1 to 32 letters or digits: members text SUB and the name to join."))
        return await _page(request, 422, {"name": message}, form)
    raise redirect(f"/club?club={name}", _("The club %(name)s is open: members join by texting SUB %(name)s "
                                           "and leave with UNSUB %(name)s.", name=name))


@routes.post("/club/{club}/members")
@requires(write=True)
async def member_change(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    name = request.match_info["club"].upper()
    form = await request.post()
    number = sending.normalise_number(str(form.get("number", "")))
    joining = form.get("action", "join") == "join"
    if number is None:
        return await _page(request, 422, {"number": _("Enter a full number in international format, such "
                                                      "as +8613812345678.")}, form)

    def run(s) -> bool:
        changed = (club_domain.join if joining else club_domain.leave)(s, tenant, name, number)
        if changed:
            audit.record(s, tenant_id=tenant, actor=p.actor, action="join" if joining else "leave",
                         object_type="club_member", object_id=f"{name}:{number}",
                         after={"club": name, "number": number, "member": joining, "source": "console"})
        return changed

    try:
        changed = await console_of(request).run(run)
    except LookupError:
        raise web.HTTPNotFound() from None
    if joining:
        message = _("%(number)s joined the club.", number=number) if changed \
            else _("%(number)s is already a member.", number=number)
    else:
        message = _("%(number)s left the club.", number=number) if changed \
            else _("%(number)s was not a member.", number=number)
    raise redirect(f"/club?club={name}", message, "success" if changed else "info")


@routes.post("/club/invite")
@requires(write=True)
async def invite(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    source = str(form.get("source", ""))
    list_name = str(form.get("list_name", "")).strip()
    kind = "survey" if form.get("kind") == "survey" else "notification"
    product = source.removeprefix("product:")
    product_id = int(product) if source.startswith("product:") and product.isdigit() else None
    club_name = source[len("club:"):] if source.startswith("club:") else None
    if product_id is None and not club_name:
        return await _page(request, 422, {"source": _("Choose who to invite: the buyers of a product or "
                                                      "the members of a club.")}, form)

    def run(s) -> tuple[int, int]:
        list_id, n = club_domain.invite_list(s, tenant, list_name, product_id=product_id, club_name=club_name)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="research_list",
                     object_id=str(list_id), after={"list": list_name, "source": source, "participants": n})
        return list_id, n

    try:
        _list_id, n = await console_of(request).run(run)
    except ContactError:
        return await _page(request, 422, {"list_name": _("Name the list of 1 to 100 characters, such as "
                                                         "'Gold buyers survey, May'.")}, form)
    except LookupError:
        raise web.HTTPNotFound() from None
    if n == 0:
        raise redirect("/club", _("Nobody matches yet: no verified buyer of that product or no club member."),
                       "info")
    raise redirect(f"/campaigns/new?kind={kind}", i18n.ngettext(
        "%(num)d participant is in the list %(list)s. Now write the campaign and choose that list.",
        "%(num)d participants are in the list %(list)s. Now write the campaign and choose that list.",
        n, list=list_name))
