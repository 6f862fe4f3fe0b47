"""A rate and concurrency budget shared by every process that uses the same database.

Why not DBOS queues: their rate limits do not hold across processes on SQLite (measured, see
``docs/architecture.md#durable-execution``). So the budget keeps its own two tables and changes them atomically, one
short transaction per step (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on
PostgreSQL):

``<prefix>_bucket(pool, scope, tokens, updated_at, paused_until, last_fire, factor, factor_at)``
    A token bucket per pool and scope (project or org). Tokens refill at
    ``fraction x documented rate x rate_scale`` up to a small capacity (see
    :func:`~amplitude_dsr.amplitude.limits.bucket_capacity`). A caller *reserves* its tokens
    (the balance may go negative) and sleeps until they would have existed, so waiting callers
    are served in order without polling. ``paused_until`` is set after a 429 and stops every
    process from spending that pool until then; afterwards the bucket restarts empty and
    waiting callers queue again (no burst after a 429). ``last_fire`` enforces the documented
    spacing of a one-per-window pool (deletions: 1 per second) when a call really starts.
    ``factor``/``factor_at`` scale the refill rate after a 429 (halved, then regained window by
    window: :mod:`~amplitude_dsr.amplitude.adaptive`), so a pool that somebody else shares
    settles below the wall instead of hitting it after every pause. ``throttled`` counts the
    429s every process met in the pool (what ``/metrics`` reports; :meth:`Budget.snapshot`).
``<prefix>_history(pool, scope, bucket, calls, throttled)``
    Calls started and 429s per five minutes (:mod:`~amplitude_dsr.amplitude.budget_history`),
    added inside the transactions below: a 429 at once with its pause; calls counted in memory
    and added every few seconds with a call that fires.
``<prefix>_slot(pool, scope, slot, holder, expires_at)``
    One row per concurrency slot. A call claims a free (or expired) row for each pool it holds
    and releases it afterwards; a crashed process's lease expires after ``lease_seconds``.

Time is epoch seconds from the injectable ``clock``; tests use a fake clock and sleep.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from amplitude_dsr.amplitude.adaptive import MIN_RECOVERY_WINDOW, current_factor, decreased
from amplitude_dsr.amplitude.budget_history import History, Spent
from amplitude_dsr.amplitude.handoff import Handoff
from amplitude_dsr.amplitude.limits import (
    POOLS,
    PoolSpec,
    bucket_capacity,
    bucket_rate,
    min_call_cost,
    min_interval,
    pool_spec,
    slot_count,
)
from amplitude_dsr.config import normalize_database_url
from amplitude_dsr.errors import BudgetExhausted


@dataclass(frozen=True)
class PoolRoom:
    """One pool and scope as :meth:`Budget.snapshot` read it: ``tokens`` free of ``capacity``
    (may be negative: reserved by waiting callers; both ``None`` for a pool without a rate),
    the rate ``factor`` after 429s, seconds still ``paused_for``, concurrency ``slots_held`` of
    ``slots`` (0: no cap), 429s counted."""

    pool: str
    scope: str
    tokens: float | None
    capacity: float | None
    factor: float
    paused_for: float
    slots_held: int
    slots: int
    throttled: int


SLOT_POLL_MIN = 0.02  # seconds between attempts to claim a busy concurrency slot
SLOT_POLL_MAX = 0.25
FLOAT_NOISE = 1e-6  # seconds: a shorter computed wait is rounding error, not a wait
SQLITE_BUSY_TIMEOUT = 60.0  # seconds SQLite waits for the write lock before failing
# Connections per process. Every budget transaction is short and serialised on one row anyway, so
# a thread that finds them all busy waits for one (that is waiting for the budget, not a failure).
POOL_SIZE = 5
POOL_OVERFLOW = 10
POOL_TIMEOUT = 3600.0
POOL_RECYCLE = 1800.0  # seconds: older PostgreSQL connections are replaced at checkout


def _make_engine(url: str, pg_options: dict[str, Any] | None = None) -> Engine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT},
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            pool_timeout=POOL_TIMEOUT,
        )

        @event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_connection: Any, _record: object) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE itself. WAL (as the store
            # uses) keeps each short commit cheap; NORMAL sync is durable enough for a budget.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # The process's runtime passes its bounded pool and connection options (store/db.py's
    # pg_engine_options); the defaults serve a Budget built on its own (tests, benchmarks).
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_recycle": POOL_RECYCLE,
        "pool_size": POOL_SIZE,
        "max_overflow": POOL_OVERFLOW,
        "pool_timeout": POOL_TIMEOUT,
        **(pg_options or {}),
    }
    engine = sa.create_engine(url, **options)
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _async_commit(dbapi_connection: Any, _record: object) -> None:
            # Budget rows are bookkeeping: losing the last milliseconds of it in a server crash
            # is harmless, waiting for a WAL flush on every call is not.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO OFF")
            dbapi_connection.commit()

    return engine


class Budget:
    """Token buckets and concurrency slots per pool and scope, held in the database.

    ``acquire`` waits for rate tokens and for a slot in each concurrency pool the call holds;
    when the wait would exceed ``max_inline_wait`` seconds it raises
    :class:`~amplitude_dsr.errors.BudgetExhausted` with ``resume_at`` so a durable workflow
    can sleep instead of blocking a worker.
    """

    def __init__(
        self,
        database_url: str,
        *,
        fraction: float = 0.75,
        rate_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_inline_wait: float = 30.0,
        lease_seconds: float = 90.0,
        table_prefix: str = "amplitude_budget",
        pg_engine_options: dict[str, Any] | None = None,
    ) -> None:
        if not 0 < fraction <= 1:
            raise ValueError("fraction must be in (0, 1]")
        if rate_scale <= 0:
            raise ValueError("rate_scale must be positive")
        self.fraction = fraction
        self.rate_scale = rate_scale
        self.clock = clock
        self.sleep = sleep
        self.max_inline_wait = max_inline_wait
        self.lease_seconds = lease_seconds
        self._engine = _make_engine(database_url, pg_engine_options)
        self._is_pg = self._engine.dialect.name == "postgresql"
        self._metadata = sa.MetaData()
        self.bucket = sa.Table(
            f"{table_prefix}_bucket",
            self._metadata,
            sa.Column("pool", sa.String(32), primary_key=True),
            sa.Column("scope", sa.String(128), primary_key=True),
            sa.Column("tokens", sa.Float, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("paused_until", sa.Float, nullable=False),
            sa.Column("last_fire", sa.Float, nullable=False),
            sa.Column("factor", sa.Float, nullable=False, server_default=sa.text("1.0")),
            sa.Column("factor_at", sa.Float, nullable=False, server_default=sa.text("0.0")),
            sa.Column("throttled", sa.Integer, nullable=False, server_default=sa.text("0")),
        )
        self.slot = sa.Table(
            f"{table_prefix}_slot",
            self._metadata,
            sa.Column("pool", sa.String(32), primary_key=True),
            sa.Column("scope", sa.String(128), primary_key=True),
            sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("holder", sa.String(32), nullable=True),
            sa.Column("expires_at", sa.Float, nullable=False),
        )
        self.history = History(self._metadata, table_prefix)
        self._sql = _Statements(self.bucket, self.slot)
        self._ready: set[tuple[str, str]] = set()
        self._tables_ready = False
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._handoff = Handoff()  # slots freed by this process's callers wake its waiters

    # --- setup -------------------------------------------------------------------------

    def create_tables(self) -> None:
        """Create the budget tables if missing (safe to call from several processes)."""
        try:
            self._metadata.create_all(self._engine, checkfirst=True)
        except sa.exc.DBAPIError:
            # Another process created them between the check and the CREATE.
            self._metadata.create_all(self._engine, checkfirst=True)
        self._add_missing_columns()
        self._tables_ready = True

    def _add_missing_columns(self) -> None:
        """Bring a bucket table created by an earlier version up to date (adds ``factor``,
        ``factor_at`` and ``throttled`` with their defaults; a concurrent process may win the
        race, that is fine)."""
        present = {c["name"] for c in sa.inspect(self._engine).get_columns(self.bucket.name)}
        for column in self.bucket.columns:
            if column.name in present:
                continue
            ddl = (
                f'ALTER TABLE "{self.bucket.name}" ADD COLUMN "{column.name}" '
                f"{column.type.compile(dialect=self._engine.dialect)} NOT NULL "
                f"DEFAULT {column.server_default.arg.text}"  # type: ignore[union-attr]
            )
            try:
                with self._engine.begin() as conn:
                    conn.exec_driver_sql(ddl)
            except sa.exc.DBAPIError:
                present = {c["name"] for c in sa.inspect(self._engine).get_columns(self.bucket.name)}
                if column.name not in present:
                    raise

    def close(self) -> None:
        """Write the calls counted in memory (the history), then release the connections."""
        if self._tables_ready:
            try:
                with self._engine.begin() as conn:
                    self.history.flush(conn, self.clock())
            except sa.exc.DBAPIError:  # the counts of the last seconds are lost, nothing else
                pass
        self._engine.dispose()

    def _ensure_tables(self) -> None:
        if not self._tables_ready:
            with self._lock:
                if not self._tables_ready:
                    self.create_tables()

    def _ensure(self, pools: tuple[str, ...], scope: str) -> None:
        """Create the bucket and slot rows of ``pools``/``scope`` once per process, in their own
        committed transaction (a row must be visible to other threads before we rely on it)."""
        self._ensure_tables()
        missing = [pool for pool in pools if (pool, scope) not in self._ready]
        if not missing:
            return
        insert = postgresql.insert if self._is_pg else sqlite.insert
        with self._engine.begin() as conn:
            for pool in missing:
                spec = pool_spec(pool)
                capacity = bucket_capacity(spec, self.fraction, min_call_cost(pool))
                conn.execute(
                    insert(self.bucket)
                    .values(
                        pool=pool,
                        scope=scope,
                        tokens=capacity,
                        updated_at=self.clock(),
                        paused_until=0.0,
                        last_fire=0.0,
                        factor=1.0,
                        factor_at=0.0,
                    )
                    .on_conflict_do_nothing()
                )
                slots = max(spec.concurrency or 0, slot_count(spec, self.fraction))
                if slots:
                    rows = [
                        {"pool": pool, "scope": scope, "slot": i, "holder": None, "expires_at": 0.0}
                        for i in range(slots)
                    ]
                    conn.execute(insert(self.slot).values(rows).on_conflict_do_nothing())
        self._ready.update((pool, scope) for pool in missing)

    # --- public API ----------------------------------------------------------------------

    def acquire(self, pool: str, scope: str, cost: int = 1) -> AbstractContextManager[None]:
        """Wait for ``cost`` tokens of ``pool`` and a concurrency slot in every pool the call
        holds (``rest`` for every Dashboard/privacy call), for ``scope`` (a project or org key
        hash, never a secret). Use as ``with budget.acquire("user", scope): ...``.

        Raises :class:`~amplitude_dsr.errors.BudgetExhausted` when the wait would exceed
        ``max_inline_wait``; nothing is spent then.
        """
        spec = pool_spec(pool)
        if cost < 1:
            raise ValueError("cost must be at least 1")
        capacity = bucket_capacity(spec, self.fraction, min_call_cost(pool))
        if cost > capacity:
            raise ValueError(f"cost {cost} exceeds the {pool} bucket capacity {capacity}")
        return self._acquire(pool, scope, cost)

    def pause(self, pool: str, scope: str, until: float, *, slow_down: bool = True) -> None:
        """After a 429: no process spends ``pool`` for ``scope`` before ``until`` (epoch
        seconds). The bucket restarts empty then, and callers already waiting queue again, so
        the pool resumes without a burst. A 429 that starts a new pause also halves the pool's
        rate factor (recovering from ``until`` on); one that arrives during a pause (a call that
        was already in flight) does not, and neither does a concurrency 429 (``slow_down`` false:
        too many calls at once, not too many per window)."""
        spec = pool_spec(pool)
        self._ensure((pool,), scope)
        with self._engine.begin() as conn:
            row = self._lock_bucket(conn, pool, scope)
            now = self.clock()
            values: dict[str, Any] = {
                "throttled": self.bucket.c.throttled + 1,
                "paused_until": max(row.paused_until, until),
                "tokens": 0.0,
                "updated_at": max(row.updated_at, row.paused_until, until),
            }
            if slow_down and row.paused_until <= now:
                factor = current_factor(row.factor, row.factor_at, now, self._window(spec), self._min_recovery)
                values.update(factor=decreased(factor), factor_at=max(until, now))
            conn.execute(
                self.bucket.update().where(self.bucket.c.pool == pool, self.bucket.c.scope == scope).values(**values)
            )
            self.history.record(conn, pool, scope, now, throttled=1)
            self.history.flush(conn, now)

    def rate_factor(self, pool: str, scope: str) -> float:
        """The share of the configured rate ``pool`` runs at for ``scope`` now (1.0 unless a 429
        lowered it recently; see :mod:`~amplitude_dsr.amplitude.adaptive`)."""
        spec = pool_spec(pool)
        self._ensure_tables()
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(self.bucket.c.factor, self.bucket.c.factor_at).where(
                    self.bucket.c.pool == pool, self.bucket.c.scope == scope
                )
            ).one_or_none()
            conn.rollback()
        if row is None:
            return 1.0
        return current_factor(row.factor, row.factor_at, self.clock(), self._window(spec), self._min_recovery)

    def snapshot(self) -> list[PoolRoom]:
        """Every pool and scope this database has a bucket for, as of now: the tokens free
        (refilled to now, at most the capacity), the rate factor, the pause, the concurrency
        slots held and the 429s counted. Reads only; no row is locked or changed."""
        self._ensure_tables()
        with self._engine.connect() as conn:
            buckets = conn.execute(sa.select(self.bucket)).all()
            slot = self.slot.c
            held = {
                (r.pool, r.scope): int(r.n)
                for r in conn.execute(
                    sa.select(slot.pool, slot.scope, sa.func.count().label("n"))
                    .where(slot.holder.is_not(None), slot.expires_at >= self.clock())
                    .group_by(slot.pool, slot.scope)
                )
            }
            conn.rollback()
        now = self.clock()
        return [self._room(row, now, held.get((row.pool, row.scope), 0)) for row in buckets if row.pool in POOLS]

    def spent(self, hours: int = 24) -> list[Spent]:
        """Calls started and 429s per pool and scope in each of the last ``hours`` hours, and
        the 429s of the last hour, as every process recorded them (one query, no lock)."""
        self._ensure_tables()
        with self._engine.begin() as conn:
            self.history.flush(conn, self.clock())  # this process's own counts first
            return self.history.spent(conn, self.clock(), hours=hours)

    def _room(self, row: Any, now: float, slots_held: int) -> PoolRoom:
        spec = pool_spec(row.pool)
        capacity = bucket_capacity(spec, self.fraction, min_call_cost(row.pool))
        factor = current_factor(row.factor, row.factor_at, now, self._window(spec), self._min_recovery)
        full_rate = bucket_rate(spec, self.fraction, self.rate_scale, min_call_cost(row.pool))
        tokens = None
        if full_rate is not None:
            # As ``_wait_and_claim`` refills (a pause moved ``updated_at`` to its end).
            tokens = min(capacity, row.tokens + max(0.0, now - row.updated_at) * full_rate * factor)
        return PoolRoom(
            pool=row.pool, scope=row.scope, tokens=tokens, capacity=None if tokens is None else capacity, factor=factor,
            paused_for=max(0.0, row.paused_until - now), slots_held=slots_held,
            slots=slot_count(spec, self.fraction), throttled=int(row.throttled),
        )  # fmt: skip

    @property
    def _min_recovery(self) -> float:
        """:data:`~amplitude_dsr.amplitude.adaptive.MIN_RECOVERY_WINDOW` in scaled seconds."""
        return MIN_RECOVERY_WINDOW / self.rate_scale

    def _window(self, spec: PoolSpec) -> float | None:
        """The pool's documented window in (scaled) seconds, or ``None`` without a rate."""
        return None if spec.window is None else spec.window / self.rate_scale

    def paused_until(self, pool: str, scope: str) -> float:
        """The epoch second until which ``pool`` is paused for ``scope`` (0 when never)."""
        self._ensure_tables()
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(self.bucket.c.paused_until).where(self.bucket.c.pool == pool, self.bucket.c.scope == scope)
            ).scalar()
            conn.rollback()
        return float(value or 0.0)

    # --- internals -----------------------------------------------------------------------

    def _lock_bucket(self, conn: Connection, pool: str, scope: str) -> Any:
        """The bucket row of ``pool``/``scope``, locked until the transaction ends."""
        return conn.execute(self._sql.lock_bucket, {"b_pool": pool, "b_scope": scope}).one()

    @contextmanager
    def _acquire(self, pool: str, scope: str, cost: int) -> Iterator[None]:
        holder = uuid.uuid4().hex
        claimed = self._wait_and_claim(pool, scope, cost, holder)
        try:
            yield
        finally:
            if claimed:
                self._release(scope, holder, claimed)

    def _exhausted(self, pool: str, resume_at: float) -> BudgetExhausted:
        when = datetime.fromtimestamp(resume_at, UTC)
        return BudgetExhausted(
            f"the {pool} budget has no room within {self.max_inline_wait:g} s",
            resume_at=when,
            pool=pool,
        )

    def _wait_and_claim(self, pool: str, scope: str, cost: int, holder: str) -> list[str]:
        spec = pool_spec(pool)
        full_rate = bucket_rate(spec, self.fraction, self.rate_scale, min_call_cost(pool))
        window = self._window(spec)
        capacity = bucket_capacity(spec, self.fraction, min_call_cost(pool))
        gap = min_interval(spec, self.rate_scale, self.fraction)
        holds = tuple(p for p in spec.holds if slot_count(pool_spec(p), self.fraction))
        started = self.clock()
        reserved = False
        self._ensure((pool, *holds), scope)
        while True:
            seen = self._handoff.mark(scope)
            slot_wait = False
            with self._engine.begin() as conn:
                row = self._lock_bucket(conn, pool, scope)
                now = self.clock()
                waited = now - started
                rate = (
                    None
                    if full_rate is None
                    else full_rate * current_factor(row.factor, row.factor_at, now, window, self._min_recovery)
                )
                wait = 0.0
                resume_at = now
                if row.paused_until > now:
                    # Paused after a 429: wait it out and queue again afterwards (the pause
                    # emptied the bucket and forgot earlier reservations, ours included).
                    wait, resume_at = row.paused_until - now, row.paused_until
                    reserved = False
                elif not reserved:
                    # Reserve the tokens now (the balance may go negative), then sleep until
                    # they would have existed: waiting callers are served in order.
                    tokens = row.tokens
                    if rate is not None:
                        tokens = min(capacity, tokens + max(0.0, now - row.updated_at) * rate)
                        wait = max(0.0, (cost - tokens) / rate)
                        wait = 0.0 if wait < FLOAT_NOISE else wait
                    resume_at = now + wait
                    if waited + wait > self.max_inline_wait:
                        raise self._exhausted(pool, resume_at)
                    if rate is not None:
                        conn.execute(
                            self._sql.spend,
                            {"b_pool": pool, "b_scope": scope, "b_tokens": tokens - cost,
                             "b_updated": max(now, row.updated_at)},
                        )  # fmt: skip
                    reserved = True
                if wait <= 0:
                    # Tokens are ours: fire now unless the spacing gate or a busy slot says no.
                    gate = row.last_fire + gap - now
                    if gate > 0:
                        wait, resume_at = gate, now + gate
                    elif not holds or self._claim(conn, holds, scope, holder, now):
                        if gap:
                            conn.execute(self._sql.fired, {"b_pool": pool, "b_scope": scope, "b_now": now})
                        self.history.count(conn, pool, scope, now)
                        return list(holds)
                    else:
                        wait = self._rng.uniform(SLOT_POLL_MIN, SLOT_POLL_MAX)
                        resume_at = now + SLOT_POLL_MAX
                        slot_wait = True
                if waited + wait > self.max_inline_wait:
                    raise self._exhausted(pool, resume_at)
            if slot_wait and self.sleep is time.sleep:
                self._handoff.wait(scope, seen, wait)  # woken as soon as a caller here frees one
            else:
                self.sleep(wait)

    def _claim(self, conn: Connection, holds: tuple[str, ...], scope: str, holder: str, now: float) -> bool:
        picks: list[tuple[str, int]] = []
        for pool in holds:
            slots = slot_count(pool_spec(pool), self.fraction)
            free = conn.execute(
                self._sql.free_slot, {"b_pool": pool, "b_scope": scope, "b_slots": slots, "b_now": now}
            ).scalar()
            if free is None:
                return False
            picks.append((pool, free))
        for pool, number in picks:
            conn.execute(
                self._sql.take_slot,
                {"b_pool": pool, "b_scope": scope, "b_slot": number, "b_holder": holder,
                 "b_expires": now + self.lease_seconds},
            )  # fmt: skip
        return True

    def _release(self, scope: str, holder: str, pools: list[str]) -> None:
        with self._engine.begin() as conn:
            conn.execute(self._sql.free_held, {"b_scope": scope, "b_pools": pools, "b_holder": holder})
        self._handoff.freed(scope)


