"""Campaigns: the list (search, status and kind filters, sort, keyset pages), a form for each
kind (validated by services/campaigns/domain/campaigns.create, the function POST /v1/campaigns
calls), a campaign's page with its steps (start, pause, resume, cancel) and live progress, a
survey's live results and CSV export, an inquiry's table upload and "try a query", and the
tenant's sending rules (quiet hours, frequency cap, speed)."""

from __future__ import annotations

import asyncio
import tempfile
from urllib.parse import urlencode

import httpx
from aiohttp import web

from services.campaigns.domain import campaigns, inquiry, surveys
from services.campaigns.domain import settings as tenant_settings
from services.campaigns.domain.campaigns import CampaignError
from services.campaigns.domain.policy import KIND_POLICIES
from services.campaigns.domain.settings import SettingsError
from services.core.db.campaigns_models import CampaignSettings

from .. import i18n
from ..domain import audit
from ..domain import campaign_pages as pages
from ..web import console_of, redirect, render, requires, svg_bars, tenant_of
from .campaign_forms import FormError, body_of, error_field, question_error, questions_of

routes = web.RouteTableDef()
_ = i18n.gettext
PAGE = 25
UPLOAD_MAX = 64 * 1024 * 1024
DEFAULT_RATE = 50.0
KINDS = campaigns.KINDS


def _kind_help() -> dict[str, str]:
    return {
        "notification": _("A message everyone in the audience must get: bills, appointments, "
                          "service notices. Not held back by quiet hours."),
        "greeting": _("A birthday or holiday greeting, sent on each contact's own date."),
        "promotion": _("Marketing to a list or segment, respecting quiet hours, the frequency "
                       "cap and opt-outs."),
        "survey": _("Questions by SMS with answers checked and branching; results live as "
                    "they arrive."),
        "inquiry": _("Contacts text a keyword and a code (ORDER 12345) and get an answer from "
                     "your table or your system."),
        "on_demand": _("Contacts text a keyword and get a piece of content, such as today's "
                       "prices."),
        "subscription": _("Send content to everyone who joined a topic with SUB."),
    }


# -- list --------------------------------------------------------------------------------------


