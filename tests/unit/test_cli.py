"""The ``herald`` command line: management on a migrated SQLite database, messages against a fake
API (httpx MockTransport), clear errors and exit codes. No broker."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from services.cli import commands
from services.cli import main as run
from services.cli.commands import FAILED, OK, UNREACHABLE, USAGE
from services.cli.progress import Progress
from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.tenancy import authenticate
from tests.support.infra import free_port

KEY = "hk_0123456789_" + "k" * 40


@pytest.fixture
def db_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'herald.db'}"
    upgrade(url)
    monkeypatch.setenv("HERALD_DATABASE_URL", url)
    monkeypatch.setenv("HERALD_API_KEY", KEY)
    return url


def herald(*argv: str) -> int:
    return run(list(argv))


def test_a_tenant_is_created_with_a_key_numbers_and_keywords_and_the_key_works(db_url, capsys):
    assert herald("tenants", "create", "acme", "--name", "Acme Tobacco", "--no-topics") == OK
    assert herald("tenants", "create", "acme", "--no-topics") == FAILED
    assert "exists" in capsys.readouterr().err
    assert herald("keys", "issue", "acme", "--label", "erp") == OK
    key = capsys.readouterr().out.strip()
    db = Database(db_url)
    with db.session() as s:
        assert authenticate(s, key) == "acme"
    assert herald("numbers", "add", "acme", "10690001") == OK
    assert herald("numbers", "add", "acme", "10690001") == FAILED
    assert herald("keywords", "add", "acme", "info", "reply", "--reply-text", "Acme news") == OK
    kw = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert kw["keyword"] == "INFO"
    assert herald("keywords", "list", "acme") == OK
    assert "INFO" in capsys.readouterr().out
    assert herald("numbers", "list", "acme") == OK
    assert capsys.readouterr().out.strip() == "10690001"
    assert herald("keys", "list", "acme") == OK
    prefix = capsys.readouterr().out.split("_")[1]
    assert herald("keys", "revoke", prefix) == OK
    with db.session() as s:
        assert authenticate(s, key) is None
    assert herald("keywords", "remove", "acme", str(kw["id"])) == OK
    assert herald("numbers", "remove", "acme", "10690001") == OK
    assert herald("tenants", "deactivate", "acme") == OK
    assert herald("tenants", "list") == OK
    assert "inactive" in capsys.readouterr().out
    db.dispose()


@pytest.mark.parametrize("argv, code, says", [
    (["tenants", "create", "Bad Id", "--no-topics"], USAGE, "tenant id"),
    (["numbers", "add", "nobody", "10690001"], FAILED, "no tenant nobody"),
    (["keywords", "add", "acme", "x", "fly"], USAGE, "action must be one of"),
    (["keywords", "add", "acme", "x", "reply"], USAGE, "reply text"),
    (["keywords", "add", "acme", "", "inbox", "--pattern", "(["], USAGE, "keyword not added"),
    (["keys", "revoke", "hk_nothere00_x"], FAILED, "no key"),
    (["webhooks", "set", "acme", "ftp://x"], USAGE, "http"),
    (["webhooks", "replay", "acme"], FAILED, "nothing to replay"),
    (["frobnicate"], USAGE, "invalid choice"),
])
def test_mistakes_get_a_clear_message_and_an_exit_code(db_url, capsys, argv, code, says):
    herald("tenants", "create", "acme", "--no-topics")
    capsys.readouterr()
    assert herald(*argv) == code
    assert says in capsys.readouterr().err


def test_an_unreachable_database_exits_3(monkeypatch, capsys):
    monkeypatch.setenv("HERALD_DATABASE_URL",
                       f"postgresql+psycopg://x:y@127.0.0.1:{free_port()}/nothing?connect_timeout=2")
    assert herald("tenants", "list") == UNREACHABLE
    assert "cannot reach the database" in capsys.readouterr().err


def test_webhook_endpoints_show_their_secret_once_and_deliveries_can_be_listed(db_url, capsys):
    herald("tenants", "create", "acme", "--no-topics")
    capsys.readouterr()
    assert herald("webhooks", "set", "acme", "https://erp.example.com/herald") == OK
    out = capsys.readouterr()
    secret = json.loads(out.out)["secret"]
    assert secret.startswith("whsec_") and "shown once" in out.err
    assert herald("webhooks", "show", "acme") == OK
    shown = capsys.readouterr().out
    assert secret not in shown and "erp.example.com" in shown
    assert herald("webhooks", "deliveries", "acme", "--status", "failed") == OK
    assert herald("webhooks", "disable", "acme") == OK


class FakeApi:
    """Ingress's send, batch and history endpoints, enough for the CLI."""

    def __init__(self) -> None:
        self.calls: list[httpx.Request] = []
        self.limited_once = True

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"error": "invalid API key"})
        if request.url.path == "/v1/messages":
            body = json.loads(request.content)
            if not body["to"].startswith("+"):
                return httpx.Response(400, json={"error": "'to' must be an E.164 number"})
            return httpx.Response(202, json={"message_id": "m-1", "status": "accepted", **body})
        if request.url.path == "/v1/messages/batch":
            if self.limited_once:
                self.limited_once = False
                return httpx.Response(429, json={"error": "rate limit"}, headers={"Retry-After": "0"})
            msgs = json.loads(request.content)["messages"]
            results = [{"index": i, "error": "'to' must be an E.164 number"}
                       if not m["to"].startswith("+") else {"index": i, "message_id": f"m-{m['request_id']}"}
                       for i, m in enumerate(msgs)]
            return httpx.Response(202, json={"results": results})
        if request.url.path == "/v1/messages/m-1":
            return httpx.Response(200, json={
                "message_id": "m-1", "to": "+8613800000001", "status": "delivered", "reason": None,
                "history": [{"status": "accepted", "at": "2026-11-28T10:00:00+00:00"},
                            {"status": "sent", "at": "2026-11-28T10:00:01+00:00", "carrier": "sim"},
                            {"status": "delivered", "at": "2026-11-28T10:00:02+00:00", "carrier": "sim"}]})
        return httpx.Response(404, json={"error": "no such message"})


