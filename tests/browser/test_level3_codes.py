"""The brand manager's journey: a product, 10,000 codes generated and their file downloaded
once (the second download refused), three codes texted in through the carrier webhook (one
mistyped, one repeated from another number), and the results on the analytics page with the
hotspot table naming the province of the repeat."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from services.console.domain.code_jobs import codes_in_file

from .conftest import shot, sign_in

JIANGSU, BEIJING, YUNNAN = "+8613812345678", "+8618612345678", "+8615012345678"


def _mistype(code: str) -> str:
    return code[:-1] + ("2" if code[-1] != "2" else "3")


def test_a_brand_manager_generates_codes_downloads_them_once_and_sees_the_verifications(env, page,
                                                                                         tmp_path):
    t = env.tenant("bcodes", keywords=())
    sign_in(page, env, t.email)
    page.click("nav.sidebar >> text=Brands")
    expect(page.locator(".empty h2")).to_have_text("No brand yet")
    page.fill("#f-name", "Golden Leaf")
    page.fill("#f-slug", "golden")
    page.click("text=Create brand")
    expect(page.locator(".flash-success")).to_contain_text("Brand created")
    page.fill("#f-name", "Golden 20s")
    page.fill("#f-slug", "golden-20")
    page.fill("#f-points", "10")
    page.click("text=Add product")
    expect(page.locator("table.table")).to_contain_text("Golden 20s")
    shot(page, "brand-products")

    page.click(".tabs >> text=Code batches")
    page.fill("#f-count", "10000")
    page.fill("#f-note", "print run 1")
    page.click("button:has-text('Generate')")
    expect(page).to_have_url(re.compile(r"/brands/codes/\d+$"))
    download_button = page.locator("#download")
    expect(download_button).to_be_visible(timeout=60000)  # the progress partial polls until done
    expect(page.locator(".stat-value").first).to_have_text("10,000")
    shot(page, "code-batch-ready")
    with page.expect_download() as dl:
        download_button.click()
    path = tmp_path / "codes.csv"
    dl.value.save_as(path)
    codes = codes_in_file(path.read_bytes())
    assert len(codes) == 10000 and len(set(codes)) == 10000

    download_button.click()  # the same form again: refused, with who took the file
    expect(page.locator("#batch-error")).to_contain_text("already downloaded by " + t.email)
    expect(page.locator("#download")).to_have_count(0)
    shot(page, "code-batch-downloaded-once")

    first, other = codes[17], codes[4242]
    for sender, text in ((JIANGSU, first), (BEIJING, first), (YUNNAN, _mistype(other))):
        r = env.platform.mo(f"mo-{uuid.uuid4().hex[:12]}", sender, t.number, text)
        assert r.status_code < 300, r.text

    page.click(".tabs >> text=Verification analytics")
    stats = page.locator(".stat-value")
    # The figures refresh by themselves (htmx, every 5 s) as the verifier records the texts.
    expect(stats.nth(0)).to_have_text("1", timeout=60000)  # first (genuine)
    expect(stats.nth(1)).to_have_text("1", timeout=30000)  # repeat
    expect(stats.nth(3)).to_have_text("1", timeout=30000)  # mistyped
    hotspots = page.locator("#hotspots")
    expect(hotspots).to_contain_text("Beijing")
    expect(hotspots).to_contain_text("China Unicom")
    shot(page, "verification-analytics")
    page.click("#hotspots >> text=Beijing")
    expect(page.locator("#involved")).to_contain_text(BEIJING)
    expect(page.locator("#involved")).to_contain_text("Golden 20s")
    shot(page, "verification-hotspot-drilldown")
