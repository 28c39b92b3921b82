"""The operator's journeys in a real browser against the real stack: suspending a tenant refuses
its next API send by name; the lag page shows a verifier's lag while it is stopped and zero once
it has caught up."""

from __future__ import annotations

import time

import httpx
from confluent_kafka import Producer
from playwright.sync_api import expect

from services.core.db import Database
from tests.browser.conftest import PASSWORD, shot, sign_in
from tests.support.infra import wait_until


def operator(env) -> str:
    from services.console.domain import users
    from services.core.db.console_models import ConsoleUser

    email = "ops@herald.example"
    db = Database(env.stack.database_url)
    try:
        with db.session() as s:
            if s.query(ConsoleUser).filter_by(email=email).first() is None:
                users.create_user(s, email=email, password=PASSWORD, role="platform", tenant_id=None)
    finally:
        db.dispose()
    return email


def send(env, key: str, request_id: str) -> httpx.Response:
    return httpx.post(f"{env.platform.ingress.url}/v1/messages", timeout=10,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"to": "+8613812349001", "text": "Your parcel left.", "request_id": request_id})


def test_an_operator_suspends_a_tenant_and_its_next_api_send_is_refused(env, page):
    t = env.tenant("suspendme")
    assert send(env, t.key, "before-suspension").status_code == 202
    sign_in(page, env, operator(env))
    page.goto(f"{env.url}/operator")
    row = page.locator("tr", has_text="suspendme")
    row.get_by_role("button", name="Suspend").click()
    expect(page.locator("tr", has_text="suspendme")).to_contain_text("suspended")
    shot(page, "operator-tenants-suspended")

    def refused() -> httpx.Response | None:  # ingress caches a key's answer for up to 5 s
        r = send(env, t.key, f"after-suspension-{time.monotonic()}")
        return r if r.status_code == 403 else None
    r = wait_until(refused, 15, what="the suspended tenant's send refused")
    assert "tenant suspendme is suspended" in r.json()["error"]


def test_the_lag_page_shows_the_stopped_verifier_s_lag_and_zero_once_it_caught_up(env, page):
    verifier = next(p for p in env.stack.procs if p.module == "services.verifier")
    sign_in(page, env, operator(env))
    page.goto(f"{env.url}/operator/pipeline")
    lag = page.locator('.group-lag[data-processor="verifier"]')
    verifier.stop()
    try:
        producer = Producer({"bootstrap.servers": env.stack.bootstrap})
        for i in range(25):  # not events the verifier can use: it dead-letters them, and commits
            producer.produce(env.stack.topic("codes.submitted"), b'{"probe": %d}' % i, key=b"probe-%d" % i)
        assert producer.flush(10) == 0
        expect(lag).not_to_have_text("0", timeout=20000)
        assert int(lag.inner_text().replace(",", "")) >= 25
        shot(page, "operator-lag-verifier-stopped")
    finally:
        verifier.start()
    expect(lag).to_have_text("0", timeout=60000)
    shot(page, "operator-lag-caught-up")
