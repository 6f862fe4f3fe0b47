"""What each rate pool spent, per five minutes: the calls started and the 429s met, by every
process that shares the database (the console's Budgets page reads it).

``<prefix>_history(pool, scope, bucket, calls, throttled)``: one row per pool, scope (a short
digest of an API key) and five-minute bucket (``bucket``: its start, epoch seconds).

Cost: a 429 is rare and is added at once, inside the transaction that pauses the pool (one
``INSERT ... ON CONFLICT DO UPDATE``). Calls are frequent: each process counts them in memory
and adds its counts at most every :data:`FLUSH_SECONDS`, inside the transaction of the next call
that fires (no commit of its own), and when the budget closes or reads the history. Writing one
upsert per call measured about 1 ms more per call on SQLite (``bench/budget_history.py``); this
way it is one upsert per pool every few seconds. A process killed outright loses at most its last
few seconds of call counts, never a 429. Rows older than :data:`KEEP_SECONDS` are deleted by each
process once per bucket.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

BUCKET_SECONDS = 300  # five minutes
FLUSH_SECONDS = 5.0  # a process adds its call counts at most this often
KEEP_SECONDS = 3 * 86400  # three days are kept; the page shows the last 24 hours
HOUR = 3600


def bucket_of(now: float) -> int:
    """The start (epoch seconds) of the five-minute bucket holding ``now``."""
    return int(now // BUCKET_SECONDS) * BUCKET_SECONDS


@dataclass(frozen=True)
class Spent:
    """One pool and scope over a span: calls started and 429s, per hour (oldest first)."""

    pool: str
    scope: str
    calls: list[int]
    throttled: list[int]
    throttled_last_hour: int


class History:
    """The history table of one budget (same metadata, same prefix as its buckets)."""

    def __init__(self, metadata: sa.MetaData, table_prefix: str) -> None:
        self.table = sa.Table(
            f"{table_prefix}_history",
            metadata,
            sa.Column("pool", sa.String(32), primary_key=True),
            sa.Column("scope", sa.String(128), primary_key=True),
            sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("calls", sa.Integer, nullable=False, server_default=sa.text("0")),
            sa.Column("throttled", sa.Integer, nullable=False, server_default=sa.text("0")),
        )
        self._pruned = 0  # the bucket this process last pruned in
        self._pending: dict[tuple[str, str, int], int] = {}  # calls counted, not yet written
        self._flushed_at = float("-inf")
        self._lock = threading.Lock()

    def count(self, conn: Connection, pool: str, scope: str, now: float) -> None:
        """A call fired: count it; every :data:`FLUSH_SECONDS`, write the counts in the caller's
        transaction."""
        with self._lock:
            key = (pool, scope, bucket_of(now))
            self._pending[key] = self._pending.get(key, 0) + 1
            due = now - self._flushed_at >= FLUSH_SECONDS
        if due:
            self.flush(conn, now)

    def flush(self, conn: Connection, now: float) -> None:
        """Write the calls counted so far, in the caller's transaction."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed_at = now
        for (pool, scope, bucket), calls in sorted(pending.items()):
            self.record(conn, pool, scope, float(bucket), calls=calls)

    def record(
        self, conn: Connection, pool: str, scope: str, now: float, *, calls: int = 0, throttled: int = 0
    ) -> None:
        """Add ``calls`` and ``throttled`` to the bucket of ``now``, in the caller's transaction
        (one statement; a second when this process enters a new bucket: the prune)."""
        bucket = bucket_of(now)
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(self.table).values(pool=pool, scope=scope, bucket=bucket, calls=calls, throttled=throttled)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[self.table.c.pool, self.table.c.scope, self.table.c.bucket],
                set_={
                    "calls": self.table.c.calls + stmt.excluded.calls,
                    "throttled": self.table.c.throttled + stmt.excluded.throttled,
                },
            )
        )
        if bucket != self._pruned:
            self._pruned = bucket
            conn.execute(self.table.delete().where(self.table.c.bucket < bucket - KEEP_SECONDS))

    def spent(self, conn: Connection, now: float, *, hours: int = 24) -> list[Spent]:
        """Per pool and scope: calls and 429s in each of the last ``hours`` hours (the last one
        ends at ``now``), and the 429s of the buckets that began in the last hour. One query."""
        since = bucket_of(now - hours * HOUR) + BUCKET_SECONDS
        t = self.table.c
        rows = conn.execute(
            sa.select(t.pool, t.scope, t.bucket, t.calls, t.throttled).where(t.bucket >= since).order_by(t.bucket)
        ).all()
        return aggregate(rows, now, hours)


def aggregate(rows: Sequence[Any], now: float, hours: int) -> list[Spent]:
    """Five-minute rows (pool, scope, bucket, calls, throttled) into hourly series ending at
    ``now``. Pure."""
    found: dict[tuple[str, str], tuple[list[int], list[int], list[int]]] = {}
    for pool, scope, bucket, calls, throttled in rows:
        series = found.setdefault((pool, scope), ([0] * hours, [0] * hours, [0]))
        age = int((now - bucket) // HOUR)  # 0: the bucket began within the last hour
        if 0 <= age < hours:
            series[0][hours - 1 - age] += int(calls)
            series[1][hours - 1 - age] += int(throttled)
        if now - bucket < HOUR:
            series[2][0] += int(throttled)
    return [Spent(p, s, c, t, last[0]) for (p, s), (c, t, last) in sorted(found.items())]
