"""Kafka ACLs confine each ERP to its own topics, on a real broker with SASL/SCRAM and the
StandardAuthorizer on (deploy/kafka/acl/), started on its own ports for this test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from services.core.topics import TopicSpec, tenant_topics
from tests.support.infra import ROOT, free_port

pytestmark = pytest.mark.integration

SECURE = ROOT / "deploy" / "kafka" / "acl" / "secure-broker.sh"
ACL = ROOT / "deploy" / "kafka" / "acl" / "herald_acl.py"
ADMIN_PASSWORD = "admin-" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    port, cport = free_port(), free_port()
    data = ROOT / ".run" / f"test-kafka-secure-{port}"
    env = {"PATH": __import__("os").environ["PATH"], "KAFKA_PORT": str(port),
           "KAFKA_CONTROLLER_PORT": str(cport), "KAFKA_DATA_DIR": str(data),
           "KAFKA_ADMIN_PASSWORD": ADMIN_PASSWORD, "KAFKA_HEAP": "384m"}
    subprocess.run([str(SECURE), "start"], check=True, env=env, timeout=180)
    bootstrap = f"127.0.0.1:{port}"
    try:
        yield bootstrap
    finally:
        subprocess.run([str(SECURE), "stop"], env=env, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def sasl(user: str, password: str) -> dict:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": user, "sasl.password": password}


def acl(bootstrap: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ACL), "--bootstrap", bootstrap, *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": __import__("os").environ["PATH"],
                               "KAFKA_ADMIN_PASSWORD": ADMIN_PASSWORD})


def create_topics(bootstrap: str, specs: list[TopicSpec]) -> None:
    from confluent_kafka.admin import NewTopic

    a = AdminClient({"bootstrap.servers": bootstrap, **sasl("admin", ADMIN_PASSWORD)})
    futs = a.create_topics([NewTopic(s.name, num_partitions=1, replication_factor=1) for s in specs])
    for f in futs.values():
        f.result(30)


def read_one(bootstrap: str, creds: dict, topic: str, group: str) -> tuple[bytes | None, str | None]:
    """(first value, or None; error code name, or None) reading ``topic`` as ``creds``."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **creds})
    try:
        c.subscribe([topic])
        for _ in range(75):
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                return None, msg.error().name()
            return msg.value(), None
        return None, None
    finally:
        c.close()


def write(bootstrap: str, creds: dict, topic: str, value: bytes) -> str | None:
    """None if the broker acknowledged the record, else the error's name."""
    errors: list[str] = []
    p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000, **creds})
    p.produce(topic, value, on_delivery=lambda err, _m: errors.append(err.name() if err else ""))
    p.flush(15)
    return errors[0] or None if errors else "no delivery report"


def test_one_tenant_cannot_read_or_write_another_tenants_topics(secure_broker):
    b = secure_broker
    create_topics(b, [*tenant_topics("acme"), *tenant_topics("beta"),
                      TopicSpec("sms.outbound", "recipient", "pipeline")])
    for tenant in ("acme", "beta"):
        r = acl(b, "tenant", "add", tenant, "--password", f"{tenant}-pw")
        assert r.returncode == 0, r.stderr
    admin = sasl("admin", ADMIN_PASSWORD)
    for tenant in ("acme", "beta"):
        assert write(b, admin, f"tenant.{tenant}.inbound", json.dumps({"for": tenant}).encode()) is None
    acme, beta = sasl("tenant-acme", "acme-pw"), sasl("tenant-beta", "beta-pw")

    # Its own: it reads its inbound (in a group named after it) and writes its outbound.
    value, err = read_one(b, acme, "tenant.acme.inbound", "tenant.acme.erp")
    assert err is None and json.loads(value) == {"for": "acme"}
    assert write(b, acme, "tenant.acme.outbound", b'{"request_id":"r1"}') is None

    # Another's: no reading beta's inbound, no writing beta's outbound or the pipeline's topics.
    value, err = read_one(b, acme, "tenant.beta.inbound", "tenant.acme.spy")
    assert value is None and err == "TOPIC_AUTHORIZATION_FAILED"
    assert write(b, acme, "tenant.beta.outbound", b"{}") == "TOPIC_AUTHORIZATION_FAILED"
    assert write(b, acme, "sms.outbound", b"{}") == "TOPIC_AUTHORIZATION_FAILED"
    assert write(b, acme, "tenant.acme.inbound", b"{}") == "TOPIC_AUTHORIZATION_FAILED"
    # Nor a consumer group outside its own names.
    value, err = read_one(b, acme, "tenant.acme.inbound", "tenant.beta.erp")
    assert value is None and err == "GROUP_AUTHORIZATION_FAILED"
    # Metadata shows it only its own topics.
    visible = set(AdminClient({"bootstrap.servers": b, **acme}).list_topics(timeout=10).topics)
    assert visible == {f"tenant.acme.{k}" for k in ("outbound", "inbound", "status", "dlq")}
    # And beta, symmetrically, reads its own and not acme's.
    value, err = read_one(b, beta, "tenant.beta.inbound", "tenant.beta.erp")
    assert json.loads(value) == {"for": "beta"}
    assert read_one(b, beta, "tenant.acme.inbound", "tenant.beta.x")[1] == "TOPIC_AUTHORIZATION_FAILED"


