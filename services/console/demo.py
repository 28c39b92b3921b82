"""The first owner of the demo tenant, for `make run`: the email and a generated password are
written once to .run/demo-console-login (mode 600) and printed by the stack. Does nothing if
the user exists."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import select

from services.core.db import Database
from services.core.db.console_models import ConsoleUser
from services.core.settings import get_settings

from .domain import users

DEMO_EMAIL = "owner@demo.example"


def seed(db: Database, login_file: Path, tenant_id: str = "demo") -> tuple[str, str] | None:
    with db.session() as s:
        if s.scalar(select(ConsoleUser.id).where(ConsoleUser.email == DEMO_EMAIL)) is not None:
            return None
        password = secrets.token_urlsafe(12)
        users.create_user(s, email=DEMO_EMAIL, password=password, role="owner",
                          tenant_id=tenant_id, name="Demo Owner")
    login_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(login_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{DEMO_EMAIL}\n{password}\n")
    return DEMO_EMAIL, password


if __name__ == "__main__":
    db = Database(get_settings().database_url)
    path = Path(".run") / "demo-console-login"
    if seed(db, path):
        print(f"herald: console owner {DEMO_EMAIL} created; the sign-in is in {path}")
    db.dispose()
