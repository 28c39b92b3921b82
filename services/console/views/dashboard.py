"""The dashboard: today's, 7 and 30 days' figures with charts, and the live campaigns. The
figures block reloads itself every few seconds (htmx) without reloading the page."""

from __future__ import annotations

from aiohttp import web

from .. import i18n
from ..domain import dashboard
from ..web import console_of, render, requires, svg_bars, tenant_of

routes = web.RouteTableDef()


async def _figures(request: web.Request) -> dict:
    tenant = tenant_of(request)
    period = request.query.get("period", "today")
    if period not in dashboard.PERIODS:
        period = "today"
    zone = i18n.zone()

    def load(s):
        since = dashboard.period_start(period, zone)
        t = dashboard.totals(s, tenant, since)
        daily = period != "today"
        points = dashboard.series(s, tenant, since, zone, daily=daily)
        campaigns = dashboard.live_campaigns(s, tenant)
        return t, points, campaigns, dashboard.top_keywords(s, tenant, since)

    t, points, campaigns, keywords = await console_of(request).run(load)
    return {
        "period": period, "totals": t, "campaigns": campaigns, "keywords": keywords,
        "chart_sent": svg_bars([(label, sent) for label, sent, _ in points]),
        "chart_delivered": svg_bars([(label, d) for label, _, d in points], color="#16a34a"),
    }


@routes.get("/")
@requires()
async def dashboard_page(request: web.Request) -> web.Response:
    return render(request, "dashboard.html", title=i18n.gettext("Dashboard"), **await _figures(request))


@routes.get("/dashboard/figures")
@requires()
async def dashboard_figures(request: web.Request) -> web.Response:
    return render(request, "_dashboard_figures.html", **await _figures(request))
