"""The lottery, points and gifts journey: a brand manager sets up a lottery and uploads 20 prize
cards, 200 codes are texted in through the carrier webhook with odds that must produce winners,
and the draw log, the winners and the falling inventory show; a member reaches a points
threshold, redeems a gift by SMS, and the redemption shows on the points page."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect
from sqlalchemy import func, select

from services.core.db import Database
from services.core.db.schemes import Draw, Redemption
from services.verifier.domain import admin
from services.verifier.domain.codes import CodeHasher, create_batch
from tests.support.infra import wait_until

from .conftest import shot, sign_in

MEMBER = "+8613912345678"
OTHERS = [f"+86138000000{i:02d}" for i in range(9)]


def _count(db: Database, model, **where) -> int:
    with db.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


def test_a_lottery_draws_winners_from_uploaded_cards_and_a_member_redeems_a_gift_by_sms(env, page, tmp_path):
    t = env.tenant("blottery", keywords=(("GIFT", "points"),))
    db = Database(env.stack.database_url)
    try:
        with db.session() as s:  # the brand and its codes (the brands page's journey is its own test)
            admin.create_brand(s, t.id, "golden", "Golden Leaf", name_zh="金叶")
            admin.create_product(s, t.id, "golden", "golden-20", "Golden 20s", points=10)
            _, codes = create_batch(s, CodeHasher(env.stack.settings().secret_key), t.id, "golden-20", 200)
        sign_in(page, env, t.email)

        # A lottery with one tier whose odds (1 in 5 over 200 draws) must produce winners.
        page.click("nav.sidebar >> text=Lottery")
        expect(page.locator(".empty h2")).to_have_text("No lottery yet")
        page.click(".empty >> text=New lottery")
        page.fill("#f-name", "Spring prepaid cards")
        page.fill("input[name=tiers-0-name]", "50 yuan phone card")
        page.fill("input[name=tiers-0-odds]", "1/5")
        page.fill("input[name=tiers-0-cap]", "100")
        page.click("button:has-text('Create lottery')")
        expect(page.locator(".flash-success")).to_contain_text("The lottery is open")
        page.click("summary:has-text('50 yuan phone card')")
        cards = tmp_path / "cards.csv"
        cards.write_text("card_number,password,instructions\n"
                         + "".join(f"PC{i:04d},secret-{i:04d},Dial *100#\n" for i in range(20)))
        page.locator("input[type=file]").first.set_input_files(str(cards))
        page.click("button:has-text('Upload cards')")
        expect(page.locator(".flash-success")).to_contain_text("20 cards added")
        expect(page.locator(".cards-left").first).to_have_text("20")
        lottery_url = page.url
        shot(page, "lottery-cards-uploaded")

        # Points: a threshold and a gift with its virtual cards.
        page.click("nav.sidebar >> text=Points and gifts")
        page.fill("input[name=thresholds-0-points]", "30")
        page.fill("input[name=thresholds-0-message_zh]", "您已有{balance}积分，可以兑换礼品了！{menu}")
        page.click("button:has-text('Save thresholds')")
        expect(page.locator(".flash-success")).to_contain_text("thresholds are saved")
        page.fill("#f-number", "1")
        page.fill("#f-name", "Tea voucher")
        page.fill("#f-cost", "30")
        page.click("button:has-text('Add gift')")
        expect(page.locator(".flash-success")).to_contain_text("The gift is in the catalogue")
        gifts = tmp_path / "gifts.csv"
        gifts.write_text("卡号,密码\nTEA001,tea-secret-1\nTEA002,tea-secret-2\n", encoding="utf-8")
        page.locator("#gift-1 input[type=file]").set_input_files(str(gifts))
        page.click("#gift-1 >> text=Upload cards")
        expect(page.locator(".flash-success")).to_contain_text("2 cards added")

        # 200 verifications through the carrier webhook: three from the member, the rest from others.
        for i, code in enumerate(codes):
            sender = MEMBER if i < 3 else OTHERS[i % len(OTHERS)]
            r = env.platform.mo(f"mo-{uuid.uuid4().hex[:12]}", sender, t.number, code)
            assert r.status_code < 300, r.text
        wait_until(lambda: _count(db, Draw, tenant_id=t.id) == 200, 120, what="200 draws")

        page.goto(lottery_url)
        expect(page.locator("[data-outcome=won]")).to_have_text("20", timeout=30000)
        expect(page.locator(".cards-left").first).to_contain_text("0")
        expect(page.locator(".cards-left .badge-low").first).to_be_visible()
        assert int(page.locator("[data-outcome=no_stock]").inner_text()) > 0  # won the draw, no card left
        shot(page, "lottery-inventory")
        page.click("text=Draw log")
        expect(page.locator("table.draws tbody tr")).to_have_count(50)
        expect(page.locator("table.draws")).to_contain_text("hmac-sha256")  # each draw's inputs
        shot(page, "lottery-draw-log")
        page.select_option("select[name=outcome]", "won")
        expect(page.locator("table.draws tbody tr")).to_have_count(20)
        expect(page.locator("table.draws")).to_contain_text("****")
        expect(page.locator("table.draws")).not_to_contain_text("secret-")
        shot(page, "lottery-winners")

        # The member has 30 points (three codes), was told at the threshold, and texts GIFT 1.
        r = env.platform.mo(f"mo-{uuid.uuid4().hex[:12]}", MEMBER, t.number, "GIFT 1")
        assert r.status_code < 300, r.text
        wait_until(lambda: _count(db, Redemption, tenant_id=t.id, outcome="redeemed") == 1, 60,
                   what="the GIFT 1 redemption")
        page.click("nav.sidebar >> text=Points and gifts")
        redemptions = page.locator("#redemptions")
        expect(redemptions).to_contain_text(MEMBER)
        expect(redemptions).to_contain_text("Tea voucher")
        expect(redemptions).to_contain_text("redeemed")
        expect(page.locator("#pf-redeemed")).to_have_text("1")
        expect(page.locator("body")).not_to_contain_text("tea-secret")
        shot(page, "points-redemption")
        page.click(f"#redemptions >> text={MEMBER}")
        expect(page.locator("#balance")).to_have_text("0")
        shot(page, "points-member")
        # and the threshold message (the zh text set above) reached the carrier
        wait_until(lambda: any(MEMBER.lstrip("+") in str(m.get("to")) and "可以兑换礼品" in str(m.get("text"))
                               for m in env.platform.submissions()), 60, what="the threshold message")
    finally:
        db.dispose()
