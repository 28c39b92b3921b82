"""Benchmark: the console's list pages over a large tenant.

    .venv/bin/python -m bench.bench_console [--contacts 100000] [--messages 1000000] [--requests 100]

Seeds one tenant with N contacts and M messages (each with its history row) straight into the
database with set-based SQL (PostgreSQL from HERALD_BENCH_DATABASE_URL, emptied first; a SQLite
file otherwise), starts the console as its own process
against a real broker, signs in as the tenant's owner, and requests every list page (first page,
a deep page through its keyset link, a search and a filter) ``--requests`` times each, one at a
time, reporting p50/p95/max in milliseconds per page. Not a test: it prints its figures and
writes bench/results/bench-console.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.console.domain import users  # noqa: E402
from services.core import tenancy  # noqa: E402
from services.core.db import Database  # noqa: E402
from services.core.db.migrate import upgrade  # noqa: E402
from services.core.topics import ensure_topics  # noqa: E402
from tests.support.infra import Broker, Stack, empty_postgres  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TENANT = "bench"
PASSWORD = "bench-password-123"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEXT = re.compile(r'<nav class="pager">.*?href="([^"]*(?:after|before)=[^"]+)"[^>]*>[^<]*→', re.S)


def seed(db: Database, contacts: int, messages: int) -> None:
    with db.session() as s:
        tenancy.create_tenant(s, TENANT, "Bench Institution", default_sender="10690001")
        users.create_user(s, email="owner@bench.example", password=PASSWORD, role="owner",
                          tenant_id=TENANT)
    pg = db.dialect == "postgresql"
    series = ("generate_series(1, :n) AS g(i)" if pg else
              "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :n) "
              "SELECT i FROM c) AS g")
    now = "now()" if pg else "CURRENT_TIMESTAMP"
    ago = (lambda expr: f"now() - ({expr}) * interval '1 second'") if pg else \
        (lambda expr: f"datetime('now', '-' || ({expr}) || ' seconds')")
    num = (lambda expr: f"'+86138' || lpad(({expr})::text, 8, '0')") if pg else \
        (lambda expr: f"'+86138' || substr('00000000' || ({expr}), -8, 8)")
    status = "(ARRAY['delivered','delivered','delivered','sent','failed'])[1 + i % 5]" if pg else \
        "CASE i % 5 WHEN 3 THEN 'sent' WHEN 4 THEN 'failed' ELSE 'delivered' END"
    t0 = time.perf_counter()
    with db.engine.begin() as c:
        c.execute(text(
            f"INSERT INTO contacts (tenant_id, msisdn, name, fields, tags, created_at) "
            f"SELECT :t, {num('i')}, 'Contact ' || i, '{{}}', '[]', {ago('i')} FROM {series}"),
            {"t": TENANT, "n": contacts})
    step = 200_000
    for start in range(0, messages, step):
        n = min(step, messages - start)
        with db.engine.begin() as c:
            c.execute(text(
                f"INSERT INTO messages (id, tenant_id, request_id, recipient, sender, text, source, "
                f"category, encoding, segments, status, carrier, carrier_message_id, accepted_at, "
                f"updated_at) "
                f"SELECT 'm' || (i + :o), :t, 'r' || (i + :o), {num(f'(i + :o) % {contacts}')}, '10690001', "
                f"'Your order ' || (i + :o) || ' has shipped.', 'api', 'transactional', 'gsm7', 1, "
                f"{status}, 'sim', 'c' || (i + :o), {ago('i + :o')}, {now} FROM {series}"),
                {"t": TENANT, "n": n, "o": start})
            c.execute(text(
                f"INSERT INTO message_events (event_id, message_id, status, carrier, occurred_at) "
                f"SELECT 'e' || (i + :o), 'm' || (i + :o), 'accepted', NULL, {ago('i + :o')} "
                f"FROM {series}"), {"n": n, "o": start})
    if pg:
        with db.engine.begin() as c:
            c.execute(text("ANALYZE"))
    print(f"seeded {contacts:,} contacts and {messages:,} messages in {time.perf_counter() - t0:.0f} s",
          flush=True)


def measure(client: httpx.Client, path: str, n: int) -> dict:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code}")
    times.sort()
    return {"page": path, "requests": n, "p50_ms": statistics.median(times),
            "p95_ms": times[int(0.95 * (len(times) - 1))], "max_ms": times[-1]}


def pages(client: httpx.Client) -> list[str]:
    """First pages, a deep page reached by following 'next' links, a search, a filter."""
    out = ["/", "/contacts", "/contacts?q=%2B8613800050000", "/contacts?q=Contact+4242",
           "/messages", "/messages?status=failed", "/messages?q=%2B8613800001234", "/audit",
           "/campaigns", "/inbox"]
    for start in ("/contacts", "/messages"):
        path = start
        for _ in range(20):  # 20 pages in
            m = NEXT.search(client.get(path).text)
            if not m:
                break
            link = m.group(1).replace("&amp;", "&")
            path = start + link if link.startswith("?") else link
        if path != start:
            out.append(path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    url = os.environ.get("HERALD_BENCH_DATABASE_URL")
    tmp = tempfile.mkdtemp(prefix="herald-bench-console-")
    if url:
        empty_postgres(url)
    else:
        url = f"sqlite:///{tmp}/herald.db"
    upgrade(url)
    db = Database(url)
    seed(db, args.contacts, args.messages)
    db.dispose()
    broker = Broker(int(os.environ.get("HERALD_BENCH_KAFKA_PORT", "19192")))
    started = broker.start()
    stack = Stack(broker.bootstrap, url)
    rows: list[dict] = []
    try:
        ensure_topics(stack.settings(topic_partitions=1))
        console = stack.start("services.console")
        with httpx.Client(base_url=console.url, timeout=30, follow_redirects=True) as client:
            token = CSRF.search(client.get("/login").text).group(1)
            r = client.post("/login", data={"email": "owner@bench.example", "password": PASSWORD,
                                            "csrf_token": token})
            assert r.url.path == "/", r.text[:500]
            for path in pages(client):
                row = measure(client, path, args.requests)
                rows.append(row)
                print(f"{row['page']:<70} p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  "
                      f"max {row['max_ms']:7.1f} ms", flush=True)
    finally:
        stack.stop_all()
        if started:
            broker.stop()
    meta = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "contacts": args.contacts,
            "messages": args.messages, "database": url.split("@")[-1].split("?")[0],
            "machine": f"{os.cpu_count()} cores"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench-console.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    worst = max(r["p95_ms"] for r in rows)
    print(f"worst p95 {worst:.1f} ms over {len(rows)} pages; written bench/results/bench-console.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
