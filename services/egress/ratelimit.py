"""A per-carrier token bucket shared by every egress worker process, kept in ``rate_buckets``.

Each DB round trip is one short transaction that refills the row by elapsed time × rate
(capped at burst) and leases up to ``lease`` tokens to this worker, which hands them out
locally. Leasing in chunks keeps DB round trips near rate/lease per second in total. When
the bucket is short, the lease is reserved ahead (the row goes negative) and handed out once
the refill covers it, so waiting workers queue in order instead of polling.

Guarantee: tokens usable by all workers by time t are at most rate × (t - t0) + burst, so
the carrier never sees more than that plus the unused leases workers still hold (at most
``lease`` each); ``close()`` gives unused tokens back.

Row locking: PostgreSQL ``SELECT ... FOR UPDATE``; SQLite ``BEGIN IMMEDIATE`` (takes the
database write lock up front, so two workers cannot both read the old token count).
The clock is unix time (shared across processes and hosts), never monotonic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.core.db.models import RateBucket
from services.core.db.session import Database

_TABLE = RateBucket.__table__


class SharedTokenBucket:
    def __init__(
        self,
        db: Database,
        carrier: str,
        rate: float,
        burst: float | None = None,
        lease: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """``rate`` tokens per second; ``burst`` the bucket size (default: one second's worth,
        at least 1); ``lease`` the most tokens taken per round trip (default rate/20, at
        least 1, at most burst)."""
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self.db = db
        self.carrier = carrier
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        if not self.burst > 0:
            raise ValueError("burst must be > 0")
        self.lease = min(float(lease) if lease is not None else max(1.0, self.rate / 20), self.burst)
        if not self.lease > 0:
            raise ValueError("lease must be > 0")
        if db.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"SharedTokenBucket supports sqlite and postgresql, not {db.dialect}")
        self._clock = clock
        self._sleep = sleep
        self._local = 0.0  # leased to this worker, not yet handed out
        self._ready_at = 0.0  # unix time from which the local tokens may be handed out
        self._lock = asyncio.Lock()  # one lease in flight per worker; waiters queue in order
        self.round_trips = 0

    async def acquire(self, n: float = 1, max_wait: float | None = None) -> float:
        """Wait until ``n`` tokens are granted to the caller; returns 0.

        With ``max_wait``: a wait longer than that (the carrier is paused, see ``pause``) is not
        slept; nothing is granted and the wait is returned, the lease staying with this worker.
        """
        if not n > 0:
            raise ValueError("n must be > 0")
        async with self._lock:
            while True:
                if self._local < n:
                    taken, ready_at = await asyncio.to_thread(self._lease, n - self._local)
                    self._local += taken
                    self._ready_at = max(self._ready_at, ready_at)
                wait = self._ready_at - self._clock()
                if wait <= 0:
                    break
                if max_wait is not None and wait > max_wait:
                    return wait
                # Cancelled here, the reservation stays with this worker for the next caller.
                await self._sleep(wait)
            self._local -= n
            return 0.0

    async def pause(self, seconds: float) -> None:
        """The carrier asked us to slow down: no worker sends to it for ``seconds``.

        The shared row goes to ``-rate * seconds`` tokens (if not lower already), so every
        worker's next lease is ready only after the refill has covered that; this worker's
        local tokens wait as long.
        """
        if not seconds > 0:
            return
        async with self._lock:
            until = await asyncio.to_thread(self._hold, seconds)
            self._ready_at = max(self._ready_at, until)

    async def close(self) -> None:
        """Give back the tokens leased but not used (capped at burst)."""
        async with self._lock:
            if self._local > 0:
                await asyncio.to_thread(self._give_back, self._local)
                self._local = 0.0

    # The DB side: blocking, run in a thread.

    def _lease(self, need: float) -> tuple[float, float]:
        """One transaction: refill, then reserve tokens. Returns (tokens, usable from).

        Enough in the bucket: take up to a lease at once. Too few: reserve a lease anyway (the
        row goes negative, so later callers queue behind) and use it when the refill has
        covered it. Reserving rather than polling keeps it at one round trip per lease even
        when every worker is waiting, and a large ``need`` cannot be starved by small ones.
        """
        with self.db.engine.connect() as conn:
            tokens, now = self._locked_row(conn)
            want = max(need, self.lease)
            take = min(tokens, want) if tokens >= need else want
            left = tokens - take
            self._store(conn, left, now)
            conn.commit()
        self.round_trips += 1
        return take, now + max(0.0, -left) / self.rate

    def _give_back(self, amount: float) -> None:
        # Returning reserved-but-unused tokens is always safe: they were never handed out.
        with self.db.engine.connect() as conn:
            tokens, now = self._locked_row(conn)
            self._store(conn, min(self.burst, tokens + amount), now)
            conn.commit()

    def _hold(self, seconds: float) -> float:
        with self.db.engine.connect() as conn:
            tokens, now = self._locked_row(conn)
            self._store(conn, min(tokens, -self.rate * seconds), now)
            conn.commit()
        return now + seconds

    def _locked_row(self, conn: Connection) -> tuple[float, float]:
        """Lock this carrier's row (creating it full) and return (refilled tokens, now)."""
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        query = select(_TABLE.c.tokens, _TABLE.c.updated_at).where(
            _TABLE.c.carrier == self.carrier).with_for_update()
        row = conn.execute(query).first()
        if row is None:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            # Another worker may create it at the same moment: then theirs stands.
            conn.execute(insert(_TABLE).values(carrier=self.carrier, tokens=self.burst,
                                               updated_at=self._clock()).on_conflict_do_nothing())
            row = conn.execute(query).one()
        # Read the clock under the lock: a worker that waited for the lock must not refill
        # from a time older than what the previous holder stored.
        now = self._clock()
        tokens, updated_at = float(row.tokens), float(row.updated_at)
        elapsed = max(0.0, now - updated_at)  # a clock behind the stored time adds nothing
        return min(self.burst, tokens + elapsed * self.rate), max(now, updated_at)

    def _store(self, conn: Connection, tokens: float, now: float) -> None:
        conn.execute(update(_TABLE).where(_TABLE.c.carrier == self.carrier)
                     .values(tokens=tokens, updated_at=now))
