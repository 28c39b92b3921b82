"""docs/campaigns.md shows a request body for every campaign kind, and each one is accepted."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from services.campaigns.domain import campaigns, contacts, content, inquiry, subscriptions
from services.core.db.campaigns_models import Segment
from services.core.tenancy import add_number, create_tenant

DOC = Path(__file__).resolve().parents[2] / "docs" / "campaigns.md"
NOW = datetime(2026, 6, 15, tzinfo=UTC)


def examples() -> list[dict]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)]


def test_every_campaign_example_in_the_docs_is_accepted_and_every_kind_has_one(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme", default_sender="10690001")
        add_number(s, "acme", "10690001")
        contacts.register_fields(s, "acme", ["birthday"])
        contacts.get_or_create_list(s, "acme", "customers")
        s.add(Segment(tenant_id="acme", name="vip", filter={"tags": ["vip"]}))
        content.put(s, "acme", "daily-menu", {"body": "Latte 30"})
        subscriptions.create_topic(s, "acme", {"name": "news"})
        inquiry.put_endpoint(s, "acme", "erp", {"url": "https://erp.example/inquiry"})
    kinds = set()
    for body in examples():
        with sqlite_db.session() as s:
            kinds.add(campaigns.create(s, "acme", body, now=NOW).kind)
    assert kinds == set(campaigns.KINDS)
