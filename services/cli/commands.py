"""``herald``: the command line for people and scripts.

Messages go through the platform's HTTP API (as an ERP's would), with a tenant's API key from
``--key`` or ``HERALD_API_KEY``. Tenants, keys, numbers, keywords and webhooks are managed
directly on the database in the settings (``HERALD_DATABASE_URL``), as an operator would.
``tail`` reads a tenant's topics from the broker.

Exit codes: 0 done; 1 the operation failed (an error answer, rejected rows, not found);
2 bad usage; 3 a service (API, database, broker) could not be reached.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from services.core.settings import Settings

from .brands import add_commands as add_brand_commands
from .dlq import register as register_dlq
from .progress import Progress
from .schemes import register as register_schemes

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


# Tests replace this to talk to a fake API.
def http_client(base_url: str, key: str | None, timeout: float = 30.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout)


# -- helpers -----------------------------------------------------------------------------------

def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.bootstrap:
        overrides["kafka_bootstrap"] = args.bootstrap
    if args.topic_prefix is not None:
        overrides["topic_prefix"] = args.topic_prefix
    return Settings(**overrides)


def _api(args: argparse.Namespace, s: Settings) -> str:
    return args.api or os.environ.get("HERALD_API_URL") or f"http://{s.web_host}:{s.ingress_port}"


def _key(args: argparse.Namespace) -> str:
    key = args.key or os.environ.get("HERALD_API_KEY")
    if not key:
        raise CliError("an API key is needed: --key hk_... or HERALD_API_KEY", USAGE)
    return key


def _out(obj: Any) -> None:
    # One line of JSON: easy to read, and to parse in scripts.
    print(json.dumps(obj, ensure_ascii=False, default=str))


def _call(fn: Callable[[], httpx.Response], what: str, api: str) -> httpx.Response:
    try:
        return fn()
    except httpx.TransportError as exc:
        raise CliError(f"cannot reach the API at {api} ({type(exc).__name__}); is ingress running? "
                       "(--api or HERALD_API_URL)", UNREACHABLE) from None


def _error_of(r: httpx.Response) -> str:
    try:
        body = r.json()
        return body.get("error") or json.dumps(body)
    except ValueError:
        return r.text[:300] or r.reason_phrase


def _db(s: Settings):
    from services.core.db import Database

    db = Database(s.database_url)
    try:
        db.ping()
    except Exception as exc:  # noqa: BLE001 - any driver error means "cannot reach"
        db.dispose()
        raise CliError(f"cannot reach the database {db.engine.url!r}: {type(exc).__name__}",
                       UNREACHABLE) from None
    return db


# -- messages ----------------------------------------------------------------------------------

def cmd_send(args: argparse.Namespace, s: Settings) -> int:
    api, key = _api(args, s), _key(args)
    body = {"to": args.to, "text": args.text}
    for name in ("request_id", "category"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    if args.sender:
        body["from"] = args.sender
    with http_client(api, key) as c:
        r = _call(lambda: c.post("/v1/messages", json=body), "send", api)
    if r.status_code >= 400:
        raise CliError(f"not sent: HTTP {r.status_code}: {_error_of(r)}")
    _out(r.json())
    return OK


BATCH_COLUMNS = ("to", "text", "from", "request_id", "category")


def read_batch(path: str) -> list[dict[str, str]]:
    """Rows of a CSV with a header naming at least ``to`` and ``text``."""
    try:
        f = sys.stdin if path == "-" else open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", USAGE) from None
    with f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("to", "text") if c not in cols]
        if missing:
            raise CliError(f"{path}: the header must name the columns to,text (missing: "
                           f"{', '.join(missing)}; got: {', '.join(cols) or 'nothing'})", USAGE)
        unknown = [c for c in cols if c not in BATCH_COLUMNS]
        if unknown:
            raise CliError(f"{path}: unknown column(s) {', '.join(unknown)}; known: "
                           f"{', '.join(BATCH_COLUMNS)}", USAGE)
        rows = []
        for row in reader:
            clean = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            rows.append({k: v for k, v in clean.items() if v})
        return rows


def _chunks(items: Sequence[Any], n: int) -> Iterator[tuple[int, Sequence[Any]]]:
    for i in range(0, len(items), n):
        yield i, items[i:i + n]


def cmd_send_batch(args: argparse.Namespace, s: Settings) -> int:
    api, key = _api(args, s), _key(args)
    rows = read_batch(args.file)
    if not rows:
        raise CliError(f"{args.file}: no rows to send")
    base = args.request_prefix or f"batch-{uuid.uuid4().hex[:10]}"
    messages = []
    for i, row in enumerate(rows):
        m = {"to": row.get("to", ""), "text": row.get("text", "")}
        # Stable request ids: running the same file again with the same --request-prefix
        # sends nothing twice.
        m["request_id"] = row.get("request_id") or f"{base}-{i + 1}"
        if row.get("from"):
            m["from"] = row["from"]
        if row.get("category"):
            m["category"] = row["category"]
        messages.append(m)
    bar = Progress(len(messages), "sending", stream=sys.stderr)
    accepted, errors = 0, []
    with http_client(api, key) as c:
        for start, chunk in _chunks(messages, args.chunk):
            r = _call(lambda chunk=chunk: c.post("/v1/messages/batch", json={"messages": list(chunk)}),
                      "batch", api)
            while r.status_code == 429:  # the tenant's rate limit: wait as told, then again
                time.sleep(min(10.0, float(r.headers.get("Retry-After", "1"))))
                r = _call(lambda chunk=chunk: c.post("/v1/messages/batch",
                                                     json={"messages": list(chunk)}), "batch", api)
            if r.status_code in (401, 403):
                bar.close()
                raise CliError(f"HTTP {r.status_code}: {_error_of(r)}")
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            results = body.get("results")
            if results is None:
                bar.close()
                raise CliError(f"HTTP {r.status_code}: {_error_of(r)} (at row {start + 1})")
            for res in results:
                if "error" in res:
                    errors.append({"row": start + res["index"] + 1, "error": res["error"]})
                else:
                    accepted += 1
            bar.advance(len(chunk))
    bar.close()
    for e in errors[:50]:
        print(f"row {e['row']}: {e['error']}", file=sys.stderr)
    if len(errors) > 50:
        print(f"... and {len(errors) - 50} more rejected rows", file=sys.stderr)
    _out({"accepted": accepted, "rejected": len(errors), "request_prefix": base})
    return OK if not errors else FAILED


def cmd_history(args: argparse.Namespace, s: Settings) -> int:
    api, key = _api(args, s), _key(args)
    with http_client(api, key) as c:
        r = _call(lambda: c.get(f"/v1/messages/{args.message_id}"), "history", api)
    if r.status_code == 404:
        raise CliError(f"no message {args.message_id} for this key's tenant")
    if r.status_code >= 400:
        raise CliError(f"HTTP {r.status_code}: {_error_of(r)}")
    msg = r.json()
    if args.json:
        _out(msg)
        return OK
    print(f"message {msg['message_id']}  to {msg['to']}  status {msg['status']}"
          + (f"  ({msg['reason']})" if msg.get("reason") else ""))
    for h in msg.get("history", []):
        extra = "  ".join(x for x in (h.get("carrier") or "", h.get("reason") or "") if x)
        print(f"  {h['at']}  {h['status']:<10} {extra}".rstrip())
    return OK


def cmd_tail(args: argparse.Namespace, s: Settings) -> int:
    from confluent_kafka import Consumer, KafkaException

    from services.core.tenancy import TENANT_ID

    if not TENANT_ID.match(args.tenant):
        raise CliError(f"{args.tenant!r} is not a tenant id", USAGE)
    kinds = ["inbound", "status"] + (["dlq"] if args.dlq else [])
    names = [s.topic(f"tenant.{args.tenant}.{k}") for k in kinds]
    c = Consumer({**s.kafka_config(), "group.id": f"herald-cli-{uuid.uuid4().hex}",
                  "enable.auto.commit": False,
                  "auto.offset.reset": "earliest" if args.from_beginning else "latest"})
    try:
        try:
            md = c.list_topics(timeout=5)
        except KafkaException as exc:
            raise CliError(f"cannot reach the broker at {s.kafka_bootstrap}: {exc}", UNREACHABLE) from None
        missing = [n for n in names if n not in md.topics]
        if missing:
            raise CliError(f"no topic {', '.join(missing)}: is {args.tenant} a tenant?")
        c.subscribe(names)
        stop = {"now": False}
        signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
        seen = 0
        deadline = time.monotonic() + args.timeout if args.timeout else None
        while not stop["now"] and (deadline is None or time.monotonic() < deadline):
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            kind = msg.topic().rsplit(".", 1)[-1]
            try:
                value = json.loads(msg.value())
            except ValueError:
                value = {"raw": msg.value().decode("utf-8", "replace")}
            print(json.dumps({"topic": kind, **value}, ensure_ascii=False), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                break
        return OK
    finally:
        c.close()


# -- tenants, keys, numbers, keywords ------------------------------------------------------------

def cmd_tenants(args: argparse.Namespace, s: Settings) -> int:
    from sqlalchemy import select

    from services.core.db.models import Tenant
    from services.core.tenancy import TENANT_ID, create_tenant
    from services.core.topics import ensure_topics, tenant_topics

    if args.action == "create":
        if not TENANT_ID.match(args.tenant):
            raise CliError("tenant id must be 1-63 lower-case letters, digits, '-' or '_'", USAGE)
        if not args.no_topics:
            try:
                made = ensure_topics(s, extra=tenant_topics(args.tenant), timeout=10)
            except Exception as exc:  # noqa: BLE001 - the broker is away or refuses
                raise CliError(f"cannot create the tenant's topics on {s.kafka_bootstrap}: {exc} "
                               "(--no-topics to create them later with make topics)",
                               UNREACHABLE) from None
        db = _db(s)
        try:
            with db.session() as ses:
                try:
                    create_tenant(ses, args.tenant, args.name or args.tenant,
                                  default_sender=args.sender)
                except ValueError as exc:
                    raise CliError(str(exc)) from None
        finally:
            db.dispose()
        _out({"tenant": args.tenant, "created": True,
              "topics": [] if args.no_topics else [t.name for t in tenant_topics(args.tenant)],
              "new_topics": 0 if args.no_topics else len(made)})
        return OK
    db = _db(s)
    try:
        with db.session() as ses:
            if args.action == "list":
                for t in ses.scalars(select(Tenant).order_by(Tenant.id)):
                    print(f"{t.id:<24} {'active' if t.active else 'inactive':<9} {t.name}")
                return OK
            t = ses.get(Tenant, args.tenant)
            if t is None:
                raise CliError(f"no tenant {args.tenant}")
            if args.action == "show":
                _out({"id": t.id, "name": t.name, "active": t.active,
                      "default_sender": t.default_sender, "created_at": t.created_at})
            else:
                t.active = args.action == "activate"
                _out({"tenant": t.id, "active": t.active})
            return OK
    finally:
        db.dispose()


def _tenant_exists(ses, tenant: str) -> None:
    from services.core.db.models import Tenant

    if ses.get(Tenant, tenant) is None:
        raise CliError(f"no tenant {tenant}")


def cmd_keys(args: argparse.Namespace, s: Settings) -> int:
    from sqlalchemy import select

    from services.core.db.models import ApiKey
    from services.core.tenancy import issue_api_key, revoke_api_key

    db = _db(s)
    try:
        with db.session() as ses:
            if args.action == "issue":
                _tenant_exists(ses, args.tenant)
                key = issue_api_key(ses, args.tenant, args.label or "")
                print(key)
                print("(shown once: only its hash is stored)", file=sys.stderr)
            elif args.action == "list":
                _tenant_exists(ses, args.tenant)
                for k in ses.scalars(select(ApiKey).where(ApiKey.tenant_id == args.tenant)
                                     .order_by(ApiKey.id)):
                    state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
                    print(f"hk_{k.prefix}_...  {state:<18} {k.label}")
            else:
                prefix = args.prefix.removeprefix("hk_").split("_")[0]
                if ses.scalar(select(ApiKey).where(ApiKey.prefix == prefix)) is None:
                    raise CliError(f"no key with prefix {prefix}")
                revoke_api_key(ses, prefix)
                _out({"revoked": prefix})
        return OK
    finally:
        db.dispose()


def cmd_numbers(args: argparse.Namespace, s: Settings) -> int:
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from services.core.db.models import SenderNumber
    from services.core.tenancy import add_number

    db = _db(s)
    try:
        with db.session() as ses:
            _tenant_exists(ses, args.tenant)
            if args.action == "add":
                try:
                    with ses.begin_nested():
                        add_number(ses, args.tenant, args.number, shared=args.shared)
                except IntegrityError:
                    raise CliError(f"{args.number} is already {args.tenant}'s") from None
                _out({"tenant": args.tenant, "number": args.number, "shared": args.shared})
            elif args.action == "list":
                for n in ses.scalars(select(SenderNumber).where(SenderNumber.tenant_id == args.tenant)
                                     .order_by(SenderNumber.number)):
                    print(f"{n.number}{'  (shared)' if n.shared else ''}")
            else:
                row = ses.scalar(select(SenderNumber).where(SenderNumber.tenant_id == args.tenant,
                                                            SenderNumber.number == args.number))
                if row is None:
                    raise CliError(f"{args.number} is not one of {args.tenant}'s numbers")
                ses.delete(row)
                _out({"removed": args.number})
        return OK
    finally:
        db.dispose()


def cmd_keywords(args: argparse.Namespace, s: Settings) -> int:
    import re

    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from services.core.db.models import Keyword
    from services.core.tenancy import add_keyword

    db = _db(s)
    try:
        with db.session() as ses:
            _tenant_exists(ses, args.tenant)
            if args.action == "add":
                try:
                    with ses.begin_nested():
                        k = add_keyword(ses, args.tenant, args.keyword, args.kw_action,
                                        number=args.number, reply_text=args.reply_text,
                                        pattern=args.pattern, priority=args.priority)
                except (ValueError, re.error) as exc:
                    raise CliError(f"keyword not added: {exc}", USAGE) from None
                except IntegrityError:
                    raise CliError(f"{args.tenant} already has keyword {args.keyword.upper()} on "
                                   f"{args.number}") from None
                _out({"id": k.id, "tenant": args.tenant, "keyword": k.keyword, "action": k.action})
            elif args.action == "list":
                for k in ses.scalars(select(Keyword).where(Keyword.tenant_id == args.tenant)
                                     .order_by(Keyword.priority, Keyword.id)):
                    what = k.reply_text if k.action == "reply" else ""
                    pat = f" /{k.pattern}/" if k.pattern else ""
                    print(f"{k.id:>5}  {k.keyword or '-':<12}{pat} {k.action:<10} number={k.number} "
                          f"priority={k.priority} {what or ''}".rstrip())
            else:
                k = ses.get(Keyword, args.id)
                if k is None or k.tenant_id != args.tenant:
                    raise CliError(f"{args.tenant} has no keyword rule {args.id}")
                ses.delete(k)
                _out({"removed": args.id})
        return OK
    finally:
        db.dispose()


def cmd_webhooks(args: argparse.Namespace, s: Settings) -> int:
    from services.bridge import webhooks
    from services.core.db.bridge_models import WebhookEndpoint

    db = _db(s)
    try:
        with db.session() as ses:
            _tenant_exists(ses, args.tenant)
            if args.action == "set":
                try:
                    secret = webhooks.set_endpoint(ses, s, args.tenant, args.url, args.secret)
                except ValueError as exc:
                    raise CliError(str(exc), USAGE) from None
                _out({"tenant": args.tenant, "url": args.url, "secret": secret})
                print("(the signing secret is shown once; it is stored encrypted)", file=sys.stderr)
            elif args.action == "show":
                from sqlalchemy import select

                ep = ses.scalar(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == args.tenant))
                if ep is None:
                    raise CliError(f"{args.tenant} has no webhook endpoint")
                _out({"tenant": args.tenant, "url": ep.url, "active": ep.active,
                      "deliveries": webhooks.counts(ses, args.tenant)})
            elif args.action == "disable":
                if not webhooks.disable_endpoint(ses, args.tenant):
                    raise CliError(f"{args.tenant} has no webhook endpoint")
                _out({"tenant": args.tenant, "active": False})
            elif args.action == "deliveries":
                rows = webhooks.list_deliveries(ses, args.tenant, args.status, args.limit)
                for r in rows:
                    print(json.dumps(r, ensure_ascii=False))
            else:
                n = webhooks.replay(ses, args.tenant, s.webhook_max_age_s, args.id or None)
                _out({"tenant": args.tenant, "replayed": n})
                if n == 0:
                    raise CliError("nothing to replay: no failed deliveries"
                                   + (" with those ids" if args.id else ""))
        return OK
    finally:
        db.dispose()


# -- the parser --------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="herald", description="Herald SMS platform: send, watch, manage.")
    p.add_argument("--database-url", help="database (default: HERALD_DATABASE_URL)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: HERALD_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", help="topic name prefix (default: HERALD_TOPIC_PREFIX)")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    def api_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--api", help="ingress URL (default: HERALD_API_URL or the settings' ingress)")
        sp.add_argument("--key", help="tenant API key (default: HERALD_API_KEY)")

    sp = sub.add_parser("send", help="send one message")
    sp.add_argument("--to", required=True, help="recipient, E.164 (+8613812345678)")
    sp.add_argument("--text", required=True)
    sp.add_argument("--from", dest="sender", help="sender number or alphanumeric id")
    sp.add_argument("--request-id", help="idempotency key (a repeat is not sent twice)")
    sp.add_argument("--category", choices=["transactional", "marketing"])
    api_args(sp)
    sp.set_defaults(fn=cmd_send)

    sp = sub.add_parser("send-batch", help="send the rows of a CSV file (columns to,text[,from,"
                                           "request_id,category])")
    sp.add_argument("file", help="CSV file with a header row, or - for stdin")
    sp.add_argument("--chunk", type=int, default=200, help="messages per API call (max 1000)")
    sp.add_argument("--request-prefix", help="prefix of the rows' request ids; give the same one "
                                             "to resume a batch without sending rows twice")
    api_args(sp)
    sp.set_defaults(fn=cmd_send_batch)

    sp = sub.add_parser("history", help="a message's status history")
    sp.add_argument("message_id")
    sp.add_argument("--json", action="store_true")
    api_args(sp)
    sp.set_defaults(fn=cmd_history)

    sp = sub.add_parser("tail", help="follow a tenant's inbound and status topics")
    sp.add_argument("tenant")
    sp.add_argument("--from-beginning", action="store_true")
    sp.add_argument("--dlq", action="store_true", help="also the tenant's rejected requests")
    sp.add_argument("--count", type=int, default=0, help="stop after this many records")
    sp.add_argument("--timeout", type=float, default=0, help="stop after this many seconds")
    sp.set_defaults(fn=cmd_tail)

    sp = sub.add_parser("tenants", help="list, create, show, activate or deactivate tenants")
    tsub = sp.add_subparsers(dest="action", required=True)
    tsub.add_parser("list")
    c = tsub.add_parser("create")
    c.add_argument("tenant")
    c.add_argument("--name")
    c.add_argument("--sender", help="default sender number")
    c.add_argument("--no-topics", action="store_true", help="do not create its Kafka topics now")
    for a in ("show", "activate", "deactivate"):
        tsub.add_parser(a).add_argument("tenant")
    sp.set_defaults(fn=cmd_tenants)

    sp = sub.add_parser("keys", help="issue, list or revoke API keys")
    ksub = sp.add_subparsers(dest="action", required=True)
    c = ksub.add_parser("issue")
    c.add_argument("tenant")
    c.add_argument("--label")
    ksub.add_parser("list").add_argument("tenant")
    ksub.add_parser("revoke").add_argument("prefix", help="the key's prefix (hk_<prefix>_...)")
    sp.set_defaults(fn=cmd_keys)

    sp = sub.add_parser("numbers", help="add, list or remove a tenant's sender numbers")
    nsub = sp.add_subparsers(dest="action", required=True)
    c = nsub.add_parser("add")
    c.add_argument("tenant")
    c.add_argument("number")
    c.add_argument("--shared", action="store_true", help="a number several tenants share")
    nsub.add_parser("list").add_argument("tenant")
    c = nsub.add_parser("remove")
    c.add_argument("tenant")
    c.add_argument("number")
    sp.set_defaults(fn=cmd_numbers)

    sp = sub.add_parser("keywords", help="add, list or remove a tenant's keyword rules")
    wsub = sp.add_subparsers(dest="action", required=True)
    c = wsub.add_parser("add")
    c.add_argument("tenant")
    c.add_argument("keyword")
    c.add_argument("kw_action", metavar="action", help="reply | codes | campaigns | points | inbox")
    c.add_argument("--reply-text")
    c.add_argument("--number", default="*", help="one of the tenant's numbers, or * (default)")
    c.add_argument("--pattern", help="a regex the whole text must match (keyword '' for pattern-only)")
    c.add_argument("--priority", type=int, default=100)
    wsub.add_parser("list").add_argument("tenant")
    c = wsub.add_parser("remove")
    c.add_argument("tenant")
    c.add_argument("id", type=int)
    sp.set_defaults(fn=cmd_keywords)

    sp = sub.add_parser("webhooks", help="a tenant's webhook endpoint and its deliveries")
    hsub = sp.add_subparsers(dest="action", required=True)
    c = hsub.add_parser("set")
    c.add_argument("tenant")
    c.add_argument("url")
    c.add_argument("--secret", help="signing secret (default: a new random one, printed once)")
    for a in ("show", "disable"):
        hsub.add_parser(a).add_argument("tenant")
    c = hsub.add_parser("deliveries")
    c.add_argument("tenant")
    c.add_argument("--status", choices=["pending", "delivered", "failed"])
    c.add_argument("--limit", type=int, default=50)
    c = hsub.add_parser("replay", help="retry failed deliveries (all, or --id ones) for another day")
    c.add_argument("tenant")
    c.add_argument("--id", type=int, action="append", help="a delivery id (repeatable)")
    sp.set_defaults(fn=cmd_webhooks)
    register_schemes(sub)  # lottery, gifts, points, members (services/cli/schemes.py)
    add_brand_commands(sub)  # brands, products, batches, codes (services/cli/brands.py)
    register_dlq(sub)  # dlq topics|list|show|replay (services/cli/dlq.py)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or the help)
        return int(exc.code or 0)
    try:
        s = _settings(args)
    except Exception as exc:  # noqa: BLE001 - a bad HERALD_* value
        print(f"herald: bad settings: {exc}", file=sys.stderr)
        return USAGE
    try:
        return args.fn(args, s)
    except CliError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("herald: interrupted", file=sys.stderr)
        return 130
