"""The console in a real headless Chromium (Debian's, driven by Playwright; nothing downloaded)
against the real stack: broker, database, simulator, ingress, router, egress, campaigns, metrics,
verifier, ledger and the console as processes. One stack serves the whole browser session; each test has its
own tenant. Screenshots go to HERALD_SCREENSHOTS (default .run/screenshots)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.topics import ensure_topics
from tests.conftest import POSTGRES_URL
from tests.conftest import _fresh_url as fresh_url
from tests.support.infra import ROOT, Proc, Stack
from tests.support.platform import Platform, start_platform
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("HERALD_SCREENSHOTS", ROOT / ".run" / "screenshots"))
PASSWORD = "browser-test-password"
CATCH_ALL = ("", "campaigns", {"pattern": ".*", "priority": 1000})


@dataclass
class Env:
    stack: Stack
    platform: Platform
    campaigns: Proc
    console: Proc
    _n: int = 0

    @property
    def url(self) -> str:
        return self.console.url

    def tenant(self, tenant_id: str, role: str = "owner", keywords=(CATCH_ALL,)) -> Tenant:
        from services.console.domain import users

        self._n += 1
        number = f"1068{self._n:04d}"
        key = seed_tenant(self.stack, tenant_id, number=number, keywords=list(keywords))
        db = Database(self.stack.database_url)
        email = f"{role}@{tenant_id}.example"
        try:
            with db.session() as s:
                users.create_user(s, email=email, password=PASSWORD, role=role,
                                  tenant_id=tenant_id, name=f"{tenant_id.title()} {role.title()}")
        finally:
            db.dispose()
        return Tenant(self, tenant_id, number, key, email)


@dataclass
class Tenant:
    env: Env
    id: str
    number: str
    key: str
    email: str


@pytest.fixture(scope="package")
def env(broker, tmp_path_factory):
    # One stack for the browser tests, stopped when they are done: on PostgreSQL it shares the
    # test database, and a campaigns worker left running for the rest of the session took the
    # campaigns of later tests on that database (their leases, their sends).
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-db') / 'herald.db'}"
    if POSTGRES_URL:
        url = fresh_url("postgresql", tmp_path_factory)
    upgrade(url)
    stack = Stack(broker.bootstrap, url)
    ensure_topics(stack.settings(topic_partitions=3))
    try:
        platform = start_platform(stack, tmp_path_factory.mktemp("browser-platform"))
        campaigns = stack.start("services.campaigns", HERALD_CAMPAIGNS_TICK_S="0.2")
        stack.start("services.metrics", HERALD_METRICS_GRACE_S="0", HERALD_METRICS_FLUSH_S="0.5")
        stack.start("services.verifier")  # the brand scheme's pages (codes texted in)
        stack.start("services.ledger")
        console = stack.start("services.console",
                              HERALD_CARRIERS_FILE=str(platform.ingress.env["HERALD_CARRIERS_FILE"]))
        yield Env(stack, platform, campaigns, console)
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def chromium():
    # Module scope: Playwright's sync API runs an event loop in this thread while it is open;
    # closed after each browser module, it cannot stand in the way of later tests' own loops.
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (deploy/browser/chromium.sh ensure)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--headless=new"])
        print(f"chromium {browser.version}")
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1366, "height": 860}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, env: Env, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{env.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
