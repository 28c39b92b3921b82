"""Replicated topics on the three-node cluster: the catalogue's replication and min ISR, drift
named and set back by `make topics`, and producers (confluent-kafka and Faust's aiokafka) whose
writes are refused when only one replica is in sync."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from services.core.kafka import AsyncProducer
from services.core.processor import Processor
from services.core.settings import Settings
from services.core.topics import all_specs, ensure_topics, find_drift, fix_drift
from tests.cluster.conftest import ClusterStack
from tests.support.infra import read_topic, wait_until

pytestmark = pytest.mark.integration


def test_catalogue_topics_have_three_replicas_in_sync_and_min_isr_two(cluster, cluster_stack):
    names = [cluster_stack.topic(s.name) for s in all_specs()]
    cluster.wait_in_sync(names, 30)
    for name in names:
        assert {len(p.replicas) for p in cluster.partitions(name).values()} == {3}, name
    assert cluster.configs(cluster_stack.topic("sms.inbound"))["min.insync.replicas"] == "2"
    assert cluster.configs(cluster_stack.topic("optouts"))["cleanup.policy"] == "compact"
    assert find_drift(cluster_stack.settings()) == []


def test_make_topics_names_drift_sets_configs_back_and_grows_partitions(cluster, tmp_path):
    stack = ClusterStack(cluster.bootstrap, f"sqlite:///{tmp_path / 'x.db'}")
    ensure_topics(stack.settings(topic_replication=1, topic_min_isr=1, topic_partitions=2))
    inbound = stack.topic("sms.inbound")
    res = ConfigResource(ConfigResource.Type.TOPIC, stack.topic("sms.status"), incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    admin = cluster.admin()
    admin.incremental_alter_configs([res])[res].result()
    wait_until(lambda: cluster.configs(stack.topic("sms.status"))["retention.ms"] == "1000", 10,
               what="the altered retention visible")

    drift = {(d.topic, d.what): d for d in find_drift(stack.settings(topic_partitions=3))}
    assert drift[(inbound, "replication")].have == "1" and drift[(inbound, "replication")].want == "3"
    assert drift[(stack.topic("sms.status"), "retention.ms")].have == "1000"

    ensure_topics(stack.settings(topic_partitions=3))
    fixed = fix_drift(list(drift.values()), stack.settings())
    assert all(d.fixed for d in fixed if d.what == "retention.ms")
    wait_until(lambda: cluster.configs(stack.topic("sms.status"))["retention.ms"] != "1000", 10,
               what="the catalogue's retention back")
    # Replication needs a reassignment, and min ISR 2 on a one-replica topic would refuse every
    # write: both are named and left for the operator.
    assert not any(d.fixed for d in fixed if d.what in ("replication", "min.insync.replicas"))
    assert cluster.configs(stack.topic("sms.status"))["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert len(cluster.partitions(inbound)) == 3
    assert {d.what for d in find_drift(stack.settings())} == {"replication", "min.insync.replicas"}


@pytest.fixture
def two_replica_topic(cluster):
    """A topic on nodes 2 and 3 only, min ISR 2, with node 3 killed: one replica in sync."""
    topic = f"isr-probe-{uuid.uuid4().hex[:6]}"
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[2, 3]],
                                  config={"min.insync.replicas": "2"})])[topic].result()
    wait_until(lambda: len(cluster.partitions(topic)[0].isrs) == 2, 30, what="both replicas in sync")
    cluster.kill(3)
    try:
        wait_until(lambda: cluster.partitions(topic)[0].isrs == [2], 30, 0.2, "ISR shrunk to node 2")
        yield topic
    finally:
        cluster.start_node(3)
    wait_until(lambda: len(cluster.partitions(topic)[0].isrs) == 2, 60, 0.5, "node 3 back in the ISR")


def test_a_write_is_refused_when_only_one_replica_is_in_sync(cluster, two_replica_topic, caplog):
    topic = two_replica_topic
    settings = Settings(kafka_bootstrap=cluster.bootstrap, topic_replication=3, topic_min_isr=2)

    # acks=1 would take it: the leader is up. That is what acks=all must not do.
    loose = Producer({"bootstrap.servers": cluster.bootstrap, "acks": 1})
    errors: list = []
    loose.produce(topic, b"acks=1", on_delivery=lambda err, msg: errors.append(err))
    loose.flush(10)
    assert errors == [None]

    async def confluent_write() -> None:
        p = AsyncProducer(settings, **{"message.timeout.ms": 4000, "acks": 1})  # acks cannot be loosened
        try:
            await p.send_raw(topic, b"acks=all")
        finally:
            p.close(1)

    with pytest.raises(KafkaException) as refused:
        asyncio.run(confluent_write())
    assert refused.value.args[0].code() in (KafkaError.NOT_ENOUGH_REPLICAS, KafkaError._MSG_TIMED_OUT)

    async def faust_write_waits_for_the_replica() -> None:
        proc = Processor("probe", settings=settings, use_db=False)
        aio = proc.app.producer._new_producer()
        await aio.start()
        try:
            pending = asyncio.ensure_future(aio.send_and_wait(topic, b"faust acks=all"))
            await asyncio.sleep(0)  # let the send start before the first poll
            deadline = asyncio.get_running_loop().time() + 30
            while "NotEnoughReplicasError" not in caplog.text:
                assert not pending.done(), "the Faust producer's write was taken with one replica in sync"
                assert asyncio.get_running_loop().time() < deadline, "no NOT_ENOUGH_REPLICAS refusal seen"
                await asyncio.sleep(0.1)
            assert not pending.done()
            # With the follower back, the same write (retried, idempotent) is taken once.
            await asyncio.to_thread(cluster.start_node, 3)
            await asyncio.wait_for(pending, 90)
        finally:
            await aio.stop()

    asyncio.run(faust_write_waits_for_the_replica())
    records = read_topic(cluster.bootstrap, topic, decode_json=False, timeout=10,
                         until=lambda rs: len(rs) >= 2)
    assert sorted(m.value() for m in records) == [b"acks=1", b"faust acks=all"]
