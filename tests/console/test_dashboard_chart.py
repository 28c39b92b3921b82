"""The bar charts' axis labels (web.svg_bars): a bar and a title per value, and only as many
labels as fit apart at the narrowest chart, round hours for the hourly chart, in any script.
That they do not overlap on screen is measured in tests/browser/test_sign_in_and_dashboard.py."""

import re

from services.console.web import CHART_MIN_PX, label_px, label_step, svg_bars

HOURS = [f"{h:02d}:00" for h in range(24)]


def _labels(chart: str) -> list[str]:
    return re.findall(r'<span class="axis"[^>]*>([^<]*)</span>', chart)


def test_a_day_of_hours_keeps_a_bar_and_title_per_hour_and_labels_every_sixth_hour():
    chart = str(svg_bars([(h, i) for i, h in enumerate(HOURS)]))
    assert chart.count("<rect") == 24 and chart.count("<title>") == 24
    assert "<title>23:00: 23</title>" in chart
    assert _labels(chart) == ["00:00", "06:00", "12:00", "18:00"]


def test_the_labels_shown_fit_side_by_side_at_the_narrowest_chart():
    for labels in (HOURS, HOURS[:14], [f"12-{d:02d}" for d in range(1, 32)],
                   [f"12月{d}日" for d in range(1, 31)], ["Good", "Bad"]):
        step = label_step(labels)
        room = CHART_MIN_PX * step / len(labels)  # the width between two labels shown
        assert max(label_px(x) for x in labels) < room, (labels[0], step)


def test_chinese_labels_count_as_wider_and_get_fewer_places():
    assert label_px("12月1日") > label_px("12-01")
    assert label_step([f"12月{d}日" for d in range(1, 31)]) > label_step([f"12-{d:02d}" for d in range(1, 31)])


def test_each_label_sits_under_its_bar_and_is_no_wider_than_its_share():
    chart = str(svg_bars([(h, 1) for h in HOURS]))
    first = re.search(r'<span class="axis" style="left: ([\d.]+)%; max-width: ([\d.]+)%">00:00<', chart)
    assert first and float(first[1]) == round(0.5 * 100 / 24, 3) and float(first[2]) == 25.0


def test_labels_are_escaped_and_an_empty_series_draws_nothing():
    chart = str(svg_bars([("<b>x</b>", 1)]))
    assert "<b>" not in chart and "&lt;b&gt;x&lt;/b&gt;" in chart
    assert str(svg_bars([])) == ""
