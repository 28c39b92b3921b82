"""The three-node KRaft cluster (deploy/kafka/cluster.sh), started on empty storage by the test
run itself on its own ports, and stacks whose topics are replicated three ways on it."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from tests.support.infra import ROOT, Stack, wait_until

CLUSTER_SH = ROOT / "deploy" / "kafka" / "cluster.sh"
BASE_PORT = int(os.environ.get("HERALD_TEST_CLUSTER_BASE_PORT", "19350"))


class Cluster:
    """Three combined broker+controller nodes; node N answers on BASE+N."""

    def __init__(self, base_port: int) -> None:
        self.base_port = base_port
        self.data_dir = ROOT / ".run" / f"test-cluster-{base_port}"
        self.env = {**os.environ, "CLUSTER_BASE_PORT": str(base_port), "CLUSTER_DATA_DIR": str(self.data_dir)}
        self.bootstrap = ",".join(f"127.0.0.1:{base_port + n}" for n in (1, 2, 3))

    def sh(self, *args: str) -> None:
        subprocess.run([str(CLUSTER_SH), *args], check=True, env=self.env)

    def start(self) -> None:
        self.sh("wipe")
        self.sh("start")

    def stop(self) -> None:
        subprocess.run([str(CLUSTER_SH), "stop"], check=False, env=self.env)

    def kill(self, node: int) -> None:
        self.sh("kill", str(node))

    def start_node(self, node: int) -> None:
        self.sh("start-node", str(node))

    def pid(self, node: int) -> int:
        return int((self.data_dir / f"node{node}" / "broker.pid").read_text())

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def partitions(self, topic: str) -> dict[int, Any]:
        return self.admin().list_topics(topic, timeout=5).topics[topic].partitions

    def configs(self, topic: str) -> dict[str, str]:
        """The topic's configuration as the cluster reports it (its own and the brokers' defaults)."""
        res, admin = ConfigResource(ConfigResource.Type.TOPIC, topic), self.admin()
        # the client is held until the answer is in: one collected before it ends the request
        return {k: v.value for k, v in admin.describe_configs([res])[res].result().items()}

    def wait_in_sync(self, topics: list[str], timeout: float = 120.0) -> None:
        """Until every partition of these topics has all three replicas in sync."""
        def all_in() -> bool:
            md = self.admin().list_topics(timeout=5).topics
            return all(len(p.isrs) == 3 for t in topics for p in md[t].partitions.values())

        wait_until(all_in, timeout, 0.5, f"all replicas of {len(topics)} topics back in sync")

    def wait_quorum(self, timeout: float = 60.0) -> None:
        wait_until(lambda: len(self.admin().list_topics(timeout=5).brokers) == 3, timeout, 0.5,
                   "three brokers in the cluster's metadata")


class ClusterStack(Stack):
    """A stack whose topics (and every process's settings) say replication 3, min ISR 2."""

    REPLICATION = {"HERALD_TOPIC_REPLICATION": "3", "HERALD_TOPIC_MIN_ISR": "2"}

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{**self.REPLICATION, **extra})

    def settings(self, **overrides: Any):
        return super().settings(**{"topic_replication": 3, "topic_min_isr": 2, **overrides})


@pytest.fixture(scope="session")
def cluster():
    c = Cluster(BASE_PORT)
    c.start()
    c.wait_quorum()
    yield c
    if not os.environ.get("HERALD_TEST_KEEP_BROKER"):
        c.stop()


@pytest.fixture
def cluster_stack(cluster, tmp_path_factory):
    """A migrated SQLite database and the catalogue's topics, replicated three ways."""
    from services.core.db.migrate import upgrade
    from services.core.topics import ensure_topics

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'herald.db'}"
    upgrade(url)
    s = ClusterStack(cluster.bootstrap, url)
    ensure_topics(s.settings())
    yield s
    s.stop_all()
