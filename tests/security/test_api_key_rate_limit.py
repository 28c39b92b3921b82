"""Ingress's /v1 limits requests per API key (HERALD_API_KEY_RATE_*), beside the per-tenant
message rate: a key past its budget gets 429, Retry-After and the limit named; the tenant's
other key is not held back by it."""

from __future__ import annotations

import httpx
import pytest

from services.core import tenancy
from services.core.db import Database
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.integration


def test_ingress_answers_429_per_api_key_with_retry_after_and_the_limit_named(stack):
    key = seed_tenant(stack, "keyed", number="10690300")
    db = Database(stack.database_url)
    with db.session() as s:
        other = tenancy.issue_api_key(s, "keyed", "second")
    db.dispose()
    proc = stack.start("services.ingress", HERALD_API_KEY_RATE_PER_SECOND="0.2",
                       HERALD_API_KEY_RATE_BURST="3")

    def lookup(k: str) -> httpx.Response:
        return httpx.get(f"{proc.url}/v1/messages/no-such-id", timeout=5,
                         headers={"Authorization": f"Bearer {k}"})

    assert [lookup(key).status_code for _ in range(3)] == [404, 404, 404]
    r = lookup(key)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 5
    body = r.json()
    assert body["limit"] == "api_key_requests" and body["burst"] == 3
    assert key.split("_")[1] in body["error"] and key not in body["error"]
    sent = httpx.post(f"{proc.url}/v1/messages", timeout=5, headers={"Authorization": f"Bearer {key}"},
                      json={"to": "+14155550100", "text": "over budget"})
    assert sent.status_code == 429  # sends count against the same key's budget
    assert lookup(other).status_code == 404  # the tenant's other key has its own budget
