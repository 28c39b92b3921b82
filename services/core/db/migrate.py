"""Run Alembic migrations programmatically: ``python -m services.core.db.migrate [up|down|current]``."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from ..settings import get_settings
from .session import make_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    make_engine(url).dispose()  # creates the SQLite directory if needed
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


if __name__ == "__main__":
    url = get_settings().database_url
    action = sys.argv[1] if len(sys.argv) > 1 else "up"
    if action == "up":
        upgrade(url)
    elif action == "down":
        downgrade(url)
    elif action == "current":
        command.current(alembic_config(url))
    else:
        sys.exit("usage: python -m services.core.db.migrate [up|down|current]")
    print(f"database {action}: ok")
