"""The system of record: models, engine and sessions, migrations."""

from . import bridge_models, campaigns_models, console_models, inbox_models, schemes  # noqa: F401
from .models import Base
from .session import Database, session_scope

__all__ = ["Base", "Database", "session_scope"]
