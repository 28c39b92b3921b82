"""Code batches: generate N codes for a product (a background job whose progress the page
polls), download the printable file once (owners; audited), revoke a batch, and each batch's
statistics. The domain is services/console/domain/code_jobs.py, which the ``herald batches``
command uses too."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from aiohttp import web

from .. import i18n
from ..domain import brands as brand_domain
from ..domain import code_jobs
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
PAGE = 50


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


async def _list(request: web.Request, status: int = 200, errors=None, form=None) -> web.Response:
    tenant = tenant_of(request)
    product = _int(request.query.get("product"))
    before = _int(request.query.get("before"))

    def load(s):
        rows = code_jobs.batches(s, tenant, product_id=product, before_id=before, limit=PAGE + 1)
        return rows, brand_domain.products(s, tenant)

    rows, products = await console_of(request).run(load)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    base = {"product": product} if product else {}
    return render(request, "codes.html", status=status, title=i18n.gettext("Code batches"), rows=rows,
                  products=products, product=product, errors=errors or {}, form=form or {},
                  max_codes=code_jobs.MAX_CODES, zip_over=code_jobs.ZIP_OVER,
                  next_url="?" + urlencode({**base, "before": rows[-1].batch.id}) if more and rows else "",
                  first_url="?" + urlencode(base) if before else "")


@routes.get("/brands/codes")
@requires()
async def codes_page(request: web.Request) -> web.Response:
    return await _list(request)


@routes.post("/brands/codes")
@requires(write=True)
async def generate(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    console = console_of(request)
    form = await request.post()
    f = {k: str(form.get(k, "")).strip() for k in ("product", "count", "note")}
    try:
        batch_id = await asyncio.to_thread(
            code_jobs.start, console.db, console.settings.secret_key, tenant_id=tenant, actor=p.actor,
            product=f["product"], count=f["count"], note=f["note"])
    except code_jobs.CodeJobError as exc:
        return await _list(request, 422, {exc.field: exc.translated(i18n.gettext)}, f)
    raise redirect(f"/brands/codes/{batch_id}",
                   i18n.gettext("Generating the codes. You can leave this page; the batch keeps going."))


async def _batch(request: web.Request, template: str, status: int = 200, error: str = "") -> web.Response:
    tenant = tenant_of(request)
    console = console_of(request)
    batch_id = _int(request.match_info["id"])
    if batch_id is None:
        raise web.HTTPNotFound()

    def load(s):
        row = code_jobs.get(s, tenant, batch_id)
        if row is None:
            return None
        return row, code_jobs.stats(s, row)

    found = await console.run(load)
    if found is None:
        raise web.HTTPNotFound()
    row, stats = found
    if row.interrupted:
        await asyncio.to_thread(code_jobs.settle_interrupted, console.db, batch_id)
        row, stats = await console.run(load)
    return render(request, template, status=status, title=i18n.gettext("Batch %(id)s", id=batch_id),
                  row=row, stats=stats, error=error)


@routes.get("/brands/codes/{id}")
@requires()
async def batch_page(request: web.Request) -> web.Response:
    return await _batch(request, "code_batch.html")


@routes.get("/brands/codes/{id}/progress")
@requires()
async def batch_progress(request: web.Request) -> web.Response:
    """The live part of the batch page (htmx polls it while the batch is generated)."""
    return await _batch(request, "code_progress.html")


@routes.post("/brands/codes/{id}/download")
@requires(owner=True)
async def download(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    console = console_of(request)
    batch_id = _int(request.match_info["id"])
    if batch_id is None:
        raise web.HTTPNotFound()
    try:
        f = await console.run(lambda s: code_jobs.download(s, console.settings.secret_key, tenant,
                                                          batch_id, p.actor))
    except LookupError:
        raise web.HTTPNotFound() from None
    except code_jobs.CodeJobError as exc:
        return await _batch(request, "code_batch.html", status=410, error=exc.translated(i18n.gettext))
    resp = web.StreamResponse(headers={
        "Content-Type": f.content_type, "Content-Length": str(f.size),
        "Content-Disposition": f'attachment; filename="{f.filename}"', "Cache-Control": "no-store"})
    await resp.prepare(request)
    try:
        while chunk := await asyncio.to_thread(f.file.read, 1 << 20):
            await resp.write(chunk)
    finally:
        f.file.close()
    await resp.write_eof()
    return resp


@routes.post("/brands/codes/{id}/revoke")
@requires(owner=True)
async def revoke(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    batch_id = _int(request.match_info["id"])
    if batch_id is None:
        raise web.HTTPNotFound()
    try:
        changed = await console_of(request).run(lambda s: code_jobs.revoke(s, tenant, batch_id, p.actor))
    except LookupError:
        raise web.HTTPNotFound() from None
    except code_jobs.CodeJobError as exc:
        return await _batch(request, "code_batch.html", status=409, error=exc.translated(i18n.gettext))
    raise redirect(f"/brands/codes/{batch_id}",
                   i18n.gettext("The batch is revoked: its codes now get the \"not one of ours\" reply.")
                   if changed else i18n.gettext("The batch was already revoked."))
