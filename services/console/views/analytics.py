"""Verification analytics: queries per day by result, counterfeit hotspots by province (a
table and a ranked chart), and the drill-down to the codes and numbers of one region (numbers
masked for analysts). The domain is services/console/domain/code_analytics.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from babel import Locale
from babel.dates import format_date
from markupsafe import Markup

from services.verifier.domain.replies import mask

from .. import i18n
from ..domain import code_analytics as domain
from ..web import console_of, render, requires, svg_bars, tenant_of

routes = web.RouteTableDef()
PERIODS = (7, 30, 90)
PAGE = 50


def _days(request: web.Request) -> int:
    try:
        d = int(request.query.get("days", "30"))
    except ValueError:
        d = 30
    return d if d in PERIODS else 30


def _labels() -> dict[str, str]:
    return {"first": i18n.gettext("First (genuine)"), "repeat": i18n.gettext("Repeat"),
            "unknown": i18n.gettext("Unknown code"), "mistyped": i18n.gettext("Mistyped"),
            "locked": i18n.gettext("Locked out")}


COLORS = {"first": "#16a34a", "repeat": "#d97706", "unknown": "#dc2626", "mistyped": "#6366f1",
          "locked": "#64748b"}


def ranked_bars(rows: list[tuple[str, int]], color: str = "#dc2626") -> Markup:
    """A horizontal ranked bar chart (inline SVG), longest first."""
    if not rows:
        return Markup("")
    top = max(v for _l, v in rows) or 1
    h, width, label_w = 22, 640, 150
    parts = [f'<svg viewBox="0 0 {width} {len(rows) * h + 4}" class="ranked" role="img" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for i, (label, v) in enumerate(rows):
        y = i * h + 2
        w = (width - label_w - 60) * v / top
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="axis-label">'
                     f'{Markup.escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{h - 7}" rx="3" '
                     f'fill="{color}">'
                     f'<title>{Markup.escape(label)}: {v}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="axis-label">{v}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


async def _figures(request: web.Request) -> dict:
    tenant = tenant_of(request)
    days = _days(request)
    zone = i18n.zone().key
    locale = i18n.current_locale()
    since = datetime.now(UTC) - timedelta(days=days)

    def load(s):
        return domain.per_day(s, tenant, zone, days), domain.hotspots(s, tenant, since, locale)

    per_day, spots = await console_of(request).run(load)
    totals = domain.totals(per_day)
    # Days are the tenant's days already: formatted as they are, not moved to a time zone again.
    day = {d: format_date(d, "MMM d", locale=Locale.parse(locale)) for d, _c in per_day}
    charts = {r: svg_bars([(day[d], c[r]) for d, c in per_day], height=80, color=COLORS[r])
              for r in domain.RESULTS}
    rows = [(format_date(d, "medium", locale=Locale.parse(locale)), c) for d, c in reversed(per_day)
            if sum(c.values())]
    ranked = ranked_bars([(h.region.name(locale), h.total) for h in spots[:15]])
    return {"days": days, "periods": PERIODS, "per_day": rows, "totals": totals, "charts": charts,
            "labels": _labels(), "spots": spots, "ranked": ranked,
            "results": list(domain.RESULTS)}


@routes.get("/brands/analytics")
@requires()
async def analytics_page(request: web.Request) -> web.Response:
    return render(request, "analytics.html", title=i18n.gettext("Verification analytics"),
                  **await _figures(request))


@routes.get("/brands/analytics/figures")
@requires()
async def analytics_figures(request: web.Request) -> web.Response:
    """The live part of the page (htmx refreshes it every few seconds)."""
    return render(request, "analytics_figures.html", **await _figures(request))


@routes.get("/brands/analytics/regions/{key}")
@requires()
async def region_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    p = request["principal"]
    key = request.match_info["key"]
    days = _days(request)
    since = datetime.now(UTC) - timedelta(days=days)
    try:
        before = int(request.query["before"]) if request.query.get("before") else None
    except ValueError:
        before = None
    rows = await console_of(request).run(
        lambda s: domain.involved(s, tenant, since, key, before_id=before, limit=PAGE + 1))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    locale = i18n.current_locale()
    name = rows[0].region.name(locale) if rows else key.removeprefix("CN-")
    show = (lambda n: n) if p.can_write else mask
    return render(request, "analytics_region.html", title=i18n.gettext("Hotspot: %(region)s", region=name),
                  rows=rows, region=name, key=key, days=days, show=show, masked=not p.can_write,
                  labels={"repeat": i18n.gettext("Repeat"), "counterfeit": i18n.gettext("Unknown code")},
                  next_url=f"?days={days}&before={rows[-1].id}" if more and rows else "",
                  first_url=f"?days={days}" if before else "")