def test_wrong_passwords_and_removed_tenants_are_refused(secure_broker):
    b = secure_broker
    with pytest.raises(KafkaException) as exc:
        AdminClient({"bootstrap.servers": b, **sasl("tenant-acme", "wrong")}).list_topics(timeout=5)
    assert exc.value.args[0].code() in (KafkaError._AUTHENTICATION, KafkaError._TRANSPORT,
                                        KafkaError._TIMED_OUT)
    r = acl(b, "tenant", "add", "gamma", "--password", "gamma-pw")
    assert r.returncode == 0, r.stderr
    create_topics(b, list(tenant_topics("gamma")))
    gamma = sasl("tenant-gamma", "gamma-pw")
    assert write(b, gamma, "tenant.gamma.outbound", b"{}") is None
    listed = acl(b, "list", "--principal", "User:tenant-gamma")
    assert "tenant.gamma.outbound" in listed.stdout and "WRITE" in listed.stdout
    assert acl(b, "tenant", "remove", "gamma").returncode == 0
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": b, **gamma}).list_topics(timeout=5)


def test_herald_processors_log_in_to_a_sasl_broker_with_their_own_user(secure_broker, tmp_path):
    """A processor given HERALD_KAFKA_* credentials of the platform user that herald_acl.py sets
    up consumes and produces through the SCRAM listener (Faust/aiokafka and confluent clients
    alike) within its ACLs, and never logs the password."""
    from services.core.db.migrate import upgrade
    from services.core.settings import Settings
    from services.core.topics import ensure_topics
    from tests.support.infra import Stack, wait_until

    stack = Stack(secure_broker, f"sqlite:///{tmp_path / 'h.db'}")
    # The processors' own user, confined to this run's topics and groups (deploy/kafka/acl/).
    password = "platform-" + uuid.uuid4().hex[:12]
    done = acl(secure_broker, "--topic-prefix", stack.prefix, "platform", "add", "--user", "herald-test",
               "--password", password)
    assert done.returncode == 0, done.stderr
    creds = {"HERALD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "HERALD_KAFKA_USERNAME": "herald-test",
             "HERALD_KAFKA_PASSWORD": password}
    settings = Settings(kafka_bootstrap=secure_broker, topic_prefix=stack.prefix,
                        kafka_security_protocol="SASL_PLAINTEXT", kafka_username="admin",
                        kafka_password=ADMIN_PASSWORD)
    assert ADMIN_PASSWORD not in repr(settings)
    with pytest.raises(KafkaException):  # the listener takes no client without SASL
        AdminClient({"bootstrap.servers": secure_broker}).list_topics(timeout=3)
    ensure_topics(settings)  # through SASL too: returns once they are visible
    upgrade(stack.database_url)
    router = stack.start("services.router", **creds)  # /health: broker (SASL) and database ok
    try:
        p = Producer({"bootstrap.servers": secure_broker, **sasl("admin", ADMIN_PASSWORD)})
        p.produce(stack.topic("sms.inbound"), b"{not json", key=b"k")
        assert p.flush(15) == 0
        c = Consumer({"bootstrap.servers": secure_broker, **sasl("admin", ADMIN_PASSWORD),
                      "group.id": f"t-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
        c.subscribe([stack.topic("sms.inbound.dlq")])
        got = []

        def dead_lettered() -> bool:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                got.append(json.loads(msg.value()))
            return bool(got)

        wait_until(dead_lettered, 90, interval=0.1, what="the bad record in sms.inbound.dlq")
        c.close()
        assert got[0]["processor"] == "router" and "JSON" in got[0]["reason"]
        assert router.alive()
    finally:
        stack.stop_all()
    assert password not in router.log_path.read_text()
