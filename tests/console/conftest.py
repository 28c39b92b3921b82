"""The console over a migrated SQLite database, served by aiohttp's test server, with two
tenants and a user of each role. Pages are driven as a browser would (cookies, forms, CSRF)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.console.app import build_app
from services.console.domain import users
from services.console.web import Console
from services.core import tenancy
from services.core.settings import Settings

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch):
    """Argon2id with the smallest cost: the same code path, a fraction of the time (the
    production parameters are argon2-cffi's defaults, exercised by the browser tests)."""
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "_hasher", cheap)
    monkeypatch.setattr(users, "_DUMMY_HASH", cheap.hash("not-a-password-of-anyone"))


@pytest.fixture
def console_db(sqlite_db):
    with sqlite_db.session() as s:
        for t in ("acme", "other"):
            tenancy.create_tenant(s, t, f"{t.title()} Ltd")
        users.create_user(s, email="owner@acme.example", password=PASSWORD, role="owner",
                          tenant_id="acme", name="Olive Owner")
        users.create_user(s, email="analyst@acme.example", password=PASSWORD, role="analyst",
                          tenant_id="acme")
        users.create_user(s, email="owner@other.example", password=PASSWORD, role="owner",
                          tenant_id="other")
        users.create_user(s, email="ops@herald.example", password=PASSWORD, role="platform",
                          tenant_id=None)
    return sqlite_db


@dataclass
class Browser:
    """A test client that keeps cookies and fills in the CSRF token of the last page."""

    client: TestClient
    loop: asyncio.AbstractEventLoop
    csrf: str = ""

    def _run(self, coro):
        return self.loop.run_until_complete(coro)

    def get(self, path: str, **kw):
        resp = self._run(self.client.get(path, allow_redirects=kw.pop("allow_redirects", True), **kw))
        body = self._run(resp.text())
        m = CSRF.search(body)
        if m:
            self.csrf = m.group(1)
        return resp, body

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kw):
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        resp = self._run(self.client.post(path, data=form,
                                          allow_redirects=kw.pop("allow_redirects", True), **kw))
        body = self._run(resp.text())
        m = CSRF.search(body)
        if m:
            self.csrf = m.group(1)
        return resp, body

    def sign_in(self, email: str, password: str = PASSWORD):
        self.get("/login")
        return self.post("/login", {"email": email, "password": password})


@pytest.fixture
def console(console_db):
    settings = Settings(database_url=console_db.url, kafka_bootstrap="127.0.0.1:1")
    return Console(settings, console_db)


@pytest.fixture
def browser_factory(console):
    loop = asyncio.new_event_loop()
    clients: list[TestClient] = []

    def make() -> Browser:
        app: web.Application = build_app(console)
        client = TestClient(TestServer(app, loop=loop), loop=loop)
        loop.run_until_complete(client.start_server())
        clients.append(client)
        return Browser(client, loop)

    yield make
    for c in clients:
        loop.run_until_complete(c.close())
    loop.close()


@pytest.fixture
def browser(browser_factory) -> Browser:
    return browser_factory()
