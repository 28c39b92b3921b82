"""Kafka over TLS: the ACL'd broker of deploy/kafka/acl/ with a SASL_SSL listener besides its
SASL_PLAINTEXT one, its certificate signed by a CA this test makes (tests/support/tls.py).
Ingress and the router (confluent clients), given only the TLS listener and the CA
(HERALD_KAFKA_SSL_CA), carry a text from the carrier webhook to the router's reply on
sms.outbound, and a Faust app (campaigns) dead-letters a bad record there; a client that does not
trust the CA, or that speaks plaintext to the TLS port, is refused. Tenant users on the TLS
listener are confined to their own topics (the Kafka door of the isolation table)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.core.carriers import sign
from services.core.db.migrate import upgrade
from services.core.messages import message_id_for
from services.core.settings import Settings
from services.core.topics import TopicSpec, ensure_topics, tenant_topics
from services.ingress.domain import mo_message_id
from tests.security.isolation_table import Table
from tests.support.infra import ROOT, Stack, free_port, wait_until
from tests.support.seed import seed_tenant
from tests.support.tls import make_pki

pytestmark = pytest.mark.integration

SECURE = ROOT / "deploy" / "kafka" / "acl" / "secure-broker.sh"
ACL = ROOT / "deploy" / "kafka" / "acl" / "herald_acl.py"
ADMIN_PASSWORD = "admin-" + uuid.uuid4().hex[:12]
WEBHOOK_SECRET = "tls-test-webhook-secret"
KAFKA = "tenant Kafka topics"
TABLE = Table("`tests/security/test_kafka_tls.py`")


@pytest.fixture(scope="module", autouse=True)
def table():
    TABLE.covered(KAFKA, "read, write another tenant's topics; a pipeline topic; another's group "
                  "(SASL_PLAINTEXT)", "TOPIC/GROUP_AUTHORIZATION_FAILED; metadata lists only its own",
                  "tests/integration/test_acl.py::test_one_tenant_cannot_read_or_write_another_tenants_topics")
    TABLE.covered(KAFKA, "a wrong password; a removed tenant's user", "authentication refused",
                  "tests/integration/test_acl.py::test_wrong_passwords_and_removed_tenants_are_refused")
    yield
    TABLE.write()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki):
    """(SASL_PLAINTEXT bootstrap, SASL_SSL bootstrap) of a broker started for this module."""
    port, cport, tls_port = free_port(), free_port(), free_port()
    data = ROOT / ".run" / f"test-kafka-tls-{port}"
    env = {"PATH": os.environ["PATH"], "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(cport),
           "KAFKA_DATA_DIR": str(data), "KAFKA_ADMIN_PASSWORD": ADMIN_PASSWORD, "KAFKA_HEAP": "384m",
           "KAFKA_TLS_PORT": str(tls_port), "KAFKA_TLS_KEYSTORE": str(pki.keystore)}
    subprocess.run([str(SECURE), "start"], check=True, env=env, timeout=180)
    try:
        yield f"127.0.0.1:{port}", f"127.0.0.1:{tls_port}"
    finally:
        subprocess.run([str(SECURE), "stop"], env=env, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


class TlsStack(Stack):
    """A stack whose processes reach the broker over SASL_SSL only, as ``user``; the test's own
    clients (topic creation, reading) as the super user, over SASL_SSL too."""

    def __init__(self, bootstrap: str, database_url: str, ca: str, user: str, password: str) -> None:
        super().__init__(bootstrap, database_url)
        self.ca, self.user, self.password = ca, user, password

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(HERALD_KAFKA_SECURITY_PROTOCOL="SASL_SSL", HERALD_KAFKA_SSL_CA=self.ca,
                           HERALD_KAFKA_USERNAME=self.user, HERALD_KAFKA_PASSWORD=self.password,
                           **extra)

    def settings(self, **overrides: Any) -> Settings:
        return super().settings(kafka_security_protocol="SASL_SSL", kafka_ssl_ca=self.ca,
                                kafka_username="admin", kafka_password=ADMIN_PASSWORD, **overrides)


def list_topics(config: dict) -> dict:
    return AdminClient({**config, "log_level": 0}).list_topics(timeout=4).topics


def test_ingress_the_router_and_a_faust_app_work_over_sasl_ssl_only(tls_broker, pki, tmp_path):
    plain, tls = tls_broker
    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    password = "platform-" + uuid.uuid4().hex[:12]
    stack = TlsStack(tls, url, str(pki.ca), "herald-tls", password)
    done = subprocess.run([sys.executable, str(ACL), "--bootstrap", plain, "--topic-prefix", stack.prefix,
                           "platform", "add", "--user", "herald-tls", "--password", password],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "KAFKA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    assert done.returncode == 0, done.stderr
    settings = stack.settings()
    ensure_topics(settings)
    key = seed_tenant(stack, "acme", number="10690001", help_text="Acme help over TLS.")
    assert key
    carriers = tmp_path / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [{
        "name": "sim", "kind": "http", "submit_url": "http://127.0.0.1:9/submit", "api_token": "t",
        "webhook_auth": "hmac", "webhook_secret": WEBHOOK_SECRET, "prefixes": ["+"], "priority": 10,
        "rate_per_second": 100, "timeout_s": 3}]}))
    try:
        ingress = stack.start("services.ingress", HERALD_CARRIERS_FILE=str(carriers))
        router = stack.start("services.router", HERALD_CARRIERS_FILE=str(carriers))
        raw = json.dumps({"id": "tls-mo-1", "from": "+8613812345678", "to": "10690001",
                          "text": "help"}).encode()
        r = httpx.post(f"{ingress.url}/carriers/sim/mo", content=raw, timeout=15,
                       headers={"X-Herald-Signature": sign(WEBHOOK_SECRET, raw),
                                "Content-Type": "application/json"})
        assert r.status_code == 200, r.text  # answered once the broker acknowledged, over TLS
        reply_id = message_id_for("acme", f"reply-{mo_message_id('sim', 'tls-mo-1')}")
        c = Consumer(settings.kafka_config(**{"group.id": f"t-{uuid.uuid4().hex}",
                                              "auto.offset.reset": "earliest"}))
        c.subscribe([stack.topic("sms.outbound")])
        got: list[dict] = []

        def replied() -> bool:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                got.append(json.loads(msg.value()))
            return any(e["message_id"] == reply_id for e in got)

        wait_until(replied, 90, interval=0.05, what="the router's HELP reply on sms.outbound")
        c.close()
        (reply,) = [e for e in got if e["message_id"] == reply_id]
        assert "Acme help over TLS." in reply["text"] and reply["to"] == "+8613812345678"
        assert ingress.alive() and router.alive()
        # A Faust app (campaigns: aiokafka, with Settings.kafka_ssl_context()) over the same
        # listener: a bad record on its topic comes back on the DLQ, consumed and produced by it.
        campaigns = stack.start("services.campaigns")
        p = Producer(settings.kafka_config())
        p.produce(stack.topic("campaigns.inbound"), b"{not json", key=b"k")
        assert p.flush(15) == 0
        del p  # its connections close now, not after the broker is gone
        dlq = Consumer(settings.kafka_config(**{"group.id": f"t-{uuid.uuid4().hex}",
                                                "auto.offset.reset": "earliest"}))
        dlq.subscribe([stack.topic("campaigns.inbound.dlq")])
        dead: list[dict] = []

        def dead_lettered() -> bool:
            msg = dlq.poll(0.5)
            if msg is not None and not msg.error():
                dead.append(json.loads(msg.value()))
            return bool(dead)

        wait_until(dead_lettered, 90, interval=0.05, what="the bad record in campaigns.inbound.dlq")
        dlq.close()
        assert dead[0]["processor"] == "campaigns" and "JSON" in dead[0]["reason"]
        assert campaigns.alive()
    finally:
        stack.stop_all()
    for proc in (ingress, router, campaigns):
        log = proc.log_path.read_text()
        assert password not in log and ADMIN_PASSWORD not in log


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_broker, pki, tmp_path):
    _, tls = tls_broker
    sasl = {"bootstrap.servers": tls, "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": "admin", "sasl.password": ADMIN_PASSWORD}
    # Trusting the test CA, the super user is in.
    assert list_topics({**sasl, "ssl.ca.location": str(pki.ca)}) is not None
    # No CA given (the system's store does not know ours): the handshake fails.
    with pytest.raises(KafkaException):
        list_topics(sasl)
    # A CA of someone else's making: refused too.
    other = make_pki(tmp_path / "other")
    with pytest.raises(KafkaException):
        list_topics({**sasl, "ssl.ca.location": str(other.ca)})
    # Plaintext SASL to the TLS port gets nowhere.
    with pytest.raises(KafkaException):
        list_topics({**sasl, "security.protocol": "SASL_PLAINTEXT"})
    # The Faust/aiokafka side's context refuses the same broker without the CA.
    ctx = Settings(kafka_security_protocol="SASL_SSL").kafka_ssl_context()
    host, port = tls.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(sock, server_hostname=host)
    ok = Settings(kafka_security_protocol="SASL_SSL", kafka_ssl_ca=str(pki.ca)).kafka_ssl_context()
    with socket.create_connection((host, int(port)), timeout=5) as sock, \
            ok.wrap_socket(sock, server_hostname=host) as tls_sock:
        assert tls_sock.version() in ("TLSv1.2", "TLSv1.3")


def test_over_tls_a_tenant_user_is_confined_to_its_own_topics(tls_broker, pki):
    """herald_acl.py adds the tenants over the TLS listener too (--ca)."""
    _, tls = tls_broker
    env = {"PATH": os.environ["PATH"], "KAFKA_ADMIN_PASSWORD": ADMIN_PASSWORD}
    for tenant in ("tlsa", "tlsb"):
        done = subprocess.run([sys.executable, str(ACL), "--bootstrap", tls, "--ca", str(pki.ca),
                               "tenant", "add", tenant, "--password", f"{tenant}-pw-{ADMIN_PASSWORD}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
    admin = Settings(kafka_bootstrap=tls, kafka_security_protocol="SASL_SSL", kafka_ssl_ca=str(pki.ca),
                     kafka_username="admin", kafka_password=ADMIN_PASSWORD)

    a = AdminClient(admin.kafka_config())
    specs = [*tenant_topics("tlsa"), *tenant_topics("tlsb"), TopicSpec("tls.pipeline", "k", "pipeline")]
    for f in a.create_topics([NewTopic(s.name, num_partitions=1, replication_factor=1) for s in specs]).values():
        f.result(30)
    p = Producer(admin.kafka_config())
    p.produce("tenant.tlsa.inbound", b'{"for": "tlsa"}')
    assert p.flush(15) == 0
    del p
    b = {**admin.kafka_config(), "sasl.username": "tenant-tlsb", "sasl.password": f"tlsb-pw-{ADMIN_PASSWORD}"}

    def read(topic: str, group: str) -> str | None:
        c = Consumer({**b, "group.id": group, "auto.offset.reset": "earliest"})
        try:
            c.subscribe([topic])
            for _ in range(50):
                msg = c.poll(0.2)
                if msg is not None:
                    assert not (msg.error() is None and b"tlsa" in msg.value()), "B read A's record"
                    if msg.error():
                        return msg.error().name()
            return None
        finally:
            c.close()

    def write(topic: str) -> str | None:
        errors: list[str] = []
        prod = Producer({**b, "message.timeout.ms": 10000})
        prod.produce(topic, b"{}", on_delivery=lambda err, _m: errors.append(err.name() if err else ""))
        prod.flush(15)
        del prod
        return errors[0] or None if errors else "no delivery report"

    def read_a() -> str:
        got = read("tenant.tlsa.inbound", "tenant.tlsb.spy")
        assert got == "TOPIC_AUTHORIZATION_FAILED", got
        return got

    TABLE.attempt(KAFKA, "read A's inbound topic over SASL_SSL", "TOPIC_AUTHORIZATION_FAILED, no record", read_a)

    def write_a() -> str:
        got = write("tenant.tlsa.outbound")
        assert got == "TOPIC_AUTHORIZATION_FAILED", got
        return got

    TABLE.attempt(KAFKA, "write A's outbound topic over SASL_SSL", "TOPIC_AUTHORIZATION_FAILED", write_a)

    def write_pipeline() -> str:
        got = write("tls.pipeline")
        assert got == "TOPIC_AUTHORIZATION_FAILED", got
        return got

    TABLE.attempt(KAFKA, "write a pipeline topic over SASL_SSL", "TOPIC_AUTHORIZATION_FAILED", write_pipeline)

    def a_group() -> str:
        got = read("tenant.tlsb.inbound", "tenant.tlsa.erp")
        assert got == "GROUP_AUTHORIZATION_FAILED", got
        return got

    TABLE.attempt(KAFKA, "join A's consumer group over SASL_SSL", "GROUP_AUTHORIZATION_FAILED", a_group)

    def metadata() -> str:
        visible = set(list_topics(b))
        assert visible == {f"tenant.tlsb.{k}" for k in ("outbound", "inbound", "status", "dlq")}, visible
        return "B's 4 topics only"

    TABLE.attempt(KAFKA, "list the broker's topics over SASL_SSL", "only B's own", metadata)
