"""Carrier declarations: the fields every kind has (name, kind, credentials, the prefixes they
serve, priority, rate limit), read from HERALD_CARRIERS_FILE (JSON), and routing over them.
What a kind makes of its fields and ``options`` (submission, webhooks, status codes) is its
unit's: services/carriers/<kind>/."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Carrier:
    name: str
    kind: str = "http"  # the connector that speaks to it
    submit_url: str = ""
    api_token: str = field(default="", repr=False)
    webhook_auth: str = "hmac"  # the kind's webhooks read it (services/carriers/<kind>/webhooks.py)
    webhook_secret: str = field(default="", repr=False)
    prefixes: tuple[str, ...] = ("+",)
    priority: int = 100  # lower is preferred among carriers matching a number
    rate_per_second: float = 100.0
    timeout_s: float = 5.0
    options: dict[str, Any] = field(default_factory=dict)

    def serves(self, number: str) -> int:
        """Length of the longest matching prefix (0: does not serve the number)."""
        best = 0
        for p in self.prefixes:
            if len(p) > best and number.startswith(p):
                best = len(p)
        return best


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def load_carriers(path: str | Path) -> dict[str, Carrier]:
    p = Path(path)
    if not p.is_absolute():
        p = Path(__file__).resolve().parents[2] / p
    doc = json.loads(p.read_text(encoding="utf-8"))
    out: dict[str, Carrier] = {}
    for raw in doc.get("carriers", []):
        raw = dict(raw)
        raw["prefixes"] = tuple(raw.get("prefixes", ["+"]))
        c = Carrier(**raw)
        if c.name in out:
            raise ValueError(f"carrier {c.name} declared twice in {p}")
        out[c.name] = c
    return out


def route(carriers: dict[str, Carrier], number: str, preference: list[str] | None = None) -> list[Carrier]:
    """Carriers that serve ``number``, best first: the tenant's preference order, then longest
    prefix, then priority. Egress tries them in this order (failover)."""
    pref = {name: i for i, name in enumerate(preference or [])}
    ranked = [((pref.get(c.name, len(pref)), -n, c.priority), i, c)
              for i, c in enumerate(carriers.values()) if (n := c.serves(number))]
    return [c for *_, c in sorted(ranked)]
