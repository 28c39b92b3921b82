"""Consumer lag of Herald's consumer groups for Prometheus, where no Kafka exporter runs (a VM
install, the local cluster). Serves ``kafka_consumergroup_lag{consumergroup,topic,partition}``:
the same name and labels as Strimzi's Kafka Exporter, so deploy/prometheus/rules.yml and the
Kubernetes scaling guidance read either.

    python -m deploy.prometheus.lag_exporter --port 9308   (HERALD_KAFKA_BOOTSTRAP etc. as usual;
    the port also from HERALD_LAG_EXPORTER_PORT)

Lag is computed on each scrape: log end offset minus the group's committed offset, per partition.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.core.settings import get_settings  # noqa: E402


class LagCollector:
    def __init__(self, admin: AdminClient, group_prefix: str, timeout: float = 10.0) -> None:
        self.admin, self.group_prefix, self.timeout = admin, group_prefix, timeout

    def lags(self) -> list[tuple[str, str, int, int]]:
        listing = self.admin.list_consumer_groups(request_timeout=self.timeout).result()
        groups = sorted(g.group_id for g in listing.valid if g.group_id.startswith(self.group_prefix))
        committed: dict[tuple[str, str, int], int] = {}
        for group in groups:
            fut = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
            for tp in fut.result().topic_partitions:
                if tp.offset >= 0:
                    committed[(group, tp.topic, tp.partition)] = tp.offset
        if not committed:
            return []
        wanted = {TopicPartition(t, p): OffsetSpec.latest() for _g, t, p in committed}
        ends = {(tp.topic, tp.partition): f.result().offset
                for tp, f in self.admin.list_offsets(wanted, request_timeout=self.timeout).items()}
        return [(g, t, p, max(0, ends[(t, p)] - off)) for (g, t, p), off in sorted(committed.items())
                if (t, p) in ends]

    def collect(self):
        gauge = GaugeMetricFamily("kafka_consumergroup_lag", "Records not yet consumed by the group",
                                  labels=["consumergroup", "topic", "partition"])
        for group, topic, partition, lag in self.lags():
            gauge.add_metric([group, topic, str(partition)], lag)
        yield gauge


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=int(os.environ.get("HERALD_LAG_EXPORTER_PORT", "9308")))
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args(argv)
    s = get_settings()
    REGISTRY.register(LagCollector(AdminClient(s.kafka_config()), f"{s.topic_prefix}herald-"))
    start_http_server(args.port, addr=args.bind)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
