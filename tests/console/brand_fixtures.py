"""Helpers of the brand-scheme page tests: a brand with a product, generated batches, and
verifications recorded through the verifier's own domain code."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from services.console.domain import brands, code_jobs
from services.verifier.domain.verify import Verifier

SECRET = "dev-only-change-me"  # the console fixture's settings


def brand_with_product(db, tenant="acme", brand="gold", product="gold-20") -> None:
    with db.session() as s:
        brands.create_brand(s, tenant, slug=brand, name=f"{brand.title()} Leaf", timezone="Asia/Shanghai")
        brands.create_product(s, tenant, brand, slug=product, name=f"{product.title()}s", points=5)


def wait_batch(db, tenant: str, batch_id: int, timeout: float = 60) -> code_jobs.BatchRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as s:
            row = code_jobs.get(s, tenant, batch_id)
            if row.status not in ("queued", "running"):
                return row
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} still {row.status}")


def verify(db, tenant: str, code: str, number: str, secret: str = SECRET) -> str:
    """Text a code in as the router would hand it over; returns the outcome."""
    v = Verifier(secret)
    ev = {"submission_id": str(uuid.uuid4()), "tenant_id": tenant, "from": number, "to": "106900",
          "code": code, "received_at": datetime.now(UTC).isoformat()}
    with db.session() as s:
        v.handle(s, [ev])
    from sqlalchemy import select

    from services.core.db.schemes import CodeQuery
    with db.session() as s:
        return s.scalar(select(CodeQuery.outcome).where(CodeQuery.submission_id == ev["submission_id"]))
