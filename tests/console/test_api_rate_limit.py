"""The /v1 admin API limits requests per API key (HERALD_API_KEY_RATE_PER_SECOND / _BURST, the
token bucket of services/core/ratelimit.py): past the budget a key gets 429 with Retry-After
and a JSON error naming the limit; another key, of the same tenant or another, is unaffected."""

from __future__ import annotations

from services.core import tenancy
from services.core.ratelimit import KeyedTokenBucket


def keys(db, tenant: str, n: int) -> list[str]:
    with db.session() as s:
        return [tenancy.issue_api_key(s, tenant, f"k{i}") for i in range(n)]


def get(browser, key: str):
    resp = browser._run(browser.client.get("/v1/lists", headers={"Authorization": f"Bearer {key}"}))
    return resp, browser._run(resp.json())


def test_a_key_past_its_budget_gets_429_naming_the_limit_and_when_to_retry(browser, console, console_db):
    console.key_limiter = KeyedTokenBucket(rate=0.2, burst=2)
    first, second = keys(console_db, "acme", 2)
    assert [get(browser, first)[0].status for _ in range(2)] == [200, 200]
    resp, body = get(browser, first)
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 5
    assert body["limit"] == "api_key_requests" and body["rate_per_second"] == 0.2 and body["burst"] == 2
    assert first.split("_")[1] in body["error"] and first not in body["error"]  # the prefix only
    assert get(browser, second)[0].status == 200  # the budget is per key


def test_a_refused_key_is_401_before_any_budget_is_spent(browser, console, console_db):
    console.key_limiter = KeyedTokenBucket(rate=0.2, burst=1)
    for _ in range(3):
        assert get(browser, "hk_0000000000_" + "x" * 40)[0].status == 401
    (key,) = keys(console_db, "acme", 1)
    assert get(browser, key)[0].status == 200


def test_the_integrations_page_tells_the_limit_a_key_gets_and_what_429_means(browser, console):
    console.key_limiter = KeyedTokenBucket(rate=0.5, burst=3)
    browser.sign_in("analyst@acme.example")
    _, body = browser.get("/integrations")
    assert "Each key may make 0.5 requests a second, in bursts of up to 3;" in body
    assert "429 with Retry-After" in body
