"""The campaigns processor's Faust app: a thin adapter.

Start-up: settings -> database -> Faust app with the campaigns.inbound agent and the expander
task (its web server serves /health and /metrics; the admin API is the console's) -> run until
SIGTERM/SIGINT -> stop: the engine hands its campaign leases back (so another worker resumes at
once), then the app stops.
"""

from __future__ import annotations

from typing import Any

from services.core import topics
from services.core.processor import Processor

from .config import get_config
from .engine import Engine


def build() -> Processor:
    p = Processor("campaigns")
    assert p.db is not None
    config = get_config()
    engine = Engine(p, config)
    p.consume(topics.CAMPAIGNS_INBOUND, engine.on_inbound, batch=50)
    app = p.app

    @app.task
    async def expander() -> None:
        await engine.run()

    @app.on_before_shutdown.connect
    async def stop_engine(sender: Any = None, **kwargs: Any) -> None:
        await engine.close()

    return p
