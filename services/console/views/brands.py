"""Brands and products of the anti-counterfeit scheme, with each brand's reply texts (genuine,
repeat with the masked first checker, unknown, mistyped, locked out) edited beside a live
preview. The domain is services/console/domain/brands.py over the verifier's admin functions."""

from __future__ import annotations

from aiohttp import web

from .. import i18n
from ..domain import audit
from ..domain import brands as domain
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
RESERVED = ("codes", "analytics", "new")  # paths under /brands/ that are not brands


def _err(exc: domain.BrandError) -> dict[str, str]:
    return {exc.field: exc.translated(i18n.gettext)}


def _shown(pv: domain.Preview) -> dict:
    return {"text": pv.text, "custom": pv.custom,
            "problem": pv.problem.translated(i18n.gettext) if pv.problem else None}


async def _list(request: web.Request, status: int = 200, errors=None, form=None) -> web.Response:
    tenant = tenant_of(request)
    rows = await console_of(request).run(lambda s: domain.brands(s, tenant))
    return render(request, "brands.html", status=status, title=i18n.gettext("Brands"), rows=rows,
                  errors=errors or {}, form=form or {}, languages=domain.LANGUAGES)


@routes.get("/brands")
@requires()
async def brands_page(request: web.Request) -> web.Response:
    return await _list(request)


@routes.post("/brands")
@requires(write=True)
async def create_brand(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    f = {k: str(form.get(k, "")).strip() for k in ("slug", "name", "name_zh", "language", "timezone")}
    f["language"] = f["language"] or "auto"
    f["timezone"] = f["timezone"] or "Asia/Shanghai"

    def run(s):
        if f["slug"].lower() in RESERVED:
            raise domain.BrandError("slug", "%(slug)s is a word the console uses; choose another short name.",
                                    slug=f["slug"])
        b = domain.create_brand(s, tenant, slug=f["slug"], name=f["name"], name_zh=f["name_zh"] or None,
                                language=f["language"], timezone=f["timezone"])
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="brand",
                     object_id=b.slug, after=domain.brand_view(b))
        return b.slug

    try:
        slug = await console_of(request).run(run)
    except domain.BrandError as exc:
        return await _list(request, 422, _err(exc), f)
    raise redirect(f"/brands/{slug}", i18n.gettext("Brand created. Add its products next."))


async def _brand(request: web.Request, status: int = 200, errors=None, form=None) -> web.Response:
    tenant = tenant_of(request)
    slug = request.match_info["slug"]

    def load(s):
        b = domain.get_brand(s, tenant, slug)
        if b is None:
            return None
        return b, domain.products(s, tenant, b.id)

    found = await console_of(request).run(load)
    if found is None:
        raise web.HTTPNotFound()
    b, products = found
    return render(request, "brand.html", status=status, title=b.name, brand=b, products=products,
                  errors=errors or {}, form=form or {})


@routes.get("/brands/{slug}")
@requires()
async def brand_page(request: web.Request) -> web.Response:
    return await _brand(request)


@routes.post("/brands/{slug}/products")
@requires(write=True)
async def create_product(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    slug = request.match_info["slug"]
    form = await request.post()
    f = {k: str(form.get(k, "")).strip() for k in ("slug", "name", "name_zh", "points")}

    def run(s):
        if domain.get_brand(s, tenant, slug) is None:
            return None
        prod = domain.create_product(s, tenant, slug, slug=f["slug"], name=f["name"],
                                     name_zh=f["name_zh"] or None, points=f["points"] or 0)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="product",
                     object_id=prod.slug, after={"brand": slug, **domain.product_view(prod)})
        return prod.slug

    try:
        made = await console_of(request).run(run)
    except domain.BrandError as exc:
        return await _brand(request, 422, _err(exc), f)
    if made is None:
        raise web.HTTPNotFound()
    raise redirect(f"/brands/{slug}", i18n.gettext("Product %(name)s added. Generate its codes under "
                                                   "Code batches.", name=f["name"]))


# -- reply texts -------------------------------------------------------------------------------


