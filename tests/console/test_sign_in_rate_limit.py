"""Sign-in attempts per address are limited (a token bucket of the limit, refilled at the limit
a minute: services/core/ratelimit.py, the one the /v1 APIs use per key): past it the answer is
429 with Retry-After, the seconds until the next attempt is allowed."""

from services.console.web import SignInLimiter


def test_past_the_limit_a_sign_in_is_429_and_says_when_to_retry(browser, console):
    console.limiter = SignInLimiter(limit=3)
    for _ in range(3):
        resp, _ = browser.sign_in("owner@acme.example", "wrong password")
        assert resp.status != 429
    resp, body = browser.sign_in("owner@acme.example", "wrong password")
    assert resp.status == 429 and "Too many sign-in attempts" in body
    assert 1 <= int(resp.headers["Retry-After"]) <= 20


def test_retry_after_counts_down_to_when_the_next_attempt_is_allowed():
    limiter = SignInLimiter(limit=2)  # 2 saved up, one more every 30 s
    assert limiter.allow("a", now=100.0) and limiter.allow("a", now=100.0)
    assert not limiter.allow("a", now=100.0)
    assert limiter.retry_after("a", now=100.0) == 30
    assert limiter.retry_after("a", now=129.5) == 1
    assert not limiter.allow("a", now=129.5)
    assert limiter.allow("a", now=130.0)
    assert limiter.allow("b", now=130.0)  # each address has its own budget
