"""A survey's live results (a chart per choice question) and its CSV export."""

import re

from services.core.db.campaigns_models import SurveyAnswer, SurveySession

from .campaign_fixtures import make

QUESTIONS = [{"key": "q1", "text": "How was it?", "type": "choice", "choices": ["Great", "Bad"]},
             {"key": "n", "text": "How many visits?", "type": "number"},
             {"key": "why", "text": "Why?", "type": "text"}]


def _survey(db, tenant="acme"):
    cid = make(db, tenant=tenant, kind="survey", name="Visit survey", audience=None, template=None,
               config={"questions": QUESTIONS, "keyword": f"VISIT{tenant.upper()}"})
    answers = [("+15550000001", {"q1": "Great", "n": ("3", 3.0), "why": "=HYPERLINK(\"x\")"}),
               ("+15550000002", {"q1": "Great"}), ("+15550000003", {"q1": "Bad"})]
    with db.session() as s:
        for i, (msisdn, got) in enumerate(answers):
            x = SurveySession(campaign_id=cid, tenant_id=tenant, msisdn=msisdn,
                              status="completed" if len(got) == 3 else "open")
            s.add(x)
            s.flush()
            for key, v in got.items():
                value, number = v if isinstance(v, tuple) else (v, None)
                s.add(SurveyAnswer(session_id=x.id, campaign_id=cid, question_key=key, value=value,
                                   number=number, source_message_id=f"mo-{i}-{key}"))
    return cid


def test_the_results_show_counts_and_a_chart_per_choice_question(browser, console_db):
    cid = _survey(console_db)
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get(f"/campaigns/{cid}")
    assert resp.status == 200
    assert f'hx-get="/campaigns/{cid}/results" hx-trigger="every 3s"' in body
    resp, body = browser.get(f"/campaigns/{cid}/results")
    assert resp.status == 200
    assert body.count('<svg') == 1 and "<title>Great: 2</title>" in body and "<title>Bad: 1</title>" in body
    figures = dict(re.findall(r'stat-label">([^<]+)</div><div class="stat-value">([^<]+)<', body))
    assert figures["Started"] == "3" and figures["Completed"] == "1"
    assert "66.7%" in body  # 2 of 3 answered Great


def test_the_csv_export_has_a_row_per_contact_with_formulas_made_text(browser, console_db):
    cid = _survey(console_db)
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get(f"/campaigns/{cid}/results.csv")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert f'{cid}-results.csv' in resp.headers["Content-Disposition"]
    lines = body.lstrip("\ufeff").splitlines()
    assert lines[0] == "msisdn,status,started_at,completed_at,q1,n,why"
    assert len(lines) == 4
    assert "'=HYPERLINK" in body  # the shared export writer neutralises formulas


def test_a_campaign_that_is_not_a_survey_has_no_results(browser, console_db):
    cid = make(console_db)
    browser.sign_in("owner@acme.example")
    resp, _ = browser.get(f"/campaigns/{cid}/results.csv")
    assert resp.status == 404
    resp, _ = browser.get(f"/campaigns/{cid}/results")
    assert resp.status == 404


def test_another_tenants_survey_results_and_export_are_404(browser, console_db):
    cid = _survey(console_db, tenant="other")
    browser.sign_in("owner@acme.example")
    for path in (f"/campaigns/{cid}/results", f"/campaigns/{cid}/results.csv"):
        resp, body = browser.get(path)
        assert resp.status == 404 and "+1555" not in body


def test_signed_out_visitors_are_sent_to_sign_in_for_the_export(browser, console_db):
    cid = _survey(console_db)
    resp, _ = browser.get(f"/campaigns/{cid}/results.csv")
    assert resp.url.path == "/login"
