"""The audit log page: every change made in this account, newest first."""

from __future__ import annotations

from aiohttp import web

from .. import i18n
from ..domain import audit
from ..web import console_of, render

routes = web.RouteTableDef()
PAGE = 50


async def _page(request: web.Request) -> web.Response:
    p = request["principal"]
    try:
        before = int(request.query["before"]) if request.query.get("before") else None
    except ValueError:
        before = None
    rows = await console_of(request).run(
        lambda s: audit.entries(s, p.tenant_id, before_id=before, limit=PAGE + 1))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render(request, "audit.html", title=i18n.gettext("Audit log"), rows=rows,
                  next_before=rows[-1].id if more and rows else None)


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    p = request.get("principal")
    if p is None:
        raise web.HTTPFound("/login?next=/audit")
    return await _page(request)
