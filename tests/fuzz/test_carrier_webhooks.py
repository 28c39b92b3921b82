"""Carrier webhooks at the running ingress, correctly signed over random bodies (hypothesis):
every answer is a clear 2xx or a 4xx with its reason, never a server error, and ingress stays
up. A body with a bad signature is refused whatever it holds."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.core.carriers import sign
from tests.fuzz.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.e2e

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
numbers = st.sampled_from(["+8613812345678", "10690077", "", "+", "+1" * 9]) | st.text(max_size=18)
mo_like = st.fixed_dictionaries({}, optional={
    "id": st.text(max_size=140) | scalars, "from": numbers | scalars, "to": numbers | scalars,
    "text": st.text(max_size=400) | scalars, "coding": st.sampled_from(["gsm7", "ucs2", "hex", "x"]) | scalars,
    "concat": st.fixed_dictionaries({}, optional={"ref": scalars, "total": st.integers(-2, 300),
                                                  "seq": st.integers(-2, 300)}) | scalars})
dlr_like = st.fixed_dictionaries({}, optional={
    "carrier_message_id": st.text(max_size=140) | scalars,
    "status": st.sampled_from(["delivered", "DELIVRD", "failed", "expired", "unknown"]) | scalars,
    "reference": st.uuids().map(str) | scalars, "error_code": scalars,
    "reported_at": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "yesterday"]) | scalars})
bodies = st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                   mo_like.map(lambda v: json.dumps(v).encode()), dlr_like.map(lambda v: json.dumps(v).encode()))


def _post(client: httpx.Client, kind: str, raw: bytes, signature: str | None = None) -> httpx.Response:
    return client.post(f"/carriers/fuzz/{kind}", content=raw, headers={
        "X-Herald-Signature": signature or sign(WEBHOOK_SECRET, raw), "Content-Type": "application/json"})


@pytest.mark.parametrize("kind", ["mo", "dlr"])
def test_a_signed_webhook_with_any_body_is_accepted_or_refused_with_a_reason(api, kind):
    client = httpx.Client(base_url=api["ingress"].url, timeout=10)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(raw=bodies)
    @example(raw=b"[" * 100_000)  # nesting deeper than the JSON parser's stack
    @example(raw=b"\xff\xfe")
    @example(raw=b"")
    def fuzz(raw):
        r = _post(client, kind, raw)
        assert r.status_code in (200, 202, 400), (r.status_code, r.text, raw[:200])
        if r.status_code == 400:
            assert r.json()["error"]

    with client:
        fuzz()
    assert api["ingress"].alive()


@given(raw=bodies)
@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_webhook_whose_signature_does_not_match_its_body_is_refused(api, raw):
    with httpx.Client(base_url=api["ingress"].url, timeout=10) as client:
        r = _post(client, "mo", raw, signature=sign(WEBHOOK_SECRET, raw + b" "))
    assert r.status_code == 401 and r.json()["error"] == "bad or missing signature"
