"""Journeys: a notification campaign to an imported list runs to 100% delivered through the
carrier simulator and, once completed, offers no step (the API refuses each with a 409); a
two-question survey gets its answers as carrier webhooks, its chart counts them, and its CSV
export carries them."""

from __future__ import annotations

import csv
import io

import httpx
from playwright.sync_api import expect

from tests.support.infra import wait_until

from .conftest import shot, sign_in


def import_list(env, t, name: str, numbers: list[str]) -> None:
    body = "msisdn,name\n" + "".join(f"{n},Member {i}\n" for i, n in enumerate(numbers))
    r = httpx.post(f"{env.url}/v1/contacts/import", params={"list": name}, content=body.encode(),
                   headers={"Authorization": f"Bearer {t.key}", "Content-Type": "text/csv"}, timeout=30)
    assert r.status_code == 200, r.text


def new_campaign(page, env, kind: str, name: str, list_name: str, template: str) -> None:
    page.goto(f"{env.url}/campaigns/new?kind={kind}")
    page.fill("input[name=name]", name)
    page.check("input[name=audience][value=list]")
    page.select_option("select[name=audience_list]", label=list_name)
    page.fill("textarea[name=template]", template)


def test_a_notification_to_a_list_runs_to_every_message_delivered(env, page):
    t = env.tenant("bnotify")
    numbers = [f"+86137{i:08d}" for i in range(20)]
    import_list(env, t, "members", numbers)
    sign_in(page, env, t.email)
    new_campaign(page, env, "notification", "Opening hours", "members",
                 "Hello {name}, we open at 9 on Monday.")
    page.click("text=Create campaign")
    expect(page.locator("h1")).to_contain_text("Opening hours")
    progress = page.locator("#progress")
    try:
        expect(progress.locator(".stat").nth(2)).to_contain_text("20", timeout=90000)  # delivered
    except AssertionError:
        from sqlalchemy import func, select

        from services.core.db import Database
        from services.core.db.models import Message
        db = Database(env.stack.database_url)
        with db.session() as s:
            by = s.execute(select(Message.status, Message.reason, func.count()).where(
                Message.tenant_id == t.id).group_by(Message.status, Message.reason)).all()
        db.dispose()
        sims = [x for x in env.platform.submissions() if x["to"] in numbers]
        raise AssertionError(f"messages by status: {by}; simulator took {len(sims)}") from None
    expect(progress).to_contain_text("100")
    # The page was loaded while the campaign was sending; as it completes, the steps it
    # offered go with the state: a completed campaign cannot be paused or cancelled.
    expect(page.locator("#campaign-status")).to_have_text("completed", timeout=60000)
    for step in ("Start", "Pause", "Resume", "Cancel campaign"):
        expect(page.get_by_role("button", name=step)).to_have_count(0)
    shot(page, "campaign-progress")
    cid = page.url.split("?")[0].rstrip("/").rsplit("/", 1)[1]
    for step in ("pause", "cancel", "resume", "start"):
        r = httpx.post(f"{env.url}/v1/campaigns/{cid}/{step}",
                       headers={"Authorization": f"Bearer {t.key}"}, timeout=30)
        assert r.status_code == 409 and "completed" in r.json()["error"], (step, r.text)
    page.reload()
    expect(page.locator("#campaign-status")).to_have_text("completed")
    expect(page.locator("form[action*='/actions/']")).to_have_count(0)
    shot(page, "campaign-completed")
    texts = {s["to"]: s["text"] for s in env.platform.submissions() if s["to"] in numbers}
    assert len(texts) == 20 and texts[numbers[3]] == "Hello Member 3, we open at 9 on Monday."
    page.goto(f"{env.url}/campaigns")
    expect(page.locator("body")).to_contain_text("Opening hours")
    shot(page, "campaigns")


def test_a_two_question_survey_counts_webhook_answers_and_exports_them(env, page):
    t = env.tenant("bsurvey")
    numbers = [f"+86136{i:08d}" for i in range(6)]
    import_list(env, t, "panel", numbers)
    sign_in(page, env, t.email)
    new_campaign(page, env, "survey", "Store visit", "panel", "Thanks for visiting our store.")
    page.fill("input[name=q0_key]", "visit")
    page.select_option("select[name=q0_type]", "choice")
    page.fill("input[name=q0_text]", "How was your visit? 1 Good 2 Bad")
    page.fill("textarea[name=q0_choices]", "Good\nBad")
    if page.locator("input[name=q1_text]").count() == 0:
        page.click("#add-question")
    page.fill("input[name=q1_key]", "score")
    page.select_option("select[name=q1_type]", "number")
    page.fill("input[name=q1_text]", "Score us from 1 to 10")
    page.fill("input[name=q1_min]", "1")
    page.fill("input[name=q1_max]", "10")
    page.click("text=Create campaign")
    expect(page.locator("h1")).to_contain_text("Store visit")

    def asked(n: str, text: str) -> bool:
        return any(text in s["text"] for s in env.platform.submissions(to=n))

    answers = {numbers[0]: ("1", "9"), numbers[1]: ("1", "7"), numbers[2]: ("2", "3"),
               numbers[3]: ("Good", "10")}
    for n, (first, second) in answers.items():
        wait_until(lambda n=n: asked(n, "How was your visit"), 60, 0.3, f"first question to {n}")
        assert env.platform.mo(f"{n}-a1", n, t.number, first).status_code == 200
        wait_until(lambda n=n: asked(n, "Score us"), 60, 0.3, f"second question to {n}")
        assert env.platform.mo(f"{n}-a2", n, t.number, second).status_code == 200

    results = page.locator("#results")
    expect(results).to_contain_text("4 answers", timeout=60000)
    good = results.locator("tr", has_text="Good")
    expect(good).to_contain_text("3")
    expect(results.locator("tr", has_text="Bad")).to_contain_text("1")
    expect(results.locator("svg.chart rect")).to_have_count(2)
    shot(page, "survey-results")

    with page.expect_download() as dl:
        page.click("text=Export CSV")
    rows = list(csv.DictReader(io.StringIO(open(dl.value.path(), encoding="utf-8-sig").read())))
    by_number = {r.get("msisdn") or r.get("number"): r for r in rows}
    assert set(answers) <= set(by_number), rows
    assert by_number[numbers[2]]["visit"] == "Bad" and by_number[numbers[2]]["score"] in ("3", "3.0")