class _Statements:
    """The statements every call runs, built once per budget with bound parameters: building
    an expression and its cache key per call cost more CPU than running it (profiled with
    py-spy on the overhead bench; the bucket row is locked meanwhile on PostgreSQL)."""

    def __init__(self, bucket: sa.Table, slot: sa.Table) -> None:
        b, s = bucket.c, slot.c
        this_bucket = (b.pool == sa.bindparam("b_pool"), b.scope == sa.bindparam("b_scope"))
        self.lock_bucket = (
            sa.select(b.tokens, b.updated_at, b.paused_until, b.last_fire, b.factor, b.factor_at)
            .where(*this_bucket)
            .with_for_update()
        )
        self.spend = (
            bucket.update()
            .where(*this_bucket)
            .values(tokens=sa.bindparam("b_tokens"), updated_at=sa.bindparam("b_updated"))
        )
        self.fired = bucket.update().where(*this_bucket).values(last_fire=sa.bindparam("b_now"))
        self.free_slot = (
            sa.select(s.slot)
            .where(
                s.pool == sa.bindparam("b_pool"),
                s.scope == sa.bindparam("b_scope"),
                s.slot < sa.bindparam("b_slots"),
                sa.or_(s.holder.is_(None), s.expires_at < sa.bindparam("b_now")),
            )
            .order_by(s.slot)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        self.take_slot = (
            slot.update()
            .where(
                s.pool == sa.bindparam("b_pool"), s.scope == sa.bindparam("b_scope"), s.slot == sa.bindparam("b_slot")
            )
            .values(holder=sa.bindparam("b_holder"), expires_at=sa.bindparam("b_expires"))
        )
        self.free_held = (
            slot.update()
            .where(
                s.scope == sa.bindparam("b_scope"),
                s.pool.in_(sa.bindparam("b_pools", expanding=True)),
                s.holder == sa.bindparam("b_holder"),
            )
            .values(holder=None, expires_at=0.0)
        )
