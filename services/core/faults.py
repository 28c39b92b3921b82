"""Fault injection for the crash-and-redelivery tests: the process dies right after its database
transaction committed a batch, before that batch's events are produced or its offsets
committed, i.e. exactly in the window that redelivery must cover. Unset in any real deployment."""

from __future__ import annotations

import os
from collections.abc import Mapping

CRASH_AFTER_BATCHES = "HERALD_FAULT_EXIT_AFTER_COMMITTED_BATCHES"
EXIT_CODE = 70


class CrashAfterBatches:
    """Counts committed batches and ends the process (no clean-up, like a kill) at the
    ``HERALD_FAULT_EXIT_AFTER_COMMITTED_BATCHES``-th one; does nothing when it is unset."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.limit = int(env.get(CRASH_AFTER_BATCHES, "0") or 0)
        self.committed = 0

    def batch_committed(self) -> None:
        self.committed += 1
        if self.limit and self.committed >= self.limit:
            os._exit(EXIT_CODE)
