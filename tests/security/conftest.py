"""The console's test fixtures (an in-process console over SQLite with tenants acme and other,
and a cookie-keeping client), reused by the isolation attempts on the admin API and the pages."""

from tests.console.conftest import (  # noqa: F401
    browser,
    browser_factory,
    console,
    console_db,
    quick_password_hashing,
)
