"""Keywords and numbers: the tenant's sender numbers (owners claim a number no other tenant
holds, or give one up), its routing rules (keyword or pattern -> reply, codes, campaigns, points
or inbox; search, sort, create, edit, delete) and what the router answers by itself (HELP,
STOP and START texts, and what a text no rule matches gets). Every change goes through
services/core/tenancy.py, the code the CLI and the router's tests use, and is audited; a rule
the router could never reach is refused on the field at fault, naming the rule in its way."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select

from services.core import tenancy
from services.core.db.models import SenderNumber, Tenant

from .. import i18n
from ..domain import audit
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
_ = i18n.gettext
PAGE = 50
SORTS = ("priority", "keyword", "action", "number")
ACTIONS = ("reply", "inbox", "campaigns", "codes", "points")
RULE_FIELDS = ("keyword", "pattern", "action", "number", "priority", "reply_text")
REPLY_FIELDS = ("help_text", "stop_reply", "start_reply")


def action_labels() -> dict[str, str]:
    return {"reply": _("Reply with a text"), "inbox": _("Put in the inbox"),
            "campaigns": _("Hand to campaigns (surveys, inquiries, subscriptions)"),
            "codes": _("Check an anti-counterfeit code"), "points": _("Points and gifts")}


def unmatched_labels() -> dict[str, str]:
    return {"auto": _("Automatic: the inbox when a webhook takes inbound texts, else the help text"),
            "reply": _("Reply with the help text"),
            "inbox": _("Put it in the inbox (no reply)")}


def describe_rule(r: dict) -> str:
    what = (_("keyword %(word)s", word=r["keyword"]) if r["keyword"]
            else _("pattern /%(pattern)s/", pattern=r["pattern"]))
    number = _("every number") if r["number"] == "*" else r["number"]
    return _("rule #%(id)s (%(what)s → %(action)s, %(number)s, priority %(priority)s)",
             id=r["id"], what=what, action=_(r["action"]), number=number, priority=r["priority"])


def rule_error(exc: tenancy.RuleError) -> dict[str, str]:
    """The refusal in the user's language, on the field at fault."""
    p = exc.params
    word, number = p.get("word", ""), p.get("number", "")
    other = describe_rule(p["other"]) if "other" in p else ""
    compliance = {"opt_out": _("%(word)s is an opt-out word: the platform answers it itself on "
                               "every number, so a rule on it would never be reached.", word=word),
                  "opt_in": _("%(word)s is an opt-in word: the platform answers it itself on "
                              "every number, so a rule on it would never be reached.", word=word),
                  "help": _("%(word)s is a help word: the platform answers it with your help "
                            "text on every number, so a rule on it would never be reached.",
                            word=word)}
    messages = {
        "action": _("Choose what the rule does."),
        "reply_text": _("A reply rule needs the text to reply with."),
        "both": _("Fill in a keyword or a pattern, not both."),
        "neither": _("Fill in a keyword (the first word of the text) or a pattern."),
        "one_word": _("A keyword is one word: the router looks at the first word of a text."),
        "too_long": _("A keyword is at most 64 characters and a pattern at most 200."),
        "regex": _("This is not a valid pattern (%(reason)s).", reason=p.get("reason", "")),
        "number": _("Choose one of your numbers, or every number."),
        "compliance": compliance.get(str(p.get("kind")), ""),
        "campaign": _("%(word)s is the keyword of campaign %(name)s; a rule on it would hide that "
                      "campaign. Hand it to campaigns, or choose another word.", word=word,
                      name=p.get("campaign_name", "")),
        "shared": _("%(word)s is already another account's keyword on the shared number "
                    "%(number)s; choose another word.", word=word, number=number),
        "duplicate": _("%(rule)s already matches the same texts; edit that rule instead.",
                       rule=other),
        "empty": _("This pattern can match no text: texts are matched in capitals, so write "
                   "[A-Z], not [a-z]."),
        "shadowed": _("%(rule)s matches every text this pattern matches and is tried first, so "
                      "this rule would never be reached. Give this rule a lower priority number.",
                      rule=other),
        "shadows": _("This pattern matches every text %(rule)s matches and would be tried first, "
                     "hiding it. Give this rule a higher priority number.", rule=other),
        "empty_reply": _("This text cannot be empty: the platform must confirm it."),
        "reply_long": _("At most 1,000 characters."),
    }
    return {exc.field: messages.get(exc.code) or str(exc)}


def number_error(exc: tenancy.NumberRefused) -> str:
    n = exc.params.get("number", "")
    return {
        "format": _("A sender number is 3 to 15 digits, with + in front for an international "
                    "number, such as 10690001 or +8613812345678."),
        "yours": _("%(number)s is already one of your numbers.", number=n),
        "taken": _("%(number)s belongs to another account. Ask the platform operator if it "
                   "should be yours.", number=n),
        "rules": _("Routing rules use %(number)s; change or delete them first.", number=n),
        "default": _("%(number)s is your default sender number; it cannot be removed.", number=n),
    }.get(exc.code, str(exc))


