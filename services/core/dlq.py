"""The DLQ envelope: what a processor could not handle, with the reason and the original bytes."""

from __future__ import annotations

import base64
from typing import Any

from .schemas import new_event, now_iso

MAX_KEPT_BYTES = 256 * 1024  # of the original value, in a DLQ record


def dlq_record(*, original_topic: str, partition: int | None, offset: int | None,
               key: bytes | str | None, value: bytes | str | None, reason: str,
               error_type: str, processor: str, tenant_id: str | None = None) -> dict[str, Any]:
    if isinstance(key, bytes):
        key = key.decode("utf-8", errors="replace")
    if isinstance(value, str):
        value = value.encode("utf-8")
    if value is not None and len(value) > MAX_KEPT_BYTES:
        # Base64 grows bytes by a third: a value near the broker's 1 MB limit kept whole would
        # make a DLQ record the broker refuses, and the processor could not move past it.
        reason = f"{reason[:1500]} (value of {len(value)} bytes; its first {MAX_KEPT_BYTES} kept)"
        value = value[:MAX_KEPT_BYTES]
    return new_event(
        "dlq",
        tenant_id=tenant_id,
        original_topic=original_topic,
        partition=partition,
        offset=offset,
        key=key,
        value_b64=base64.b64encode(value or b"").decode("ascii"),
        reason=reason[:2048] or "unknown",
        error_type=error_type,
        processor=processor,
        failed_at=now_iso(),
    ) | {"partition": partition, "offset": offset, "key": key}
