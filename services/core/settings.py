"""One typed settings object for every Herald process.

Every field has a default that works on a fresh machine (local broker, SQLite file) and can be
overridden from the environment with the ``HERALD_`` prefix, e.g. ``HERALD_KAFKA_BOOTSTRAP``.
``python -m services.core.settings`` prints the table the README carries.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers (host:port,...)")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How processors reach the broker (SASL_*: the user below; *SSL: over TLS)")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-256", description="SASL mechanism when the protocol is SASL_*")
    kafka_username: str = Field("", description="SASL user of Herald's processors")
    kafka_password: SecretStr = Field(SecretStr(""), description="SASL password (never logged)")
    kafka_ssl_ca: str = Field(
        "", description="CA file (PEM) of the broker's certificate (SSL, SASL_SSL); empty: system CAs")
    kafka_ssl_cert: str = Field(
        "", description="Client certificate (PEM) for a broker that asks for one (mutual TLS); optional")
    kafka_ssl_key: str = Field("", description="Private key (PEM) of HERALD_KAFKA_SSL_CERT")
    topic_partitions: int = Field(3, ge=1, description="Partitions of each pipeline topic when created")
    topic_prefix: str = Field("", description="Prefix for every topic name (lets test runs share a broker)")
    topic_replication: int = Field(
        1, ge=1, description="Replicas of each topic (1 on one broker, 3 on a cluster)")
    topic_min_isr: int = Field(
        1, ge=1, description="min.insync.replicas of each topic (2 on a cluster): copies a write needs")
    database_url: str = Field(
        "sqlite:///.run/herald.db",
        description="SQLAlchemy URL of the system-of-record database (PostgreSQL in production)",
    )
    web_host: str = Field("127.0.0.1", description="Address the processors' HTTP servers bind to")
    tls_cert: str = Field(
        "", description="Certificate chain (PEM): ingress and the console serve HTTPS only; empty: HTTP")
    tls_key: str = Field("", description="Private key (PEM) of HERALD_TLS_CERT")
    ingress_port: int = Field(8080, description="Port of ingress (webhooks, send API, /health, /metrics)")
    router_port: int = Field(8081, description="Port of the router's /health and /metrics")
    egress_port: int = Field(8082, description="Port of egress's /health and /metrics")
    campaigns_port: int = Field(8083, description="Port of campaigns' /health and /metrics")
    verifier_port: int = Field(8084, description="Port of the verifier's /health and /metrics")
    ledger_port: int = Field(8085, description="Port of the ledger's /health and /metrics")
    bridge_port: int = Field(8086, description="Port of the bridge's /health and /metrics")
    metrics_port: int = Field(8087, description="Port of the metrics processor's /health and /metrics")
    console_port: int = Field(
        8088, description="Port of the console: web program, admin API, /health, /metrics")
    console_session_hours: float = Field(12.0, gt=0, description="How long a console sign-in lasts")
    console_secure_cookies: bool = Field(
        False, description="Mark console cookies Secure (behind an HTTPS proxy; on with HERALD_TLS_CERT)")
    console_max_failed_logins: int = Field(
        5, ge=1, description="Wrong passwords in a row before a console account is locked")
    console_lockout_minutes: float = Field(
        15.0, gt=0, description="How long a locked console account stays locked")
    stack_state_file: str = Field(
        ".run/stack.json", description="The supervisor's process state the console's operator page shows")
    bridge_topic_refresh_ms: int = Field(
        5000, ge=100, description="How often the bridge looks for new tenant topics (ms)")
    bridge_reply_wait_s: float = Field(
        10.0, ge=0, description="How long an ERP reply waits for its inbound message to be recorded")
    bridge_inbound_retention_days: int = Field(
        30, ge=1, description="How long inbound messages can be replied to by id")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook POST")
    webhook_backoff_base_s: float = Field(
        5.0, gt=0, description="First webhook retry delay; doubles each attempt")
    webhook_backoff_max_s: float = Field(3600.0, gt=0, description="Longest delay between webhook retries")
    webhook_max_age_s: float = Field(
        86400.0, gt=0, description="A webhook delivery is retried this long, then marked failed")
    webhook_poll_s: float = Field(0.5, gt=0, description="How often the bridge looks for due webhooks")
    webhook_concurrency: int = Field(16, ge=1, description="Webhook POSTs in flight per bridge worker")
    metrics_grace_s: float = Field(
        5.0, ge=0, description="Seconds after a window ends before it is published (late events republish)")
    metrics_flush_s: float = Field(1.0, gt=0, description="How often closed metric windows are published")
    metrics_regions_file: str = Field(
        "", description="JSON {number prefix: region} for verification metrics; empty: country codes")
    log_level: str = Field("info", description="Log level: debug, info, warn, error")
    secret_key: str = Field(
        "dev-only-change-me",
        description="Key for HMACs of codes and encryption of secrets at rest; set it in production",
    )
    api_rate_per_second: float = Field(200.0, gt=0, description="Send-API requests per second per tenant")
    api_rate_burst: int = Field(400, ge=1, description="Send-API burst size per tenant")
    api_key_rate_per_second: float = Field(
        100.0, gt=0, description="Requests per second per API key on ingress's and the console's /v1")
    api_key_rate_burst: int = Field(200, ge=1, description="Burst of requests per API key on /v1")
    carriers_file: str = Field(
        "deploy/carriers.json", description="JSON file declaring carriers, routes and their secrets"
    )
    egress_max_attempts: int = Field(5, ge=1, description="Submit attempts per try before it is parked")
    egress_backoff_base_ms: int = Field(200, ge=1, description="First retry delay; doubles each attempt")
    egress_validity_s: float = Field(
        86400.0, gt=0, description="How long a message without expires_at may wait for its carriers")
    dlr_match_window_s: int = Field(3600, ge=1, description="How long unmatched DLRs wait for their message")
    commit_interval_s: float = Field(1.0, gt=0, description="How often consumers commit processed offsets")
    session_timeout_s: float = Field(10.0, gt=0, description="Consumer group session timeout")
    topic_wait_s: float = Field(
        120.0, gt=0, description="How long a processor waits at start for its topics to exist")

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.lower()
        if v not in {"debug", "info", "warn", "error", "crit"}:
            raise ValueError("log_level must be one of debug, info, warn, error, crit")
        return v

    @model_validator(mode="after")
    def _isr_within_replication(self) -> Settings:
        if self.topic_min_isr > self.topic_replication:
            raise ValueError(f"topic_min_isr ({self.topic_min_isr}) cannot exceed topic_replication "
                             f"({self.topic_replication}): no write could ever succeed")
        return self

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        for cert, key, what in ((self.tls_cert, self.tls_key, "HERALD_TLS_CERT and HERALD_TLS_KEY"),
                                (self.kafka_ssl_cert, self.kafka_ssl_key,
                                 "HERALD_KAFKA_SSL_CERT and HERALD_KAFKA_SSL_KEY")):
            if bool(cert) != bool(key):
                raise ValueError(f"{what} go together: set both or neither")
        if self.tls_cert:  # served over HTTPS: the console's cookies never travel in clear
            self.console_secure_cookies = True
        return self

    @property
    def kafka_sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL_")

    @property
    def kafka_tls(self) -> bool:
        return self.kafka_security_protocol.endswith("SSL")

    def kafka_config(self, **extra: Any) -> dict[str, Any]:
        """confluent-kafka client settings: the bootstrap servers and, on a SASL broker, the
        credentials; over TLS, the CA (and client certificate) to use. Every confluent client in
        Herald is made from this."""
        cfg: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap}
        if self.kafka_security_protocol != "PLAINTEXT":
            cfg["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl:
            cfg.update({"sasl.mechanism": self.kafka_sasl_mechanism,
                        "sasl.username": self.kafka_username,
                        "sasl.password": self.kafka_password.get_secret_value()})
        if self.kafka_tls:
            # librdkafka checks the broker's name (or IP) against its certificate by default.
            cfg["ssl.endpoint.identification.algorithm"] = "https"
            if self.kafka_ssl_ca:
                cfg["ssl.ca.location"] = self.kafka_ssl_ca
            if self.kafka_ssl_cert:
                cfg.update({"ssl.certificate.location": self.kafka_ssl_cert,
                            "ssl.key.location": self.kafka_ssl_key})
        return cfg | extra

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the Faust/aiokafka side (None unless the protocol is SSL or
        SASL_SSL): the broker's certificate checked against HERALD_KAFKA_SSL_CA (else the
        system's CAs), its name checked, the client certificate presented when set."""
        if not self.kafka_tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.kafka_ssl_ca or None)
        if self.kafka_ssl_cert:
            ctx.load_cert_chain(self.kafka_ssl_cert, self.kafka_ssl_key)
        return ctx

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """The HTTPS context of ingress and the console (None: plain HTTP): TLS 1.2 or newer."""
        if not self.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx

    def topic(self, name: str) -> str:
        """The broker-side name of a catalogue topic."""
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        lines.append(f"| `HERALD_{name.upper()}` | `{field.default}` | {field.description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
