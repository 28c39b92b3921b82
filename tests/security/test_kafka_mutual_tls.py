"""The development broker (deploy/kafka/kafka.sh, no SASL) with an SSL listener that requires a
client certificate (KAFKA_TLS_TRUSTSTORE, KAFKA_TLS_CLIENT_AUTH=required): Herald's settings for
plain SSL with a client certificate (HERALD_KAFKA_SSL_CA/_CERT/_KEY) reach it from both client
stacks; without the certificate, or without the CA, the broker is out of reach."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from services.core.settings import Settings
from tests.support.infra import KAFKA_SH, ROOT, free_port
from tests.support.tls import make_pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ssl_broker(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("mtls"))
    port, cport, tls_port = free_port(), free_port(), free_port()
    data = ROOT / ".run" / f"test-kafka-mtls-{port}"
    env = {"PATH": os.environ["PATH"], "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(cport),
           "KAFKA_DATA_DIR": str(data), "KAFKA_HEAP": "384m", "KAFKA_TLS_PORT": str(tls_port),
           "KAFKA_TLS_KEYSTORE": str(pki.keystore), "KAFKA_TLS_TRUSTSTORE": str(pki.ca),
           "KAFKA_TLS_CLIENT_AUTH": "required"}
    subprocess.run([str(KAFKA_SH), "start"], check=True, env=env, timeout=180)
    try:
        yield f"127.0.0.1:{tls_port}", pki
    finally:
        subprocess.run([str(KAFKA_SH), "stop"], env=env, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def reaches(settings: Settings) -> bool:
    try:
        AdminClient({**settings.kafka_config(), "log_level": 0}).list_topics(timeout=4)
        return True
    except KafkaException:
        return False


def test_plain_ssl_with_a_client_certificate_reaches_the_broker_and_nothing_less_does(ssl_broker):
    bootstrap, pki = ssl_broker
    full = Settings(kafka_bootstrap=bootstrap, kafka_security_protocol="SSL", kafka_ssl_ca=str(pki.ca),
                    kafka_ssl_cert=str(pki.cert), kafka_ssl_key=str(pki.key))
    assert full.kafka_config()["security.protocol"] == "SSL" and "sasl.username" not in full.kafka_config()
    assert reaches(full)
    assert not reaches(full.model_copy(update={"kafka_ssl_cert": "", "kafka_ssl_key": ""}))  # no cert
    assert not reaches(full.model_copy(update={"kafka_ssl_ca": ""}))  # the system's CAs: not ours
    # The Faust/aiokafka side's context: the handshake completes only with the certificate
    # (TLS 1.3 reports a missing one on the first read, so send a byte and read).
    host, port = bootstrap.split(":")
    for settings, ok in ((full, True), (full.model_copy(update={"kafka_ssl_cert": "", "kafka_ssl_key": ""}), False)):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            try:
                with settings.kafka_ssl_context().wrap_socket(raw, server_hostname=host) as s:
                    s.sendall(b"\x00\x00\x00\x00")  # an empty Kafka frame: the broker closes it
                    s.recv(1)
                accepted = True
            except ssl.SSLError:
                accepted = False
            except OSError:  # the broker hung up after a completed handshake
                accepted = True
        assert accepted is ok, settings.kafka_ssl_cert
