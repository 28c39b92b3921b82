"""Verification analytics: queries per day by result, hotspots by province from the numbers'
carrier data, and the drill-down to the codes and numbers (masked for analysts)."""

from __future__ import annotations

import re
import subprocess
import sys

from services.console.domain import code_analytics, code_jobs
from tests.support.infra import ROOT

from .brand_fixtures import SECRET, brand_with_product, verify

JIANGSU = "+8613812345678"  # Lianyungang, Jiangsu; China Mobile
BEIJING = "+8618612345678"  # Beijing; China Unicom
YUNNAN = "+8615012345678"  # Zhaotong, Yunnan


def _codes(db, n=5):
    batch_id = code_jobs.create(db, tenant_id="acme", actor="t", product="gold-20", count=n)
    code_jobs.execute(db, SECRET, batch_id)
    with db.session() as s:
        return batch_id, code_jobs.codes_in_file(code_jobs.download(s, SECRET, "acme", batch_id, "t").file.read())


def _scenario(db):
    brand_with_product(db)
    batch_id, codes = _codes(db)
    assert verify(db, "acme", codes[0], JIANGSU) == "genuine"
    assert verify(db, "acme", codes[0], BEIJING) == "repeat"
    assert verify(db, "acme", codes[0], BEIJING) == "repeat"
    mistyped = codes[1][:-1] + ("2" if codes[1][-1] != "2" else "3")
    assert verify(db, "acme", mistyped, YUNNAN) == "mistyped"
    fake = "23456789ABCD"
    fake = fake[:-1] + next(c for c in "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
                            if code_analytics_fits(fake[:-1] + c))
    assert verify(db, "acme", fake, YUNNAN) == "counterfeit"
    return batch_id, codes


def code_analytics_fits(code: str) -> bool:
    from services.verifier.domain.codes import CodeFormat
    return CodeFormat().fits(code)


def test_numbers_resolve_to_their_province_and_carrier():
    r = code_analytics.region_of(JIANGSU)
    assert (r.key, r.name("en"), r.name("zh_Hans"), r.carrier("en"), r.carrier("zh_Hans")) == (
        "CN-Jiangsu", "Jiangsu", "江苏省", "China Mobile", "中国移动")
    assert code_analytics.region_of(BEIJING).name("zh_Hans") == "北京市"
    assert code_analytics.region_of("+14155550100").key == "US"
    assert code_analytics.region_of("+999").key == "unknown"


def test_the_page_counts_each_result_and_ranks_the_provinces_of_suspicious_queries(browser, console_db):
    _scenario(console_db)
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/brands/analytics")
    assert resp.status == 200
    stats = dict(zip(re.findall(r'class="stat-label">([^<]+)<', body),
                     re.findall(r'class="stat-value">([^<]+)<', body), strict=True))
    assert stats == {"First (genuine)": "1", "Repeat": "2", "Unknown code": "1", "Mistyped": "1",
                     "Locked out": "0"}
    table = body[body.index('id="hotspots"'):]
    rows = re.findall(r'<tr><td><a href="/brands/analytics/regions/([^?"]+)\?days=30">([^<]+)</a></td>', table)
    assert rows == [("CN-Beijing", "Beijing"), ("CN-Yunnan", "Yunnan")]  # Jiangsu's query was genuine
    assert "China Unicom" in table and 'class="ranked"' in body
    assert 'hx-trigger="every 5s"' in body
    resp, body = browser.get("/brands/analytics/figures?days=7")
    assert resp.status == 200 and "CN-Beijing" in body and "<html" not in body


def test_the_chinese_page_names_provinces_in_chinese(browser, console_db):
    _scenario(console_db)
    browser.sign_in("owner@acme.example")
    browser.post("/profile/language", {"locale": "zh_Hans", "next": "/brands/analytics"})
    _, body = browser.get("/brands/analytics")
    assert "北京市" in body and "云南省" in body and "中国联通" in body


def test_the_drill_down_lists_codes_and_numbers_in_full_for_an_owner(browser, console_db):
    batch_id, _codes = _scenario(console_db)
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/brands/analytics/regions/CN-Beijing")
    assert resp.status == 200 and body.count(BEIJING) == 2
    assert f"batch {batch_id}" in body and "Gold-20s" in body
    _, body = browser.get("/brands/analytics/regions/CN-Yunnan")
    assert YUNNAN in body and re.search(r"<code [^>]*>#[0-9a-f]{8}</code>", body)  # the unknown code


def test_an_analyst_sees_the_numbers_masked(browser_factory, console_db):
    _scenario(console_db)
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    resp, body = analyst.get("/brands/analytics/regions/CN-Beijing")
    assert resp.status == 200 and BEIJING not in body and "186****5678" in body
    assert "masked for your role" in body


def test_another_tenant_sees_none_of_acmes_queries(browser_factory, console_db):
    _scenario(console_db)
    other = browser_factory()
    other.sign_in("owner@other.example")
    _, body = other.get("/brands/analytics")
    assert "CN-Beijing" not in body and "No verification yet" in body
    resp, body = other.get("/brands/analytics/regions/CN-Beijing")
    assert resp.status == 200 and BEIJING not in body and "Nothing from this region" in body


def test_a_platform_operator_gets_404(browser):
    browser.sign_in("ops@herald.example")
    assert browser.get("/brands/analytics")[0].status == 404


def test_the_console_looks_regions_up_without_keeping_the_geocoders_data_in_memory():
    # In a fresh interpreter: the test process itself may have imported the geocoder already.

    script = f"""
import sys
import services.console.app
from services.console.domain import code_analytics
regions = code_analytics.regions_of([{JIANGSU!r}, {BEIJING!r}, "+14155550100", {JIANGSU!r}])
assert [r.key for r in regions.values()] == ["CN-Jiangsu", "CN-Beijing", "US"], regions
assert regions[{BEIJING!r}].name("zh_Hans") == "北京市"
assert code_analytics.regions_of([{JIANGSU!r}]) == {{{JIANGSU!r}: regions[{JIANGSU!r}]}}  # kept
print(sorted(m for m in sys.modules if m.startswith(("phonenumbers.geo", "phonenumbers.carrier"))))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"  # neither the geocoder nor the carrier data were imported
