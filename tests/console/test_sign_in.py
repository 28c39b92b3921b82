"""Sign-in, sessions, CSRF, lockout and sign-out."""

from services.console.web import SESSION_COOKIE
from services.core.db.console_models import AuditEntry, ConsoleSession

from .conftest import PASSWORD


def test_a_signed_out_visitor_is_sent_to_the_sign_in_page(browser):
    resp, body = browser.get("/")
    assert resp.url.path == "/login"
    assert 'name="password"' in body


def test_an_owner_signs_in_and_sees_the_dashboard(browser):
    resp, body = browser.sign_in("owner@acme.example")
    assert resp.status == 200
    assert resp.url.path == "/"
    assert "Delivery rate" in body and "Olive Owner" in body


def test_the_session_cookie_is_http_only_and_same_site(browser):
    browser.get("/login")
    resp, _ = browser.post("/login", {"email": "owner@acme.example", "password": PASSWORD},
                           allow_redirects=False)
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


def test_the_session_token_is_not_stored_in_clear(browser, console_db):
    browser.get("/login")
    resp, _ = browser.post("/login", {"email": "owner@acme.example", "password": PASSWORD},
                           allow_redirects=False)
    token = resp.cookies[SESSION_COOKIE].value
    with console_db.session() as s:
        stored = [r.token_hash for r in s.query(ConsoleSession).all()]
    assert stored and token not in stored


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(browser):
    resp, body = browser.sign_in("owner@acme.example", "not the password")
    assert resp.status == 401
    assert "The email or password is not right." in body
    resp, body = browser.sign_in("nobody@acme.example", "not the password")
    assert resp.status == 401
    assert "The email or password is not right." in body


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(browser, console_db):
    for _ in range(4):
        resp, _ = browser.sign_in("owner@acme.example", "wrong wrong wrong")
        assert resp.status == 401
    resp, body = browser.sign_in("owner@acme.example", "wrong wrong wrong")
    assert resp.status == 423
    assert "locked" in body
    resp, body = browser.sign_in("owner@acme.example", PASSWORD)
    assert resp.status == 423
    with console_db.session() as s:
        assert s.query(AuditEntry).filter_by(action="sign_in_locked").count() >= 1


def test_a_sign_in_post_without_the_form_token_is_refused(browser):
    browser.get("/login")
    resp, _ = browser.post("/login", {"email": "owner@acme.example", "password": PASSWORD}, csrf=False)
    assert resp.status == 403


def test_a_form_post_without_the_session_csrf_token_is_refused(browser):
    browser.sign_in("owner@acme.example")
    resp, _ = browser.post("/integrations/keys", {"label": "ERP"}, csrf=False)
    assert resp.status == 403
    resp, _ = browser.post("/integrations/keys", {"label": "ERP", "csrf_token": "forged"}, csrf=False)
    assert resp.status == 403


def test_sign_out_everywhere_ends_every_session_of_the_user(browser_factory):
    phone, laptop = browser_factory(), browser_factory()
    phone.sign_in("owner@acme.example")
    laptop.sign_in("owner@acme.example")
    laptop.get("/")
    laptop.post("/logout/everywhere")
    resp, _ = phone.get("/")
    assert resp.url.path == "/login"


def test_the_next_page_after_sign_in_stays_on_this_site(browser):
    browser.get("/login?next=//evil.example/")
    resp, _ = browser.post("/login", {"email": "owner@acme.example", "password": PASSWORD,
                                      "next": "//evil.example/"}, allow_redirects=False)
    assert resp.headers["Location"] == "/"


def test_the_dashboard_ranks_the_keywords_texted_today(browser, console_db):
    from datetime import UTC, datetime

    from services.core.db.inbox_models import InboundText

    with console_db.session() as s:
        for i, kw in enumerate(["BAL", "BAL", "BAL", "INFO", "INFO", "CODE"]):
            s.add(InboundText(message_id=f"m{i}", tenant_id="acme", sender="+8613800000001",
                              number="10690001", text=kw, received_at=datetime.now(UTC), keyword=kw))
        s.add(InboundText(message_id="x", tenant_id="other", sender="+8613800000002",
                          number="10690002", text="ZZZ", received_at=datetime.now(UTC), keyword="ZZZ"))
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/dashboard/figures?period=today")
    assert body.index("BAL") < body.index("INFO") < body.index("CODE")
    assert "ZZZ" not in body
