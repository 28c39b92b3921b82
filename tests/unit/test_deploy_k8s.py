"""The reference Kubernetes deployment (deploy/k8s/) validates offline against the Kubernetes
API schemas (kubernetes-validate ships them), and names every processor and every setting."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from services.campaigns.config import CampaignsConfig
from services.core.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
K8S_VERSION = "1.33.0"
PROCESSORS = {"ingress", "router", "egress", "campaigns", "verifier", "ledger", "bridge", "metrics", "console"}
HOT = {"router", "egress", "verifier", "ledger"}  # consumer groups on the busy topics


def documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def core_documents() -> list[dict]:
    """Everything but the Strimzi custom resources (their schemas come with the operator)."""
    return [d for d in documents() if not d["apiVersion"].startswith("kafka.strimzi.io/")]


@pytest.mark.parametrize("doc", core_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates_against_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def deployments() -> dict[str, dict]:
    return {d["metadata"]["name"].removeprefix("herald-"): d for d in documents() if d["kind"] == "Deployment"}


def test_every_processor_has_a_deployment_with_health_probes_and_resources():
    deps = deployments()
    assert set(deps) == PROCESSORS
    for name, dep in deps.items():
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        assert c["command"][-1] == f"services.{name}"
        port = getattr(Settings(), f"{name}_port")
        assert c["ports"][0]["containerPort"] == port
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"]["path"] == "/health", (name, probe)
        assert c["resources"]["requests"] and c["resources"]["limits"]
        assert {"configMapRef": {"name": "herald-settings"}} in c["envFrom"]


def test_hot_processors_run_two_workers_and_scale_by_consumer_lag():
    deps = deployments()
    hpas = {d["spec"]["scaleTargetRef"]["name"].removeprefix("herald-"): d for d in documents()
            if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == HOT
    for name, hpa in hpas.items():
        assert deps[name]["spec"]["replicas"] >= 2 and hpa["spec"]["minReplicas"] >= 2
        (metric,) = hpa["spec"]["metrics"]
        assert metric["external"]["metric"]["name"] == "kafka_consumergroup_lag"
        assert metric["external"]["metric"]["selector"]["matchLabels"]["consumergroup"] == f"herald-{name}"


def test_every_setting_appears_in_the_settings_or_the_secret():
    env: set[str] = set()
    for d in documents():
        if d["kind"] in ("ConfigMap", "Secret") and d["metadata"]["name"] in ("herald-settings", "herald-secrets"):
            env |= set(d.get("data") or {}) | set(d.get("stringData") or {})
    wanted = {f"HERALD_{n.upper()}" for n in Settings.model_fields}
    wanted |= {f"HERALD_CAMPAIGNS_{n.upper()}" for n in CampaignsConfig.model_fields}
    assert not wanted - env, sorted(wanted - env)
    assert not {e for e in env if e.startswith("HERALD_")} - wanted, "a setting the code no longer has"


def test_the_cluster_settings_replicate_three_ways_and_the_brokers_agree():
    (cm,) = [d for d in documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "herald-settings"]
    assert cm["data"]["HERALD_TOPIC_REPLICATION"] == "3" and cm["data"]["HERALD_TOPIC_MIN_ISR"] == "2"
    assert cm["data"]["HERALD_WEB_HOST"] == "0.0.0.0"
    Settings(**{k.removeprefix("HERALD_").lower(): v for k, v in cm["data"].items()
                if k.removeprefix("HERALD_").lower() in Settings.model_fields})  # valid as a whole
    (kafka,) = [d for d in documents() if d["kind"] == "Kafka"]
    cfg = kafka["spec"]["kafka"]["config"]
    assert cfg["default.replication.factor"] == 3 and cfg["min.insync.replicas"] == 2
    (pool,) = [d for d in documents() if d["kind"] == "KafkaNodePool"]
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"broker", "controller"}
