"""``herald dlq``: what the processors dead-lettered, and replaying it.

    herald dlq topics                                  every <topic>.dlq with its record count
    herald dlq list sms.outbound.dlq [--limit 50] [--before OFFSET]
    herald dlq show sms.outbound.dlq 0:17              one record: reason, original bytes
    herald dlq replay sms.outbound.dlq 0:17 0:18 [--actor NAME]

Each prints JSON (one line per record for list, one object otherwise). The console's DLQ page
does the same through the same module, services/core/dlq_replay.py: a record is replayed at most
once, a failed outbound message is reset into a new try and sent again, other events go back to
the topic they came from, and every replay is in the audit log. Exit 1 when a record could not
be replayed (already replayed, invalid bytes, the broker refused it)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from services.core.settings import Settings

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str))


def _topic(name: str) -> str:
    if not name.endswith(".dlq"):
        raise ValueError(f"{name!r} is not a DLQ topic (its name ends in .dlq)")
    return name


def cmd_dlq(args: argparse.Namespace, s: Settings) -> int:
    from confluent_kafka import KafkaException

    from services.core import dlq_replay as dq
    from services.core.db import Database

    try:
        if args.action == "topics":
            for t in dq.topics(s):
                _print({"topic": t.catalogue, "records": t.count, "partitions": t.partitions})
            return OK
        topic = _topic(args.topic)
        if args.action == "list":
            page = dq.read(s, topic, limit=args.limit, before=args.before)
            db = Database(s.database_url)
            try:
                with db.session() as ses:
                    dq.with_replays(ses, page.letters)
            finally:
                db.dispose()
            for d in page.letters:
                row = d.as_dict()
                row.pop("value_b64")
                _print(row)
            if page.older is not None:
                _print({"older": f"herald dlq list {topic} --before {page.older}"})
            return OK
        refs = [dq.parse_ref(r) for r in ([args.ref] if args.action == "show" else args.refs)]
        letters = []
        for partition, offset in refs:
            d = dq.fetch(s, topic, partition, offset)
            if d is None:
                print(f"herald: {topic} holds no record {partition}:{offset}", file=sys.stderr)
                return FAILED
            letters.append(d)
        db = Database(s.database_url)
        try:
            if args.action == "show":
                with db.session() as ses:
                    dq.with_replays(ses, letters)
                _print(letters[0].as_dict())
                return OK
            actor = f"cli:{args.actor or getpass.getuser()}"
            outcomes = dq.replay(s, db, letters, actor)
        finally:
            db.dispose()
        for o in outcomes:
            _print(o.as_dict())
        return OK if all(o.ok for o in outcomes) else FAILED
    except ValueError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return USAGE
    except LookupError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return FAILED
    except KafkaException as exc:
        print(f"herald: cannot reach the broker at {s.kafka_bootstrap}: {exc}", file=sys.stderr)
        return UNREACHABLE


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("dlq", help="dead-lettered records: topics, list, show, replay")
    a = sp.add_subparsers(dest="action", required=True)
    a.add_parser("topics", help="every DLQ topic with its record count")
    c = a.add_parser("list", help="the newest records of a DLQ topic")
    c.add_argument("topic", help="e.g. sms.outbound.dlq")
    c.add_argument("--limit", type=int, default=50)
    c.add_argument("--before", type=int, help="offset: list the records before it (older)")
    c = a.add_parser("show", help="one record with its original bytes")
    c.add_argument("topic")
    c.add_argument("ref", help="partition:offset (from list)")
    c = a.add_parser("replay", help="replay records (each at most once)")
    c.add_argument("topic")
    c.add_argument("refs", nargs="+", help="partition:offset of each record")
    c.add_argument("--actor", help="who replays, for the audit log (default: the OS user)")
    sp.set_defaults(fn=cmd_dlq)
