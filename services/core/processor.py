"""The one way a Herald processor is built: ``Processor(name)``, with streams that decode and
validate each event (sending what fails to ``<topic>.dlq`` with the reason), a plain handler that
holds the domain logic, sends that are acknowledged by the broker before the consumed offsets
may be committed, and /health and /metrics.

Two cores stand behind the one API: ``Processor(name, core="librdkafka")`` is the batched
librdkafka core (``services.core.rdkafka_core.BatchProcessor``) that the hot processors (router,
egress, verifier, ledger) choose; the default is the Faust app (``services.core.faust_core``),
kept where Faust's tables and timers earn their place (campaigns, metrics, bridge).
docs/performance.md has the measurement behind the choice.

Each core is imported only when a processor on it is made, so a librdkafka-core process never
loads Faust, aiokafka and mode (about 15 MB of resident memory; docs/performance.md, egress's
memory). The Faust core's own classes are imported from ``services.core.faust_core``.
"""

from __future__ import annotations

from typing import Any

from .events import Handler, In, Out, Rejected
from .retry import TRANSIENT
from .settings import Settings

__all__ = ["TRANSIENT", "Handler", "In", "Out", "Processor", "Rejected"]


class Processor:
    """``Processor(name, port=None, settings=None, use_db=True, core=None)``: a processor on the
    Faust core (``core`` None or "faust"; a ``faust_core.FaustProcessor``, which is a Processor)
    or on the librdkafka core (``core="librdkafka"``; a ``rdkafka_core.BatchProcessor``)."""

    core = "faust"

    def __new__(cls, name: str = "", port: int | None = None, settings: Settings | None = None,
                use_db: bool = True, *, core: str | None = None) -> Any:
        if cls is Processor:
            if core not in (None, "faust", "librdkafka"):
                raise ValueError(f"unknown processor core {core!r}")
            if core == "librdkafka":
                from .rdkafka_core import BatchProcessor

                return BatchProcessor(name, port, settings, use_db)
            from .faust_core import FaustProcessor

            cls = FaustProcessor  # a subclass: Python runs its __init__ with the same arguments
        return super().__new__(cls)