def _query(request: web.Request) -> dict[str, str]:
    q = request.query
    sort = q.get("sort", "priority")
    return {"q": q.get("q", "").strip()[:100], "sort": sort if sort in SORTS else "priority",
            "dir": "desc" if q.get("dir") == "desc" else "asc"}


def _page_no(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return max(1, int(raw)) if raw.isdigit() else 1


async def _page(request: web.Request, *, status: int = 200, errors: dict | None = None,
                form: dict | None = None) -> web.Response:
    tenant = tenant_of(request)
    base = _query(request)
    page = _page_no(request)

    def load(s):
        rows = tenancy.list_keywords(s, tenant, q=base["q"], sort=base["sort"],
                                     descending=base["dir"] == "desc",
                                     offset=(page - 1) * PAGE, limit=PAGE + 1)
        numbers = list(s.scalars(select(SenderNumber).where(SenderNumber.tenant_id == tenant)
                                 .order_by(SenderNumber.number)))
        t = s.get(Tenant, tenant)
        settings = {"unmatched": t.unmatched, "default_sender": t.default_sender,
                    **{f: getattr(t, f) or "" for f in REPLY_FIELDS}}
        return [tenancy.rule_view(r) for r in rows], [(n.number, n.shared) for n in numbers], settings

    rows, numbers, settings = await console_of(request).run(load)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    filters = {k: v for k, v in base.items() if v}
    return render(request, "keywords.html", status=status, title=_("Keywords and numbers"),
                  rows=rows, numbers=numbers, settings=settings, base=base, errors=errors or {},
                  form=form or {}, actions=action_labels(), unmatched=unmatched_labels(),
                  next_url="?" + urlencode({**filters, "page": page + 1}) if more else "",
                  first_url="?" + urlencode(filters) if page > 1 else "")


@routes.get("/keywords")
@requires()
async def keywords_page(request: web.Request) -> web.Response:
    return await _page(request)


# -- numbers -----------------------------------------------------------------------------------


@routes.post("/keywords/numbers")
@requires(owner=True)
async def add_number(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    raw = str((await request.post()).get("number", "")).strip()

    def run(s):
        row = tenancy.claim_number(s, tenant, raw)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create",
                     object_type="sender_number", object_id=row.number,
                     after={"number": row.number, "shared": row.shared})
        return row.number

    try:
        number = await console_of(request).run(run)
    except tenancy.NumberRefused as exc:
        return await _page(request, status=422, errors={"number": number_error(exc)},
                           form={"number": raw})
    raise redirect("/keywords", _("%(number)s is now one of your numbers.", number=number))


@routes.post("/keywords/numbers/remove")
@requires(owner=True)
async def remove_number(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    number = str((await request.post()).get("number", "")).strip()

    def run(s):
        row = tenancy.release_number(s, tenant, number)
        if row is not None:
            audit.record(s, tenant_id=tenant, actor=p.actor, action="delete",
                         object_type="sender_number", object_id=number,
                         before={"number": number, "shared": row.shared})
        return row

    try:
        row = await console_of(request).run(run)
    except tenancy.NumberRefused as exc:
        raise redirect("/keywords", number_error(exc), "error") from None
    if row is None:
        raise web.HTTPNotFound()
    raise redirect("/keywords", _("%(number)s is no longer one of your numbers.", number=number))


# -- what the router answers by itself ---------------------------------------------------------


@routes.post("/keywords/settings")
@requires(owner=True)
async def save_settings(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    values = {f: str(form.get(f, "")) for f in (*REPLY_FIELDS, "unmatched")}
    if values["unmatched"] not in tenancy.UNMATCHED:
        return await _page(request, status=422, form=values,
                           errors={"unmatched": _("Choose what a text no rule matches gets.")})

    def run(s):
        t = s.get(Tenant, tenant)
        before = {"unmatched": t.unmatched, **{f: getattr(t, f) for f in REPLY_FIELDS}}
        tenancy.set_replies(s, tenant, help_text=values["help_text"],
                            stop_reply=values["stop_reply"], start_reply=values["start_reply"])
        tenancy.set_unmatched(s, tenant, values["unmatched"])
        after = {"unmatched": t.unmatched, **{f: getattr(t, f) for f in REPLY_FIELDS}}
        if after != before:
            audit.record(s, tenant_id=tenant, actor=p.actor, action="update",
                         object_type="tenant_replies", object_id=tenant,
                         before={k: v for k, v in before.items() if after[k] != v},
                         after={k: v for k, v in after.items() if before[k] != v})

    try:
        await console_of(request).run(run)
    except tenancy.RuleError as exc:
        return await _page(request, status=422, errors=rule_error(exc), form=values)
    raise redirect("/keywords", _("The automatic replies are saved."))


# -- rules -------------------------------------------------------------------------------------


def _rule_form(form) -> tuple[dict[str, str], dict[str, str], int | None]:
    values = {f: str(form.get(f, "")).strip() for f in RULE_FIELDS}
    values["number"] = values["number"] or "*"
    errors: dict[str, str] = {}
    priority = None
    raw = values["priority"] or "100"
    if raw.lstrip("-").isdigit() and 0 <= int(raw) <= 10000:
        priority = int(raw)
    else:
        errors["priority"] = _("The priority is a whole number from 0 to 10,000; lower is tried "
                               "first.")
    return values, errors, priority


async def _numbers(request: web.Request, tenant: str) -> list[str]:
    return await console_of(request).run(lambda s: list(s.scalars(
        select(SenderNumber.number).where(SenderNumber.tenant_id == tenant)
        .order_by(SenderNumber.number))))


async def _rule_page(request: web.Request, *, rule_id: int | None, values: dict,
                     errors: dict | None = None, status: int = 200) -> web.Response:
    tenant = tenant_of(request)
    title = _("New rule") if rule_id is None else _("Rule #%(id)s", id=rule_id)
    return render(request, "keywords_rule.html", status=status, title=title, rule_id=rule_id,
                  values=values, errors=errors or {}, actions=action_labels(),
                  numbers=await _numbers(request, tenant))


def _rule_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    return int(raw)


@routes.get("/keywords/rules/new")
@requires(write=True)
async def new_rule(request: web.Request) -> web.Response:
    values = {f: "" for f in RULE_FIELDS} | {"action": "reply", "number": "*", "priority": "100"}
    return await _rule_page(request, rule_id=None, values=values)


@routes.post("/keywords/rules")
@requires(write=True)
async def create_rule(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    values, errors, priority = _rule_form(await request.post())
    if errors:
        return await _rule_page(request, rule_id=None, values=values, errors=errors, status=422)

    def run(s):
        k = tenancy.add_keyword(s, tenant, values["keyword"], values["action"],
                                number=values["number"], reply_text=values["reply_text"] or None,
                                pattern=values["pattern"] or None, priority=priority or 0)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="keyword",
                     object_id=str(k.id), after=tenancy.rule_view(k))
        return tenancy.rule_view(k)

    try:
        rule = await console_of(request).run(run)
    except tenancy.RuleError as exc:
        return await _rule_page(request, rule_id=None, values=values, errors=rule_error(exc),
                                status=422)
    raise redirect("/keywords", _("%(rule)s is saved.", rule=describe_rule(rule)))


@routes.get("/keywords/rules/{id}")
@requires()
async def rule_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    rule_id = _rule_id(request)
    found = await console_of(request).run(
        lambda s: (lambda k: tenancy.rule_view(k) if k else None)(
            tenancy.get_keyword(s, tenant, rule_id)))
    if found is None:
        raise web.HTTPNotFound()
    values = {f: "" if found[f] is None else str(found[f]) for f in RULE_FIELDS}
    return await _rule_page(request, rule_id=rule_id, values=values)


@routes.post("/keywords/rules/{id}")
@requires(write=True)
async def update_rule(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    rule_id = _rule_id(request)
    values, errors, priority = _rule_form(await request.post())

    def run(s):
        k = tenancy.get_keyword(s, tenant, rule_id)
        if k is None:
            return None
        before = tenancy.rule_view(k)
        if errors:  # the rule exists; the form is what is wrong
            return before
        tenancy.update_keyword(s, tenant, rule_id, values["keyword"], values["action"],
                               number=values["number"], reply_text=values["reply_text"] or None,
                               pattern=values["pattern"] or None, priority=priority or 0)
        after = tenancy.rule_view(k)
        if after != before:
            audit.record(s, tenant_id=tenant, actor=p.actor, action="update",
                         object_type="keyword", object_id=str(rule_id), before=before,
                         after=after)
        return after

    try:
        rule = await console_of(request).run(run)
    except tenancy.RuleError as exc:
        return await _rule_page(request, rule_id=rule_id, values=values, errors=rule_error(exc),
                                status=422)
    if rule is None:
        raise web.HTTPNotFound()
    if errors:
        return await _rule_page(request, rule_id=rule_id, values=values, errors=errors, status=422)
    raise redirect("/keywords", _("%(rule)s is saved.", rule=describe_rule(rule)))


@routes.post("/keywords/rules/{id}/delete")
@requires(write=True)
async def delete_rule(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    rule_id = _rule_id(request)

    def run(s):
        k = tenancy.get_keyword(s, tenant, rule_id)
        if k is None:
            return None
        before = tenancy.rule_view(k)
        tenancy.delete_keyword(s, tenant, rule_id)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="delete", object_type="keyword",
                     object_id=str(rule_id), before=before)
        return before

    rule = await console_of(request).run(run)
    if rule is None:
        raise web.HTTPNotFound()
    raise redirect("/keywords", _("%(rule)s is deleted.", rule=describe_rule(rule)))
