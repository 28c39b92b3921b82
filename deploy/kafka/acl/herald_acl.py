#!/usr/bin/env python3
"""SASL/SCRAM users and Kafka ACLs for Herald on a broker with authorisation on
(deploy/kafka/acl/secure-broker.sh). Uses the Admin API as the super user ``admin``.

    herald_acl.py tenant add <tenant> [--password P]   user tenant-<tenant>, confined to its topics
    herald_acl.py tenant remove <tenant>                drop the user and its ACLs
    herald_acl.py platform add [--user U] [--password P]  the processors' user (all Herald topics)
    herald_acl.py list [--principal User:tenant-acme]   show ACLs

Connection: --bootstrap (HERALD_KAFKA_BOOTSTRAP), --admin-password (KAFKA_ADMIN_PASSWORD), and
--topic-prefix (HERALD_TOPIC_PREFIX) when the platform's topics carry one; over a SASL_SSL
listener, --ca (HERALD_KAFKA_SSL_CA), the CA file of the broker's certificate. A generated password
is printed once; Kafka keeps only its salted SCRAM hash.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ITERATIONS = 8192
ANY_HOST = "*"


def tenant_user(tenant: str) -> str:
    return f"tenant-{tenant}"


def tenant_acls(tenant: str, prefix: str = "") -> list[AclBinding]:
    """What an ERP may do: write its outbound topic; read its inbound, status and DLQ topics;
    use consumer groups named ``<prefix>tenant.<id>.*``. Nothing else: no other tenant's topics,
    no platform topic, no topic creation."""
    principal = f"User:{tenant_user(tenant)}"
    base = f"{prefix}tenant.{tenant}"

    def allow(rtype, name, op, pattern=ResourcePatternType.LITERAL) -> AclBinding:
        return AclBinding(rtype, name, pattern, principal, ANY_HOST, op, AclPermissionType.ALLOW)

    out = [allow(ResourceType.TOPIC, f"{base}.outbound", op)
           for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    for kind in ("inbound", "status", "dlq"):
        out += [allow(ResourceType.TOPIC, f"{base}.{kind}", op)
                for op in (AclOperation.READ, AclOperation.DESCRIBE)]
    out.append(allow(ResourceType.GROUP, f"{base}.", AclOperation.READ, ResourcePatternType.PREFIXED))
    return out


def platform_acls(user: str, prefix: str = "") -> list[AclBinding]:
    """The processors read and write every Herald topic, use their groups and create topics."""
    principal = f"User:{user}"
    pattern = ResourcePatternType.PREFIXED if prefix else ResourcePatternType.LITERAL
    name = prefix or "*"

    def allow(rtype, rname, op, pat=pattern) -> AclBinding:
        return AclBinding(rtype, rname, pat, principal, ANY_HOST, op, AclPermissionType.ALLOW)

    return [allow(ResourceType.TOPIC, name, AclOperation.ALL),
            allow(ResourceType.GROUP, name, AclOperation.ALL),
            *(allow(ResourceType.BROKER, "kafka-cluster", op, ResourcePatternType.LITERAL)
              for op in (AclOperation.CREATE, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
                         AclOperation.IDEMPOTENT_WRITE))]


def admin(args: argparse.Namespace) -> AdminClient:
    if not args.admin_password:
        sys.exit("herald_acl: the admin password is needed (--admin-password or KAFKA_ADMIN_PASSWORD)")
    cfg = {"bootstrap.servers": args.bootstrap, "security.protocol": "SASL_PLAINTEXT",
           "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": args.admin_user,
           "sasl.password": args.admin_password}
    if args.ca:  # the TLS listener: the broker's certificate checked against this CA
        cfg.update({"security.protocol": "SASL_SSL", "ssl.ca.location": args.ca,
                    "ssl.endpoint.identification.algorithm": "https"})
    return AdminClient(cfg)


def _wait(futures: dict, what: str) -> None:
    for key, fut in futures.items():
        try:
            fut.result(30)
        except KafkaException as exc:
            sys.exit(f"herald_acl: {what} failed for {key}: {exc}")


def set_password(a: AdminClient, user: str, password: str) -> None:
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, ITERATIONS)
    _wait(a.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, password.encode(),
                                                                       secrets.token_bytes(16))]),
          "setting the SCRAM credential")


def cmd_tenant(args: argparse.Namespace) -> int:
    if not TENANT_ID.match(args.tenant):
        sys.exit("herald_acl: tenant id must be 1-63 lower-case letters, digits, '-' or '_'")
    a = admin(args)
    user = tenant_user(args.tenant)
    acls = tenant_acls(args.tenant, args.topic_prefix)
    if args.action == "add":
        password = args.password or secrets.token_urlsafe(24)
        set_password(a, user, password)
        _wait(a.create_acls(acls), "creating ACLs")
        print(f"user {user}: {len(acls)} ACLs on {args.topic_prefix}tenant.{args.tenant}.*")
        if not args.password:
            print(f"password (shown once): {password}")
        return 0
    _wait(a.delete_acls([AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal,
                                          b.host, b.operation, b.permission_type) for b in acls]),
          "deleting ACLs")
    try:
        _wait(a.alter_user_scram_credentials([UserScramCredentialDeletion(
            user, ScramMechanism.SCRAM_SHA_256)]), "deleting the SCRAM credential")
    except SystemExit as exc:
        if "RESOURCE_NOT_FOUND" not in str(exc):
            raise
    print(f"user {user} and its ACLs removed")
    return 0


def cmd_platform(args: argparse.Namespace) -> int:
    a = admin(args)
    password = args.password or secrets.token_urlsafe(24)
    set_password(a, args.user, password)
    _wait(a.create_acls(platform_acls(args.user, args.topic_prefix)), "creating ACLs")
    scope = f" under {args.topic_prefix}" if args.topic_prefix else ""
    print(f"user {args.user}: all topics and groups{scope}")
    if not args.password:
        print(f"password (shown once): {password}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    a = admin(args)
    flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, args.principal, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    for b in sorted(a.describe_acls(flt).result(30), key=lambda b: (b.principal, b.name, str(b.operation))):
        print(f"{b.principal:<28} {b.permission_type.name:<5} {b.operation.name:<17} "
              f"{b.restype.name.lower()}:{b.resource_pattern_type.name.lower()}:{b.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="herald_acl.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default=os.environ.get("HERALD_KAFKA_BOOTSTRAP", "127.0.0.1:9192"))
    p.add_argument("--admin-user", default="admin")
    p.add_argument("--admin-password", default=os.environ.get("KAFKA_ADMIN_PASSWORD"))
    p.add_argument("--topic-prefix", default=os.environ.get("HERALD_TOPIC_PREFIX", ""))
    p.add_argument("--ca", default=os.environ.get("HERALD_KAFKA_SSL_CA", ""),
                   help="CA file of the broker's certificate: connect over SASL_SSL")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tenant")
    t.add_argument("action", choices=["add", "remove"])
    t.add_argument("tenant")
    t.add_argument("--password")
    t.set_defaults(fn=cmd_tenant)
    pl = sub.add_parser("platform")
    pl.add_argument("action", choices=["add"])
    pl.add_argument("--user", default="herald-platform")
    pl.add_argument("--password")
    pl.set_defaults(fn=cmd_platform)
    ls = sub.add_parser("list")
    ls.add_argument("--principal")
    ls.set_defaults(fn=cmd_list)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
