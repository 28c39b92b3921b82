"""Sign-in attempts per address are limited: past the limit the answer is 429 with Retry-After,
the seconds until the oldest attempt of the minute leaves the window."""

from services.console.web import SignInLimiter


def test_past_the_limit_a_sign_in_is_429_and_says_when_to_retry(browser, console):
    console.limiter.limit = 3
    for _ in range(3):
        resp, _ = browser.sign_in("owner@acme.example", "wrong password")
        assert resp.status != 429
    resp, body = browser.sign_in("owner@acme.example", "wrong password")
    assert resp.status == 429 and "Too many sign-in attempts" in body
    assert 1 <= int(resp.headers["Retry-After"]) <= 60


def test_retry_after_counts_down_to_when_the_oldest_attempt_leaves_the_minute():
    limiter = SignInLimiter(limit=2)
    assert limiter.allow("a", now=100.0) and limiter.allow("a", now=110.0)
    assert not limiter.allow("a", now=130.0)
    assert limiter.retry_after("a", now=130.0) == 30
    assert limiter.retry_after("a", now=159.5) == 1
    assert limiter.allow("a", now=160.5)
