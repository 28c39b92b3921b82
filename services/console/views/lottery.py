"""Lottery (issue 12, page 4): a brand's lotteries with their prize tiers (odds, total and daily
caps), prize-card uploads (passwords sealed, never shown again), stock levels with a low-stock
warning, the draw log with each draw's inputs, the winners (numbers masked) and an owner's
re-send of a winner's card message. Views parse and render; the rules are in
services/verifier/domain/lottery_admin.py and services/core/card_files.py."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.core.card_files import CardFileError, parse_cards
from services.core.secrets import SecretBox
from services.verifier.domain import lottery_admin as la
from services.verifier.domain.verify import Verifier

from .. import i18n
from ..domain import audit
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
PAGE = 50
TIER_ROWS = 3
_ = i18n.gettext


def _label(outcome: str) -> str:
    return _(la.OUTCOME_LABELS.get(outcome, outcome))


def _errors(exc: la.FieldError) -> dict[str, str]:
    return {exc.field: _(exc.template, **exc.values)}


def _int(raw: Any, field_name: str, *, optional: bool = False, cents: bool = False) -> int | None:
    text = str(raw or "").strip().replace(",", "")
    if not text and optional:
        return None
    try:
        value = round(float(text) * 100) if cents else int(text)
    except ValueError:
        raise la.FieldError(field_name, _("Enter a whole number.") if not cents
                            else _("Enter an amount such as 50 or 49.90.")) from None
    return value


def _odds(raw: Any, field_name: str) -> float:
    text = str(raw or "").strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100
        if "/" in text:
            a, b = text.split("/", 1)
            return float(a) / float(b)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise la.FieldError(field_name, _("Enter odds such as 0.05, 5% or 1/20.")) from None


def _tier_in(form: Any, prefix: str = "") -> la.TierIn:
    return la.TierIn(name=str(form.get(f"{prefix}name", "")).strip(),
                     name_zh=str(form.get(f"{prefix}name_zh", "")).strip() or None,
                     odds=_odds(form.get(f"{prefix}odds"), f"{prefix}odds"),
                     cap=_int(form.get(f"{prefix}cap"), f"{prefix}cap") or 0,
                     daily_cap=_int(form.get(f"{prefix}daily_cap"), f"{prefix}daily_cap", optional=True),
                     value_cents=_int(form.get(f"{prefix}value"), f"{prefix}value", optional=True,
                                      cents=True) or 0)


def _lottery_id(request: web.Request, key: str = "id") -> int:
    raw = request.match_info[key]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    return int(raw)


# -- the list and a new lottery --------------------------------------------------------------------

@routes.get("/lottery")
@requires()
async def lottery_list(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    views = await console_of(request).run(lambda s: la.lotteries(s, tenant))
    return render(request, "lottery.html", title=_("Lottery"), lotteries=views)


async def _new_page(request: web.Request, status: int = 200, errors: dict | None = None,
                    form: Any = None) -> web.Response:
    tenant = tenant_of(request)
    brands = await console_of(request).run(lambda s: la.brands_and_products(s, tenant))
    return render(request, "lottery_new.html", status=status, title=_("New lottery"), brands=brands,
                  errors=errors or {}, form=form or {}, rows=range(TIER_ROWS))


@routes.get("/lottery/new")
@requires(write=True)
async def lottery_new(request: web.Request) -> web.Response:
    return await _new_page(request)


@routes.post("/lottery/new")
@requires(write=True)
async def lottery_create(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    try:
        brand, product = str(form.get("brand", "")), str(form.get("product", ""))
        tiers = [_tier_in(form, f"tiers-{i}-") for i in range(TIER_ROWS)
                 if any(str(form.get(f"tiers-{i}-{k}", "")).strip() for k in ("name", "odds"))]
        budget = _int(form.get("budget"), "budget", optional=True, cents=True)
        if not brand.isdigit():
            raise la.FieldError("brand", _("Choose the brand whose codes take part."))

        def run(s) -> int:
            lot = la.create_lottery(s, tenant, int(brand), str(form.get("name", "")), tiers,
                                    product_id=int(product) if product.isdigit() else None,
                                    budget_cents=budget)
            audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="lottery",
                         object_id=str(lot.id), after={"name": lot.name, "budget_cents": budget,
                                                       "tiers": [t.__dict__ for t in tiers]})
            return lot.id

        lottery_id = await console_of(request).run(run)
    except la.FieldError as exc:
        return await _new_page(request, 422, _errors(exc), form)
    raise redirect(f"/lottery/{lottery_id}", _("The lottery is open. Upload prize cards to each tier "
                                               "so that winners get one."))


# -- one lottery ----------------------------------------------------------------------------------

async def _detail(request: web.Request, status: int = 200, errors: dict | None = None,
                  form: Any = None, problems: list[str] | None = None, problem_tier: int | None = None
                  ) -> web.Response:
    tenant = tenant_of(request)
    lottery_id = _lottery_id(request)

    def load(s):
        return la.lottery(s, tenant, lottery_id), la.outcome_counts(s, tenant, lottery_id)

    try:
        view, counts = await console_of(request).run(load)
    except LookupError:
        raise web.HTTPNotFound() from None
    return render(request, "lottery_detail.html", status=status, title=view.lottery.name, view=view,
                  counts=counts, errors=errors or {}, form=form or {}, problems=problems or [],
                  problem_tier=problem_tier, outcomes=la.OUTCOMES, label=_label)


@routes.get("/lottery/{id:\\d+}")
@requires()
async def lottery_detail(request: web.Request) -> web.Response:
    return await _detail(request)


@routes.get("/lottery/{id:\\d+}/stock")
@requires()
async def lottery_stock(request: web.Request) -> web.Response:
    """The live part of the page: stock and draw counts (htmx, every few seconds)."""
    tenant = tenant_of(request)
    lottery_id = _lottery_id(request)

    def load(s):
        return la.lottery(s, tenant, lottery_id), la.outcome_counts(s, tenant, lottery_id)

    try:
        view, counts = await console_of(request).run(load)
    except LookupError:
        raise web.HTTPNotFound() from None
    return render(request, "lottery_stock.html", view=view, counts=counts, outcomes=la.OUTCOMES,
                  label=_label)


@routes.post("/lottery/{id:\\d+}/tiers")
@requires(write=True)
async def tier_add(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    lottery_id = _lottery_id(request)
    form = await request.post()

    def run(s):
        tier = la.add_tier(s, tenant, lottery_id, _tier_in(form))
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="prize_tier",
                     object_id=str(tier.id), after=la.tier_view(tier), note=f"lottery {lottery_id}")

    try:
        await console_of(request).run(run)
    except la.FieldError as exc:
        return await _detail(request, 422, _errors(exc), form)
    except LookupError:
        raise web.HTTPNotFound() from None
    raise redirect(f"/lottery/{lottery_id}", _("The prize tier is added."))


@routes.post("/lottery/{id:\\d+}/tiers/{tier:\\d+}")
@requires(write=True)
async def tier_update(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    lottery_id, tier_id = _lottery_id(request), _lottery_id(request, "tier")
    form = await request.post()

    def run(s):
        tier, lot = la._tier(s, tenant, tier_id)
        if lot.id != lottery_id:
            raise LookupError(tier_id)
        before, after = la.update_tier(s, tenant, tier_id, _tier_in(form))
        audit.record(s, tenant_id=tenant, actor=p.actor, action="update", object_type="prize_tier",
                     object_id=str(tier_id), before=before, after=after)

    try:
        await console_of(request).run(run)
    except la.FieldError as exc:
        errors = {f"tier-{tier_id}-{k}": v for k, v in _errors(exc).items()}
        return await _detail(request, 422, errors, {"tier": tier_id, **form})
    except LookupError:
        raise web.HTTPNotFound() from None
    raise redirect(f"/lottery/{lottery_id}", _("The prize tier is saved."))


@routes.post("/lottery/{id:\\d+}/tiers/{tier:\\d+}/cards")
@requires(write=True)
async def cards_upload(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    lottery_id, tier_id = _lottery_id(request), _lottery_id(request, "tier")
    form = await request.post()
    upload = form.get("file")
    raw = upload.file.read() if hasattr(upload, "file") else b""
    box = SecretBox(console_of(request).settings.secret_key)

    def run(s) -> int:
        tier, lot = la._tier(s, tenant, tier_id)
        if lot.id != lottery_id:
            raise LookupError(tier_id)
        rows = parse_cards(raw)
        n = la.upload_cards(s, box, tenant, tier_id, rows)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="upload", object_type="prize_cards",
                     object_id=str(tier_id), after={"cards": n, "tier": tier.name,
                                                    "file": getattr(upload, "filename", "")})
        return n

    try:
        n = await console_of(request).run(run)
    except LookupError:
        raise web.HTTPNotFound() from None
    except CardFileError as exc:
        problems = [_(text, **values) for text, values in exc.items] if raw \
            else [_("Choose a CSV file of cards to upload.")]
        return await _detail(request, 422, problems=problems, problem_tier=tier_id)
    raise redirect(f"/lottery/{lottery_id}",
                   i18n.ngettext("%(num)d card added. Its password is stored encrypted and will not be "
                                 "shown again.",
                                 "%(num)d cards added. Their passwords are stored encrypted and will not "
                                 "be shown again.", n))


@routes.post("/lottery/{id:\\d+}/active")
@requires(write=True)
async def lottery_active(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    lottery_id = _lottery_id(request)
    form = await request.post()
    active = form.get("active") == "1"

    def run(s):
        if la.set_active(s, tenant, lottery_id, active):
            audit.record(s, tenant_id=tenant, actor=p.actor, action="update", object_type="lottery",
                         object_id=str(lottery_id), before={"active": not active}, after={"active": active})

    try:
        await console_of(request).run(run)
    except LookupError:
        raise web.HTTPNotFound() from None
    raise redirect(f"/lottery/{lottery_id}", _("The lottery is open: every first valid code is drawn.")
                   if active else _("The lottery is paused: no draws until you open it again."))


# -- the draw log and the winners -----------------------------------------------------------------

@routes.get("/lottery/{id:\\d+}/draws")
@requires()
async def draw_log(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    lottery_id = _lottery_id(request)
    outcome = request.query.get("outcome", "")
    before = request.query.get("before", "")
    winners = outcome == "won"

    def load(s):
        view = la.lottery(s, tenant, lottery_id)
        rows = la.draws(s, tenant, lottery_id, outcome=outcome or None,
                        before_id=int(before) if before.isdigit() else None, limit=PAGE + 1)
        return view, rows

    try:
        view, rows = await console_of(request).run(load)
    except LookupError:
        raise web.HTTPNotFound() from None
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_url = f"?outcome={outcome}&before={rows[-1].id}" if more else ""
    return render(request, "lottery_draws.html", title=(_("Winners") if winners else _("Draw log")),
                  view=view, rows=rows, outcome=outcome, outcomes=la.OUTCOMES, winners=winners, label=_label,
                  next_url=next_url, first_url=f"?outcome={outcome}" if before else "")


@routes.post("/lottery/{id:\\d+}/draws/{draw:\\d+}/resend")
@requires(owner=True)
async def resend(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    console = console_of(request)
    lottery_id, draw_id = _lottery_id(request), _lottery_id(request, "draw")
    verifier = Verifier(console.settings.secret_key)

    def run(s):
        out, d = la.resend_prize(s, verifier, tenant, draw_id)
        if d.lottery_id != lottery_id:
            raise LookupError(draw_id)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="resend", object_type="prize_message",
                     object_id=str(draw_id),
                     after={"to": la.mask(d.msisdn), "request_id": out.value["request_id"]})
        return out

    try:
        out = await console.run(run)
    except LookupError:
        raise web.HTTPNotFound() from None
    if console.producer is None:
        raise redirect(f"/lottery/{lottery_id}/draws?outcome=won",
                       _("The message could not be sent: the console is not connected to Kafka."), "error")
    await console.producer.send(out.topic, out.value, out.key)
    raise redirect(f"/lottery/{lottery_id}/draws?outcome=won",
                   _("The winner's card message is sent again."))
