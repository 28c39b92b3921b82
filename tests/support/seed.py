"""Tenants, numbers, keywords and keys for tests, written straight to the test database."""

from __future__ import annotations

from services.core.db import Database
from services.core.tenancy import add_keyword, add_number, create_tenant, issue_api_key
from services.core.topics import ensure_topics, tenant_topics


def seed_tenant(stack, tenant_id: str = "acme", number: str = "10690001",
                keywords: list[tuple] = (), **fields) -> str:
    """Create a tenant with one sender number, its topics and an API key; returns the key."""
    db = Database(stack.database_url)
    try:
        with db.session() as s:
            create_tenant(s, tenant_id, tenant_id.title(), default_sender=number,
                          help_text=fields.pop("help_text", f"{tenant_id.title()} help: reply STOP to opt out."),
                          **fields)
            add_number(s, tenant_id, number)
            for kw in keywords:
                word, action, *rest = kw
                add_keyword(s, tenant_id, word, action, **(rest[0] if rest else {}))
            key = issue_api_key(s, tenant_id, "test")
    finally:
        db.dispose()
    ensure_topics(stack.settings(), extra=tenant_topics(tenant_id))
    return key
