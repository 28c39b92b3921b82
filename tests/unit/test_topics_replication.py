"""Replication settings reach every topic's configs, and every producer is acks=all and idempotent."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from services.core.kafka import PRODUCER_GUARANTEES
from services.core.processor import Processor
from services.core.settings import Settings
from services.core.topics import BY_NAME, Drift, all_specs


def test_every_topic_carries_the_configured_min_insync_replicas():
    s = Settings(topic_replication=3, topic_min_isr=2)
    assert all(spec.broker_configs(s)["min.insync.replicas"] == "2" for spec in all_specs())
    assert BY_NAME["optouts"].broker_configs(s)["cleanup.policy"] == "compact"


def test_min_isr_above_replication_is_refused_at_start():
    with pytest.raises(ValidationError, match="topic_min_isr"):
        Settings(topic_replication=1, topic_min_isr=2)


def test_replication_drift_is_named_with_how_to_fix_it():
    d = Drift("sms.inbound", "replication", "3", "1")
    assert "sms.inbound: replication is 1, catalogue says 3 (NOT fixed" in str(d)
    assert "kafka-reassign-partitions" in str(d)


def test_confluent_producers_cannot_loosen_acks_or_idempotence():
    assert PRODUCER_GUARANTEES == {"acks": "all", "enable.idempotence": True}


def test_faust_producers_are_idempotent_with_acks_all():
    async def make():
        p = Processor("probe", settings=Settings(kafka_bootstrap="127.0.0.1:1"), use_db=False)
        return p.app.producer._new_producer()

    aio = asyncio.run(make())
    assert aio._txn_manager is not None  # aiokafka's idempotence state
    assert aio._sender._acks == -1
