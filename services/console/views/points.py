"""Points and gifts (issue 12, page 5): points per valid code of each product, thresholds in
order with their messages, the gift catalogue with its virtual-card inventory, redemptions, and
a member's balance and ledger entries. The rules are in services/ledger/admin.py (thresholds,
gifts, cards), services/verifier/domain/admin.py (product points) and
services/core/card_files.py (inventory files); numbers are masked for analysts."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from services.core import sending
from services.core.card_files import CardFileError, parse_cards
from services.core.db.schemes import Product
from services.core.secrets import SecretBox
from services.ledger import admin as ledger_admin
from services.verifier.domain import admin as verifier_admin
from services.verifier.domain.replies import mask

from .. import i18n
from ..domain import audit
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
PAGE = 50
THRESHOLD_ROWS = 2  # empty rows under the saved thresholds
_ = i18n.gettext


def _label(outcome: str) -> str:
    return _(ledger_admin.OUTCOME_LABELS.get(outcome, outcome))


def _errors(exc: ledger_admin.FieldError) -> dict[str, str]:
    return {exc.field: _(exc.template, **exc.values)}


def _whole(raw: Any, field_name: str) -> int:
    try:
        return int(str(raw or "").strip().replace(",", ""))
    except ValueError:
        raise ledger_admin.FieldError(field_name, _("Enter a whole number.")) from None


def _id(request: web.Request, key: str) -> int:
    raw = request.match_info[key]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    return int(raw)


def _shown(request: web.Request):
    """Members' numbers in full for those who may change things, masked for analysts."""
    return (lambda n: n) if request["principal"].can_write else mask


async def _page(request: web.Request, status: int = 200, errors: dict | None = None, form: Any = None,
                problems: list[str] | None = None, problem_gift: int | None = None) -> web.Response:
    tenant = tenant_of(request)
    before = request.query.get("before", "")

    def load(s):
        products = list(s.scalars(select(Product).where(Product.tenant_id == tenant).order_by(Product.name)))
        return {"products": products, "thresholds": ledger_admin.thresholds(s, tenant),
                "gifts": ledger_admin.gifts(s, tenant), "summary": ledger_admin.program_summary(s, tenant),
                "redemptions": ledger_admin.redemptions(s, tenant, limit=PAGE + 1,
                                                        before_id=int(before) if before.isdigit() else None)}

    data = await console_of(request).run(load)
    rows = data.pop("redemptions")
    next_url = f"?before={rows[PAGE - 1][0].id}#redemptions" if len(rows) > PAGE else ""
    return render(request, "points.html", status=status, title=_("Points and gifts"), **data,
                  redemptions=rows[:PAGE], next_url=next_url,
                  first_url="/points#redemptions" if before else "",
                  errors=errors or {}, form=form or {}, problems=problems or [], problem_gift=problem_gift,
                  empty_rows=range(THRESHOLD_ROWS), shown=_shown(request), label=_label)


@routes.get("/points")
@requires()
async def points_page(request: web.Request) -> web.Response:
    return await _page(request)


@routes.get("/points/figures")
@requires()
async def points_figures(request: web.Request) -> web.Response:
    """The live figures (htmx, every few seconds)."""
    tenant = tenant_of(request)
    summary = await console_of(request).run(lambda s: ledger_admin.program_summary(s, tenant))
    return render(request, "points_figures.html", summary=summary)


