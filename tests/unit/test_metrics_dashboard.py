"""The Grafana dashboard queries only metrics the processors export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import services.bridge.webhooks  # noqa: F401 - registers the webhook metrics
import services.core.metrics  # noqa: F401
import services.metrics.app  # noqa: F401

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "herald.json"


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name)
        names.add(family.name + "_total")
        names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
    return names


def test_every_metric_the_dashboard_queries_is_exported():
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bherald_[a-z_]+", e)}
    assert used and used <= exported(), used - exported()
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