def _kinds() -> list[tuple[str, str, str]]:
    """(kind, label, what it answers) in the order of the editor."""
    return [
        ("genuine", i18n.gettext("Genuine"), i18n.gettext("The first check of a valid code.")),
        ("repeat", i18n.gettext("Repeat"), i18n.gettext("A valid code checked again; names the masked "
                                                        "number that checked it first.")),
        ("counterfeit", i18n.gettext("Unknown code"), i18n.gettext("A well-formed code that is not one of "
                                                                   "yours: possibly counterfeit.")),
        ("mistyped", i18n.gettext("Mistyped"), i18n.gettext("A code whose check symbol does not agree: "
                                                            "probably a typo.")),
        ("locked", i18n.gettext("Locked out"), i18n.gettext("Too many invalid codes from one number.")),
    ]


async def _replies(request: web.Request, status: int = 200, errors=None, texts=None,
                   lang: str | None = None) -> web.Response:
    tenant = tenant_of(request)
    slug = request.match_info["slug"]
    lang = lang or request.query.get("lang", "zh" if i18n.current_locale() == "zh_Hans" else "en")
    lang = lang if lang in domain.REPLY_LANGS else "en"

    def load(s):
        b = domain.get_brand(s, tenant, slug)
        if b is None:
            return None
        t = texts or domain.reply_texts(b)
        previews = {kind: _shown(domain.preview(s, b, lang, kind, t[lang][kind]))
                    for kind in domain.REPLY_KINDS}
        return b, t, previews

    found = await console_of(request).run(load)
    if found is None:
        raise web.HTTPNotFound()
    b, t, previews = found
    return render(request, "brand_replies.html", status=status, title=i18n.gettext("Reply texts"),
                  brand=b, texts=t, lang=lang, previews=previews, kinds=_kinds(),
                  placeholders=domain.REPLY_KINDS, errors=errors or {})


@routes.get("/brands/{slug}/replies")
@requires()
async def replies_page(request: web.Request) -> web.Response:
    return await _replies(request)


@routes.post("/brands/{slug}/replies")
@requires(write=True)
async def save_replies(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    slug = request.match_info["slug"]
    form = await request.post()
    lang = str(form.get("lang", "en"))
    lang = lang if lang in domain.REPLY_LANGS else "en"

    def run(s):
        b = domain.get_brand(s, tenant, slug)
        if b is None:
            return None
        texts = domain.reply_texts(b)
        texts[lang] = {kind: str(form.get(kind, "")) for kind in domain.REPLY_KINDS}
        try:
            before = domain.set_reply_texts(s, b, texts)
        except domain.BrandError as exc:
            return exc, texts
        audit.record(s, tenant_id=tenant, actor=p.actor, action="update_replies", object_type="brand",
                     object_id=b.slug, before={"templates": before}, after={"templates": b.templates})
        return True

    done = await console_of(request).run(run)
    if done is None:
        raise web.HTTPNotFound()
    if done is not True:
        exc, texts = done
        field = exc.field.split("-", 1)[1]
        return await _replies(request, 422, {field: exc.translated(i18n.gettext)}, texts, lang)
    raise redirect(f"/brands/{slug}/replies?lang={lang}",
                   i18n.gettext("Reply texts saved. The verifier uses them within 30 seconds."))


@routes.post("/brands/{slug}/replies/preview")
@requires()
async def preview(request: web.Request) -> web.Response:
    """The live preview of one reply as it is typed (htmx)."""
    tenant = tenant_of(request)
    slug = request.match_info["slug"]
    form = await request.post()
    lang, kind = str(form.get("lang", "en")), str(form.get("kind", ""))
    if lang not in domain.REPLY_LANGS or kind not in domain.REPLY_KINDS:
        raise web.HTTPBadRequest(text=i18n.gettext("Unknown reply."))

    def load(s):
        b = domain.get_brand(s, tenant, slug)
        return None if b is None else _shown(domain.preview(s, b, lang, kind, str(form.get(kind, ""))))

    pv = await console_of(request).run(load)
    if pv is None:
        raise web.HTTPNotFound()
    return render(request, "brand_reply_preview.html", pv=pv)
