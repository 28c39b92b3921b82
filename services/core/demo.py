"""Demo data for a first `make run`: tenant "demo" on short code 10690000, with keywords, and an
API key written once to .run/demo-api-key (mode 600). Does nothing if the tenant exists."""

from __future__ import annotations

import os
from pathlib import Path

from .db import Database
from .db.models import Tenant
from .settings import get_settings
from .tenancy import add_keyword, add_number, create_tenant, issue_api_key
from .topics import ensure_topics, tenant_topics


def seed(db: Database, key_file: Path | None = None) -> str | None:
    with db.session() as s:
        if s.get(Tenant, "demo") is not None:
            return None
        create_tenant(s, "demo", "Demo Institution", default_sender="10690000",
                      help_text="Demo Institution: text INFO for news. Reply STOP to opt out.")
        add_number(s, "demo", "10690000")
        add_keyword(s, "demo", "INFO", "reply", reply_text="Herald demo: all systems go.")
        add_keyword(s, "demo", "CODE", "codes")
        add_keyword(s, "demo", "", "codes", pattern=r"^[A-Za-z0-9]{12}$", priority=200)
        key = issue_api_key(s, "demo", "demo key")
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
    return key


if __name__ == "__main__":
    settings = get_settings()
    ensure_topics(settings, extra=tenant_topics("demo"))
    db = Database(settings.database_url)
    path = Path(".run") / "demo-api-key"
    if seed(db, path):
        print(f"herald: demo tenant created; its API key is in {path}")
    db.dispose()
