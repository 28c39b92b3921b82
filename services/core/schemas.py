"""Loading the JSON Schemas under schemas/ and validating events against them.

Every topic's events are JSON per ``schemas/<name>/v1.json``. Producers call ``encode`` (which
validates before sending); consumers call ``decode`` (which rejects invalid JSON, bytes that are
not UTF-8, and schema violations with a reason fit for a DLQ record).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
BASE_URI = "https://schemas.herald.dev"


class EventInvalid(ValueError):
    """An event that cannot be accepted; ``kind`` names the failure for the DLQ."""

    def __init__(self, reason: str, kind: str = "schema_violation") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def schema_for_topic(topic: str) -> str:
    """Which schema a topic's events follow (tenant topics reuse the pipeline schemas)."""
    if topic.endswith(".dlq"):
        return "dlq"
    if topic == "campaigns.inbound":
        return "sms.inbound"
    if topic.startswith("tenant.") and topic.endswith(".inbound"):
        return "sms.inbound"
    if topic.startswith("tenant.") and topic.endswith(".status"):
        return "sms.status"
    if topic.startswith("tenant.") and topic.endswith(".outbound"):
        return "sms.outbound"
    return topic


@lru_cache(maxsize=1)
def _registry() -> tuple[Registry, dict[str, Any]]:
    resources = []
    schemas: dict[str, Any] = {}
    for path in sorted(SCHEMA_DIR.glob("*/v*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
        schemas[f"{path.parent.name}/{path.stem}"] = doc
    return Registry().with_resources(resources), schemas


@cache
def validator(name: str, version: int = 1) -> Draft202012Validator:
    registry, schemas = _registry()
    try:
        doc = schemas[f"{name}/v{version}"]
    except KeyError:
        raise KeyError(f"no schema {name} v{version} under {SCHEMA_DIR}") from None
    return Draft202012Validator(doc, registry=registry)


def known_schemas() -> list[str]:
    return sorted(_registry()[1])


def validate(name: str, event: Any) -> None:
    err = best_match(validator(name).iter_errors(event))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(event)"
        msg = err.message
        if len(msg) > 300:
            msg = msg[:300] + "..."
        raise EventInvalid(f"{name}: {where}: {msg}")


def decode(name: str, raw: bytes | str | None) -> dict[str, Any]:
    """Bytes off a topic -> a validated event, or EventInvalid with the reason."""
    if raw is None:
        raise EventInvalid("empty record (no value)", "invalid_json")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventInvalid(f"value is not UTF-8: {exc}", "wrong_encoding") from None
    try:
        event = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EventInvalid(f"value is not JSON: {exc}", "invalid_json") from None
    if not isinstance(event, dict):
        raise EventInvalid("value is not a JSON object", "schema_violation")
    validate(name, event)
    return event


def encode(name: str, event: dict[str, Any]) -> bytes:
    """A validated event -> bytes for a topic. Raises EventInvalid: producers never send bad events."""
    validate(name, event)
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_event(event_type: str, tenant_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """An event with the shared envelope filled in; fields that are None are left out."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "produced_at": now_iso(),
        "schema_version": 1,
    }
    if tenant_id is not None:
        event["tenant_id"] = tenant_id
    event.update({k: v for k, v in fields.items() if v is not None})
    return event