@routes.get("/campaigns")
@requires()
async def campaign_list(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    qs = request.query
    q, status, kind = qs.get("q", ""), qs.get("status", ""), qs.get("kind", "")
    status = status if status in pages.STATUSES else ""
    kind = kind if kind in KINDS else ""
    sort = qs.get("sort", "created") if qs.get("sort") in pages.SORTS else "created"
    desc = qs.get("dir", "desc" if sort == "created" else "asc") == "desc"
    page = await console_of(request).run(lambda s: pages.list_campaigns(
        s, tenant, q=q, status=status, kind=kind, sort=sort, descending=desc,
        cursor=qs.get("after", ""), limit=PAGE))
    base = {"q": q, "status": status, "kind": kind, "sort": sort, "dir": "desc" if desc else "asc"}
    next_url = f"?{urlencode({**base, 'after': page.next_cursor})}" if page.next_cursor else ""
    first_url = f"?{urlencode(base)}" if qs.get("after") else ""
    return render(request, "campaigns.html", title=_("Campaigns"), page=page, base=base,
                  next_url=next_url, first_url=first_url,
                  statuses=pages.STATUSES, kinds=KINDS, filtered=bool(q or status or kind))


# -- create ------------------------------------------------------------------------------------


async def _form(request: web.Request, kind: str, *, values: dict | None = None,
                errors: dict | None = None, questions: list | None = None,
                question_errors: dict | None = None, status: int = 200) -> web.Response:
    tenant = tenant_of(request)

    def load(s):
        return (pages.form_choices(s, tenant),
                tenant_settings.settings_json(s.get(CampaignSettings, tenant), tenant, DEFAULT_RATE))

    choices, rules = await console_of(request).run(load)
    if questions is None:
        questions = [{"type": "choice", "choices": []}, {"type": "text"}] if kind == "survey" else []
    return render(request, "campaign_form.html", status=status,
                  title=_("New %(kind)s campaign", kind=_(kind)), kind=kind,
                  kind_help=_kind_help()[kind], values=values or {}, errors=errors or {},
                  questions=questions, question_errors=question_errors or {}, choices=choices,
                  rules=rules, policy=KIND_POLICIES.get(kind), zone=i18n.zone().key)


@routes.get("/campaigns/new")
@requires(write=True)
async def new_campaign(request: web.Request) -> web.Response:
    tenant_of(request)
    kind = request.query.get("kind", "")
    if kind not in KINDS:
        return render(request, "campaign_new.html", title=_("New campaign"), kinds=KINDS,
                      kind_help=_kind_help())
    return await _form(request, kind)


@routes.get("/campaigns/new/question")
@requires(write=True)
async def question_block(request: web.Request) -> web.Response:
    """One more empty question block for the survey builder (htmx appends it)."""
    tenant_of(request)
    try:
        i = max(0, min(int(request.query.get("i", "0")), 49))
    except ValueError:
        i = 0
    return render(request, "campaign_question.html", i=i, q={"type": "choice"}, qerror="",
                  oob=True)


@routes.post("/campaigns")
@requires(write=True)
async def create_campaign(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    kind = str(form.get("kind", ""))
    if kind not in KINDS:
        raise redirect("/campaigns/new", _("Choose what kind of campaign this is."), "error")
    values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    questions = questions_of_safe(form)
    try:
        body = body_of(form, kind)
    except FormError as exc:
        return await _form(request, kind, values=values, errors={exc.field: exc.message},
                           questions=questions, status=422)

    def run(s):
        c = campaigns.create(s, tenant, body)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="campaign",
                     object_id=c.id, after=campaigns.campaign_json(c))
        return c.id, c.status

    try:
        cid, status = await console_of(request).run(run)
    except CampaignError as exc:
        field, message = error_field(exc.reason)
        qerr = {}
        if field == "questions":
            at = question_error(exc.reason, questions)
            if at is not None:
                qerr[at] = message
        return await _form(request, kind, values=values, errors={field: message},
                           questions=questions, question_errors=qerr,
                           status=404 if exc.status == 404 else 422)
    msg = (_("The campaign is saved as a draft. Start it when you are ready.") if status == "draft"
           else _("The campaign is created and will start on schedule.") if status == "scheduled"
           and body.get("schedule_at") else _("The campaign is created and starting."))
    raise redirect(f"/campaigns/{cid}", msg)


def questions_of_safe(form) -> list:
    try:
        return questions_of(form)
    except FormError:
        return []


# -- sending rules -----------------------------------------------------------------------------


@routes.get("/campaigns/rules")
@requires()
async def rules_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    rules = await console_of(request).run(lambda s: tenant_settings.settings_json(
        s.get(CampaignSettings, tenant), tenant, DEFAULT_RATE))
    return render(request, "campaign_rules.html", title=_("Sending rules"), rules=rules,
                  values={}, errors={})


_RULE_FIELDS = {"rate_per_second": "rate_per_second", "timezone": "timezone",
                "quiet_hours": "quiet_start", "frequency_cap": "frequency_cap",
                "frequency_period": "frequency_period"}


@routes.post("/campaigns/rules")
@requires(write=True)
async def save_rules(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    values = {k: str(v).strip() for k, v in form.items() if k != "csrf_token"}
    errors: dict[str, str] = {}
    body: dict = {"timezone": values.get("timezone") or "UTC",
                  "frequency_period": values.get("frequency_period") or "week"}
    try:
        body["rate_per_second"] = float(values.get("rate_per_second") or DEFAULT_RATE)
    except ValueError:
        errors["rate_per_second"] = _("The sending speed must be a number.")
    try:
        body["frequency_cap"] = int(values.get("frequency_cap") or 0)
    except ValueError:
        errors["frequency_cap"] = _("The cap must be a whole number, 0 for no cap.")
    start, end = values.get("quiet_start", ""), values.get("quiet_end", "")
    body["quiet_hours"] = {"start": start, "end": end} if start or end else None

    def run(s):
        before = tenant_settings.settings_json(s.get(CampaignSettings, tenant), tenant, DEFAULT_RATE)
        row = tenant_settings.update(s, tenant, body)
        after = tenant_settings.settings_json(row, tenant, DEFAULT_RATE)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="update",
                     object_type="campaign_settings", object_id=tenant, before=before, after=after)

    if not errors:
        try:
            await console_of(request).run(run)
        except SettingsError as exc:
            reason = str(exc)
            field = next((f for k, f in _RULE_FIELDS.items() if reason.startswith(k)), "form")
            errors[field] = reason
    if errors:
        rules = await console_of(request).run(lambda s: tenant_settings.settings_json(
            s.get(CampaignSettings, tenant), tenant, DEFAULT_RATE))
        return render(request, "campaign_rules.html", status=422, title=_("Sending rules"),
                      rules=rules, values=values, errors=errors)
    console_of(request).forget_zone(tenant)
    raise redirect("/campaigns/rules", _("The sending rules are saved; they apply to the next messages."))


# -- one campaign ------------------------------------------------------------------------------


async def _campaign(request: web.Request) -> dict:
    tenant = tenant_of(request)
    cid = request.match_info["id"]

    def load(s):
        try:
            c = campaigns.get(s, tenant, cid)
        except CampaignError:
            return None
        return {"c": c, "report": campaigns.report(s, tenant, cid),
                "audience": pages.audience_label(s, c), "keywords": pages.keywords_of(s, cid),
                "table_rows": pages.table_rows(s, cid) if c.kind == "inquiry" else 0,
                "results": surveys.results(s, cid) if c.kind == "survey" else None}

    found = await console_of(request).run(load)
    if found is None:
        raise web.HTTPNotFound()
    return found


def _progress(report: dict) -> dict:
    queued = report["queued"]
    done = report["delivered"] + report["failed"]
    return {"pct_done": done / queued if queued else None,
            "pct_delivered": report["delivered"] / queued if queued else 0,
            "pct_failed": report["failed"] / queued if queued else 0}


def _charts(results: dict | None) -> dict[str, object]:
    if not results:
        return {}
    return {q["key"]: svg_bars(list(q["counts"].items())) for q in results["questions"]
            if q["type"] == "choice"}


@routes.get("/campaigns/{id}")
@requires()
async def campaign_page(request: web.Request) -> web.Response:
    d = await _campaign(request)
    return render(request, "campaign.html", title=d["c"].name, steps=pages.allowed_steps(d["c"].status),
                  progress=_progress(d["report"]), charts=_charts(d["results"]), tried=None,
                  errors={}, loaded=None, **d)


@routes.get("/campaigns/{id}/progress")
@requires()
async def campaign_progress(request: web.Request) -> web.Response:
    d = await _campaign(request)
    # The status badge and the steps in the page's header follow along (out-of-band swaps): a
    # campaign that completes while its page is open no longer offers Pause or Cancel.
    return render(request, "campaign_progress.html", c=d["c"], report=d["report"],
                  progress=_progress(d["report"]), steps=pages.allowed_steps(d["c"].status),
                  oob=True)


@routes.get("/campaigns/{id}/results")
@requires()
async def survey_results(request: web.Request) -> web.Response:
    d = await _campaign(request)
    if d["results"] is None:
        raise web.HTTPNotFound()
    return render(request, "survey_results.html", c=d["c"], results=d["results"],
                  charts=_charts(d["results"]))


@routes.get("/campaigns/{id}/results.csv")
@requires()
async def survey_csv(request: web.Request) -> web.StreamResponse:
    """One row per contact, streamed from surveys.export_csv (the export the API serves)."""
    d = await _campaign(request)
    c = d["c"]
    if c.kind != "survey":
        raise web.HTTPNotFound()
    console = console_of(request)
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{c.id}-results.csv"'})
    await resp.prepare(request)
    await resp.write("\ufeff".encode())  # so that spreadsheets read the Chinese in it as UTF-8
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)
    loop = asyncio.get_running_loop()

    def produce() -> None:
        try:
            with console.db.session() as s:
                for piece in surveys.export_csv(s, c.id):
                    asyncio.run_coroutine_threadsafe(queue.put(piece), loop).result()
        finally:
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    task = asyncio.ensure_future(asyncio.to_thread(produce))
    while (piece := await queue.get()) is not None:
        await resp.write(piece.encode("utf-8"))
    await task
    await resp.write_eof()
    return resp


