"""``herald`` against the real broker: creating a tenant creates its four topics, and ``tail``
follows the tenant's inbound, status (and DLQ) topics."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from confluent_kafka import Producer

from services.core.schemas import encode, new_event
from tests.support.infra import ROOT

pytestmark = pytest.mark.integration


def herald(stack, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *argv], cwd=ROOT, env=stack.env(),
                          capture_output=True, text=True, timeout=timeout)


def test_a_tenant_created_by_the_cli_gets_its_topics_and_tail_shows_what_arrives(stack):
    r = herald(stack, "tenants", "create", "acme", "--name", "Acme", "--sender", "10690001")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["topics"] == ["tenant.acme.outbound", "tenant.acme.inbound",
                                              "tenant.acme.status", "tenant.acme.dlq"]
    p = Producer({"bootstrap.servers": stack.bootstrap})
    inbound = new_event("sms.inbound", "acme", message_id="1e2d3c4b-5a69-4788-96a5-b4c3d2e1f0a9",
                        carrier="sim", carrier_message_id="SM-1", to="10690001", text="hello",
                        received_at="2026-11-28T10:00:00Z", **{"from": "+8613800138000"})
    status = new_event("sms.status", "acme", message_id="c4d5e6f7-a8b9-4c0d-9e1f-2a3b4c5d6e7f",
                       to="+8613800138000", status="delivered", occurred_at="2026-11-28T10:00:01Z")
    p.produce(stack.topic("tenant.acme.inbound"), encode("sms.inbound", inbound))
    p.produce(stack.topic("tenant.acme.status"), encode("sms.status", status))
    p.produce(stack.topic("tenant.acme.dlq"), b'{"event_type":"dlq","reason":"x"}')
    assert p.flush(10) == 0
    r = herald(stack, "tail", "acme", "--from-beginning", "--dlq", "--count", "3", "--timeout", "30")
    assert r.returncode == 0, r.stderr
    got = {json.loads(line)["topic"]: json.loads(line) for line in r.stdout.splitlines()}
    assert got["inbound"]["text"] == "hello" and got["status"]["status"] == "delivered"
    assert got["dlq"]["reason"] == "x"
    r = herald(stack, "tail", "nobody", "--timeout", "1")
    assert r.returncode == 1 and "is nobody a tenant?" in r.stderr


def test_the_cli_says_so_when_the_broker_cannot_be_reached(stack):
    r = herald(stack, "--bootstrap", "127.0.0.1:1", "tail", "acme", "--timeout", "1")
    assert r.returncode == 3 and "cannot reach the broker" in r.stderr