@pytest.fixture
def api(monkeypatch):
    fake = FakeApi()

    def client(base_url, key, timeout=30.0):
        return httpx.Client(base_url=base_url, transport=httpx.MockTransport(fake.handler),
                            headers={"Authorization": f"Bearer {key}"} if key else {})
    monkeypatch.setattr(commands, "http_client", client)
    monkeypatch.setenv("HERALD_API_KEY", KEY)
    return fake


def test_send_prints_the_accepted_message_and_a_refusal_exits_1(api, capsys):
    assert herald("send", "--to", "+8613800000001", "--text", "hello", "--request-id", "r1") == OK
    assert json.loads(capsys.readouterr().out)["message_id"] == "m-1"
    assert json.loads(api.calls[-1].content) == {"to": "+8613800000001", "text": "hello",
                                                 "request_id": "r1"}
    assert herald("send", "--to", "8613800000001", "--text", "hello") == FAILED
    assert "E.164" in capsys.readouterr().err
    assert herald("send", "--to", "+8613800000001", "--text", "x", "--key", "hk_bad_" + "x" * 30) == FAILED
    assert "invalid API key" in capsys.readouterr().err


def test_send_batch_sends_every_row_in_chunks_waits_out_429_and_reports_bad_rows(api, tmp_path, capsys):
    f = tmp_path / "batch.csv"
    rows = ["to,text"] + [f"+86139{i:08d},Hello {i}" for i in range(23)] + ["13900000000,no plus"]
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code = herald("send-batch", str(f), "--chunk", "10", "--request-prefix", "b1")
    out = capsys.readouterr()
    assert code == FAILED  # one row was rejected
    assert json.loads(out.out) == {"accepted": 23, "rejected": 1, "request_prefix": "b1"}
    assert "row 24: 'to' must be an E.164 number" in out.err
    assert "24/24" in out.err  # the progress bar reached the end
    batches = [json.loads(c.content)["messages"] for c in api.calls if c.url.path.endswith("batch")]
    assert [len(b) for b in batches] == [10, 10, 10, 4]  # the first call was a 429, retried
    assert batches[1][0]["request_id"] == "b1-1" and batches[-1][-1]["request_id"] == "b1-24"


@pytest.mark.parametrize("content, says", [
    ("number,body\n+861,x\n", "must name the columns to,text"),
    ("to,text,colour\n+8613900000000,x,red\n", "unknown column"),
])
def test_a_malformed_csv_is_refused_before_anything_is_sent(api, tmp_path, capsys, content, says):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    assert herald("send-batch", str(f)) == USAGE
    assert says in capsys.readouterr().err
    assert api.calls == []


def test_history_shows_each_status_of_a_message(api, capsys):
    assert herald("history", "m-1") == OK
    lines = capsys.readouterr().out.splitlines()
    assert "status delivered" in lines[0]
    assert [ln.split()[1] for ln in lines[1:]] == ["accepted", "sent", "delivered"]
    assert herald("history", "m-2") == FAILED
    assert "no message m-2" in capsys.readouterr().err


def test_an_unreachable_api_exits_3_with_a_hint(monkeypatch, capsys):
    monkeypatch.setenv("HERALD_API_KEY", KEY)
    assert herald("send", "--to", "+8613800000001", "--text", "x",
                  "--api", f"http://127.0.0.1:{free_port()}") == UNREACHABLE
    assert "cannot reach the API" in capsys.readouterr().err


def test_a_missing_key_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("HERALD_API_KEY", raising=False)
    assert herald("history", "m-1") == USAGE
    assert "API key" in capsys.readouterr().err


def test_the_progress_bar_writes_a_line_per_tenth_when_not_on_a_terminal():
    out = io.StringIO()
    t = iter(range(1000))
    bar = Progress(20, "x", stream=out, clock=lambda: float(next(t)))
    for _ in range(20):
        bar.advance()
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("x [" + "#" * 30 + "] 20/20 100%")