_DONE = {
    "start": "The campaign is started.",
    "pause": "The campaign is paused. Nothing more is sent until you resume it.",
    "resume": "The campaign is sending again.",
    "cancel": "The campaign is cancelled. Messages already sent stay sent.",
}


@routes.post("/campaigns/{id}/actions/{action}")
@requires(write=True)
async def campaign_step(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    cid, action = request.match_info["id"], request.match_info["action"]
    if action not in _DONE:
        raise web.HTTPNotFound()

    def run(s):
        before = campaigns.get(s, tenant, cid).status
        c = campaigns.act(s, tenant, cid, action)
        audit.record(s, tenant_id=tenant, actor=p.actor, action=action, object_type="campaign",
                     object_id=cid, before={"status": before}, after={"status": c.status})

    try:
        await console_of(request).run(run)
    except CampaignError as exc:
        if exc.status == 404:
            raise web.HTTPNotFound() from None
        raise redirect(f"/campaigns/{cid}", _("This step is not possible now: %(reason)s",
                                              reason=exc.reason), "error") from None
    raise redirect(f"/campaigns/{cid}", _(_DONE[action]))


# -- inquiry: the table and "try a query" ------------------------------------------------------


@routes.post("/campaigns/{id}/table")
@requires(write=True)
async def upload_table(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    p = request["principal"]
    cid = request.match_info["id"]
    form = await request.post()
    upload = form.get("table")
    encoding = str(form.get("encoding", "")) or None
    d = await _campaign(request)
    errors: dict[str, str] = {}
    loaded = None
    if not hasattr(upload, "file"):
        errors["table"] = _("Choose a CSV file: the first column is what contacts text, the "
                            "others are the values your reply uses.")
    else:
        f = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)
        size = 0
        while piece := upload.file.read(256 * 1024):
            size += len(piece)
            if size > UPLOAD_MAX:
                break
            f.write(piece)
        f.seek(0)
        if size > UPLOAD_MAX:
            errors["table"] = _("The file is larger than %(mb)s MB.", mb=UPLOAD_MAX // (1024 * 1024))
        else:
            def run(s):
                c = campaigns.get(s, tenant, cid)
                result = inquiry.load_table_upload(s, c, f, encoding)
                audit.record(s, tenant_id=tenant, actor=p.actor, action="upload_table",
                             object_type="campaign", object_id=cid,
                             after={"file": getattr(upload, "filename", ""), "rows": result["rows"],
                                    "loaded": result["loaded"], "rejected": result["rejected"]})
                return result
            try:
                loaded = await console_of(request).run(run)
            except CampaignError as exc:
                errors["table"] = exc.reason
        f.close()
    if loaded is not None:
        d = await _campaign(request)
    return render(request, "campaign.html", status=422 if errors else 200, title=d["c"].name,
                  steps=pages.allowed_steps(d["c"].status), progress=_progress(d["report"]),
                  charts=_charts(d["results"]), tried=None, errors=errors, loaded=loaded, **d)


@routes.post("/campaigns/{id}/try")
@requires()
async def try_query(request: web.Request) -> web.Response:
    """The reply a contact would get, computed as the campaigns processor would; nothing is sent
    and nothing is recorded."""
    form = await request.post()
    text = str(form.get("text", "")).strip()
    msisdn = str(form.get("msisdn", "")).strip() or "+10000000000"
    d = await _campaign(request)
    c = d["c"]
    if c.kind != "inquiry":
        raise web.HTTPNotFound()
    errors: dict[str, str] = {}
    tried = None
    if not text:
        errors["text"] = _("Type a text as a contact would send it, for example %(example)s.",
                           example=f"{(d['keywords'] or ['ORDER'])[0]} 12345")
    elif (c.config or {}).get("source", "table") == "endpoint":
        try:
            call = await console_of(request).run(lambda s: pages.endpoint_call(s, c, text, msisdn))
        except LookupError:
            errors["text"] = _("The endpoint this inquiry uses no longer exists. Add it under "
                               "Content and topics.")
        else:
            async with httpx.AsyncClient() as client:
                answer = await inquiry.ask(client, call)
            fallback = (c.config or {}).get("fallback") or inquiry.FALLBACK
            tried = {"text": text, "reply": answer or fallback, "fallback": answer is None}
    else:
        reply = await console_of(request).run(lambda s: pages.try_table(s, c, text, msisdn))
        tried = {"text": text, "reply": reply, "fallback": False}
    status = 422 if errors else 200
    if request.headers.get("HX-Request"):
        return render(request, "campaign_try.html", status=200, c=c, tried=tried, errors=errors,
                      values={"text": text, "msisdn": form.get("msisdn", "")})
    return render(request, "campaign.html", status=status, title=c.name,
                  steps=pages.allowed_steps(c.status), progress=_progress(d["report"]),
                  charts=_charts(d["results"]), tried=tried, errors=errors, loaded=None, **d)
