"""Operators' side against the running platform: Prometheus from Debian's package (installed by
deploy/prometheus/prometheus.sh, which `make test` runs) scrapes the processors with
deploy/prometheus/prometheus.yml and loads rules.yml; a Herald metric and the rules' state are
read through Prometheus's HTTP API. Every metric the rules and the Grafana dashboard use is one
the running processors' /metrics (or the lag exporter) declare."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import httpx
import pytest
import yaml

from tests.support.infra import ROOT, free_port, wait_until
from tests.support.platform import start_platform
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.e2e

PROM_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "herald.json"
PROMQL_WORDS = {"sum", "by", "rate", "increase", "delta", "and", "or", "unless", "histogram_quantile",
                "clamp_min", "le", "without", "on", "ignoring", "count", "max", "min", "avg"}


def declared(text: str) -> set[str]:
    """Metric names a /metrics page declares (with a family's sample suffixes)."""
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)", text, re.M):
        name, kind = m.groups()
        names.add(name)
        if kind == "counter":
            names |= {name + "_total", name.removesuffix("_total") + "_total"}
        if kind == "histogram":
            names |= {name + s for s in ("_bucket", "_sum", "_count")}
    return names


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|\$\w+", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS and ("_" in w or w == "up")}


def exprs_of_dashboard() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", []) if "expr" in t]


def exprs_of_rules() -> list[str]:
    doc = yaml.safe_load((PROM_DIR / "rules.yml").read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


@pytest.fixture
def prometheus_bin() -> str:
    subprocess.run([str(PROM_DIR / "prometheus.sh"), "ensure"], check=True)
    path = shutil.which("prometheus")
    assert path, "deploy/prometheus/prometheus.sh ensure did not install prometheus"
    return path


def test_prometheus_scrapes_the_platform_and_evaluates_herald_rules(cluster_stack, tmp_path, prometheus_bin):
    stack = cluster_stack
    seed_tenant(stack, "acme", keywords=[("INFO", "reply", {"reply_text": "ok"})])
    plat = start_platform(stack, tmp_path)
    env = {"HERALD_CARRIERS_FILE": plat.ingress.env["HERALD_CARRIERS_FILE"]}
    extra = {name: stack.start(f"services.{name}", **env) for name in ("metrics", "bridge")}
    lag_port = free_port()
    stack.start("deploy.prometheus.lag_exporter", port=lag_port, health=False)
    running = {"ingress": plat.ingress, "router": plat.router, "egress": plat.egress, **extra}

    # The shipped configuration, pointed at this run's ports; campaigns is left on a port where
    # nothing answers, so the processor-down rule has something to say.
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROM_DIR / "rules.yml")]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) >= {"ingress", "router", "egress", "campaigns", "verifier", "ledger", "bridge",
                         "metrics", "console", "kafka-lag"}
    for name, job in jobs.items():
        port = running[name].port if name in running else lag_port if name == "kafka-lag" else free_port()
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_port = free_port()
    prom_log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen([prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=prom_log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        assert plat.mo("prom-1", "+8613800000001", "10690001", "INFO").status_code == 200

        def query(q: str) -> list:
            r = httpx.get(f"{api}/query", params={"query": q}, timeout=5).json()
            return r["data"]["result"]

        got = wait_until(lambda: query('herald_http_requests_total{job="ingress",route="mo"}'), 60, 0.5,
                         "ingress's MO counter in Prometheus")
        assert float(got[0]["value"][1]) >= 1
        wait_until(lambda: query('kafka_consumergroup_lag{consumergroup=~".*herald-router"}'), 60, 0.5,
                   "the router's consumer lag in Prometheus")

        def rules() -> dict:
            groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
            return {r["name"]: r for g in groups for r in g["rules"]}

        loaded = wait_until(lambda: (r := rules()) and all(x.get("lastEvaluation", "").startswith("2")
                                                          and x["health"] == "ok" for x in r.values()) and r,
                            60, 0.5, "every rule evaluated and healthy")
        assert set(loaded) == {"HeraldProcessorDown", "HeraldConsumerLagGrowing", "HeraldDlqReceiving",
                               "HeraldCarrierErrors", "HeraldCarrierParking"}
        missing = {"campaigns", "verifier", "ledger", "console"}
        # Each target's first failed scrape comes in its own scrape cycle: wait for all of them.
        down = wait_until(lambda: (a := rules()["HeraldProcessorDown"]["alerts"])
                          and {x["labels"]["job"] for x in a} == missing and a, 90, 0.5,
                          "the processor-down alert for every processor not started")
        assert {a["labels"]["job"] for a in down} == missing
        assert all(a["state"] in ("pending", "firing") for a in down)

        # Every metric the rules and the dashboard use is declared by a running processor.
        pages = "\n".join(httpx.get(f"{p.url}/metrics", timeout=5).text for p in running.values())
        pages += httpx.get(f"http://127.0.0.1:{lag_port}/metrics", timeout=5).text
        have = declared(pages) | {"up"}
        used = {n for e in exprs_of_dashboard() + exprs_of_rules() for n in metric_names(e)}
        assert used and used <= have, sorted(used - have)
    finally:
        prom.terminate()
        prom.wait(20)
        prom_log.close()


def test_metric_names_are_found_in_promql():
    assert metric_names('sum by (le) (rate(herald_x_bucket{a="b"}[5m])) / up') == {"herald_x_bucket", "up"}