@routes.post("/points/products/{id}")
@requires(write=True)
async def product_points(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    product_id = _id(request, "id")
    form = await request.post()
    field_name = f"product-{product_id}-points"
    try:
        points = _whole(form.get("points"), field_name)

        def run(s):
            try:
                before, after = verifier_admin.set_product_points(s, tenant, product_id, points)
            except ValueError:
                raise ledger_admin.FieldError(field_name, _("Points per valid code are 0 to 1,000,000; "
                                                            "they cannot be negative.")) from None
            audit.record(s, tenant_id=tenant, actor=p.actor, action="update", object_type="product_points",
                         object_id=str(product_id), before={"points": before}, after={"points": after})

        await console_of(request).run(run)
    except ledger_admin.FieldError as exc:
        return await _page(request, 422, _errors(exc), form)
    except LookupError:
        raise web.HTTPNotFound() from None
    raise redirect("/points", _("Points per valid code are saved."))


@routes.post("/points/thresholds")
@requires(write=True)
async def save_thresholds(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    try:
        items = []
        for i in range(int(form.get("rows", "0") or 0)):
            raw = str(form.get(f"thresholds-{i}-points", "")).strip()
            if not raw:
                continue
            items.append(ledger_admin.ThresholdIn(_whole(raw, f"thresholds-{i}-points"),
                                                  str(form.get(f"thresholds-{i}-message_en", "")),
                                                  str(form.get(f"thresholds-{i}-message_zh", ""))))

        def run(s):
            before, after = ledger_admin.set_thresholds(s, tenant, items)
            audit.record(s, tenant_id=tenant, actor=p.actor, action="update", object_type="points_thresholds",
                         object_id=tenant, before=before, after=after)

        await console_of(request).run(run)
    except ledger_admin.FieldError as exc:
        return await _page(request, 422, _errors(exc), form)
    raise redirect("/points", _("The thresholds are saved. Members are told once when they reach each."))


@routes.post("/points/gifts")
@requires(write=True)
async def add_gift(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    try:
        number, cost = _whole(form.get("number"), "number"), _whole(form.get("cost"), "cost")

        def run(s):
            g = ledger_admin.add_gift(s, tenant, number, str(form.get("name", "")), cost,
                                      str(form.get("name_zh", "")))
            audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="gift",
                         object_id=str(g.id), after={"number": g.number, "name": g.name, "cost": g.cost})

        await console_of(request).run(run)
    except ledger_admin.FieldError as exc:
        return await _page(request, 422, _errors(exc), form)
    raise redirect("/points", _("The gift is in the catalogue. Upload its virtual cards so that members "
                                "can redeem it."))


@routes.post("/points/gifts/{id}/cards")
@requires(write=True)
async def gift_cards(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    gift_id = _id(request, "id")
    form = await request.post()
    upload = form.get("file")
    raw = upload.file.read() if hasattr(upload, "file") else b""
    box = SecretBox(console_of(request).settings.secret_key)

    def run(s) -> int:
        gift = ledger_admin.get_gift(s, tenant, gift_id)
        n = ledger_admin.upload_gift_cards(s, box, tenant, gift_id, parse_cards(raw))
        audit.record(s, tenant_id=tenant, actor=p.actor, action="upload", object_type="gift_cards",
                     object_id=str(gift_id), after={"cards": n, "gift": gift.name,
                                                    "file": getattr(upload, "filename", "")})
        return n

    try:
        n = await console_of(request).run(run)
    except LookupError:
        raise web.HTTPNotFound() from None
    except CardFileError as exc:
        problems = [_(text, **values) for text, values in exc.items] if raw \
            else [_("Choose a CSV file of cards to upload.")]
        return await _page(request, 422, problems=problems, problem_gift=gift_id)
    raise redirect("/points", i18n.ngettext(
        "%(num)d card added. Its password is stored encrypted and will not be shown again.",
        "%(num)d cards added. Their passwords are stored encrypted and will not be shown again.", n))


@routes.post("/points/gifts/{id}/active")
@requires(write=True)
async def gift_active(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    gift_id = _id(request, "id")
    form = await request.post()
    active = form.get("active") == "1"

    def run(s):
        g = ledger_admin.set_gift_active(s, tenant, gift_id, active)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="update", object_type="gift",
                     object_id=str(g.id), before={"active": not active}, after={"active": active})

    try:
        await console_of(request).run(run)
    except LookupError:
        raise web.HTTPNotFound() from None
    raise redirect("/points", _("The gift is offered again.") if active
                   else _("The gift is withdrawn: members no longer see or redeem it."))


@routes.get("/points/members")
@requires()
async def member_page(request: web.Request) -> web.Response:
    """A member found by number (owners, operators), or the members with a balance by number."""
    tenant = tenant_of(request)
    raw = request.query.get("number", "").strip()
    before, after = request.query.get("before", ""), request.query.get("after", "")
    errors: dict[str, str] = {}
    number = sending.normalise_number(raw) if raw else None
    if raw and number is None:
        errors["number"] = _("Enter a full number in international format, such as +8613812345678.")

    def load(s):
        if number:
            return (ledger_admin.member(s, tenant, number, limit=PAGE + 1,
                                        before_id=int(before) if before.isdigit() else None),
                    ledger_admin.redemptions(s, tenant, member=number, limit=20))
        return ledger_admin.accounts(s, tenant, after=after or None, limit=PAGE + 1), []

    found, redemptions = await console_of(request).run(load)
    ctx: dict[str, Any] = {"number": number, "raw": raw, "errors": errors, "shown": _shown(request),
                           "redemptions": redemptions, "label": _label}
    if number:
        entries = found.entries if found else []
        ctx.update(member=found, entries=entries[:PAGE],
                   next_url=f"?number={number}&before={entries[PAGE - 1].id}" if len(entries) > PAGE else "")
    else:
        ctx.update(member=None, accounts=found[:PAGE],
                   next_url=f"?after={found[PAGE - 1].member}" if len(found) > PAGE else "")
    return render(request, "points_member.html", status=422 if errors else 200, title=_("Members' points"),
                  **ctx)
