"""Database connections of one process: how many each role may hold, what they are called on the
server, and the executor lock that must outlive a dropped connection.

Every PostgreSQL connection of a process belongs to one of four bounded pools (DBOS's system
database, our tables, the budgets, the executor lock), so a process never holds more than
:meth:`Footprint.most` connections; ``docs/operations.md`` ("Connections and database faults")
gives the numbers per role. Each connection carries ``application_name``
``amplitude-dsr <role> <pid> <part>`` so ``pg_stat_activity`` shows who holds what.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from dbos import DBOSConfig

from amplitude_dsr.store.db import Pool, make_engine, pg_engine_options, private_file, sqlite_path

# DBOS keeps one more connection outside its pool for LISTEN/NOTIFY (its notification listener).
DBOS_LISTENER = 1
# Seconds a DBOS thread waits for a pooled system-database connection (DBOS's default is 30 s,
# after which it logs and retries; a longer wait under load is quieter and just as correct).
DBOS_POOL_TIMEOUT = 120.0
LOCK_CHECK_INTERVAL = 2.0  # seconds between checks that the executor lock's connection is alive

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Footprint:
    """The connection pools of one process role."""

    dbos: int  # DBOS system database pool (DBOS opens no overflow connections)
    store: Pool  # our tables
    budget: Pool  # the budget tables
    lock: int  # the executor lock's own connection (0 when the role never holds it)

    @property
    def most(self) -> int:
        """The most PostgreSQL connections a process of this role holds at once (plus one, only
        while it starts, that DBOS opens to the ``postgres`` database to check ours exists)."""
        listener = DBOS_LISTENER if self.dbos else 0
        return self.dbos + listener + self.store.most + self.budget.most + self.lock


FOOTPRINTS: dict[str, Footprint] = {
    # Runs every queued workflow. Steps hold a connection for one short transaction; more
    # threads than connections wait their turn (PG_POOL_TIMEOUT), they do not fail.
    # Its lock, plus one for a moment while it probes another worker's lock (dsr/takeover.py).
    "worker": Footprint(dbos=8, store=Pool(4, 4), budget=Pool(3, 3), lock=2),
    # A command running its own requests (access, delete --wait, batch, demo without a worker).
    "foreground": Footprint(dbos=5, store=Pool(3, 2), budget=Pool(2, 2), lock=1),
    # A command that enqueues and waits beside a worker.
    "submitter": Footprint(dbos=2, store=Pool(1, 1), budget=Pool(1, 1), lock=0),
    # status, cancel, test-connection: no DBOS.
    "offline": Footprint(dbos=0, store=Pool(1, 1), budget=Pool(1, 1), lock=0),
}


def application_name(role: str, part: str) -> str:
    """``amplitude-dsr <role> <pid> <part>``: no identifier, just enough to group by process."""
    return f"amplitude-dsr {role} {os.getpid()} {part}"


def bound_dbos_pool(config: DBOSConfig, role: str) -> None:
    """Bound DBOS's PostgreSQL system database pool in ``config`` to the ``role``'s footprint,
    with the same liveness checks and naming as our own engines."""
    size = FOOTPRINTS[role].dbos
    config["sys_db_pool_size"] = size
    config["db_engine_kwargs"] = pg_engine_options(
        Pool(size), application_name(role, "dbos"), timeout=DBOS_POOL_TIMEOUT
    )


class DisconnectNotices:
    """Counts database connections found dead by any engine of this process (ours and DBOS's:
    a class-level ``handle_error`` hook, which also sees failed pre-pings) and reports them as
    one identifier-free line at most every ``every`` seconds, so an operator sees that the
    database dropped connections and that they were replaced."""

    def __init__(self, notify: Callable[[str], None], every: float = 10.0) -> None:
        self.notify = notify
        self.every = every
        self.dropped = 0
        self._pending = 0
        self._last = -every
        self._mutex = threading.Lock()
        sa.event.listen(sa.engine.Engine, "handle_error", self._on_error)

    def _on_error(self, context: sa.engine.ExceptionContext) -> None:
        if not context.is_disconnect:
            return
        with self._mutex:
            self.dropped += 1
            self._pending += 1
            now = time.monotonic()
            if now - self._last < self.every:
                return
            self._last, count, self._pending = now, self._pending, 0
        cause = type(context.original_exception).__name__
        self.notify(
            f"database connections lost: {count} since the last notice ({cause}); "
            "replaced, work continues from its checkpoints"
        )

    def close(self) -> None:
        sa.event.remove(sa.engine.Engine, "handle_error", self._on_error)


# Server-side TCP keepalives of an executor lock's session (seconds; ignored on a Unix socket).
LOCK_KEEPALIVES = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


def advisory_key(executor_id: str) -> int:
    """The PostgreSQL advisory lock key of an executor ID."""
    return int.from_bytes(hashlib.sha256(f"amplitude-dsr:{executor_id}".encode()).digest()[:8], "big", signed=True)


class PgLockWatch:
    """Holds the advisory lock of one executor ID on a connection of its own, and keeps holding
    it: a daemon thread checks the connection every ``interval`` seconds; when the server dropped
    it (``pg_terminate_backend``, a restart, a network cut) the lock went with it and is taken
    again on a new connection. If someone else took it meanwhile, ``on_lost`` is called once
    (the process must stop executing: another process now runs as this executor)."""

    def __init__(self, database_url: str, executor_id: str, *, role: str, interval: float = LOCK_CHECK_INTERVAL):
        self.executor_id = executor_id
        self.interval = interval
        self._key = advisory_key(executor_id)
        self._engine = make_engine(database_url, pool=Pool(1), application_name=application_name(role, "lock"))
        self._conn: sa.Connection | None = None
        self._backend = 0  # server PID of the session holding the lock (to recognise it dying)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_lost: Callable[[str], None] = lambda message: _log.error("%s", message)
        self.on_notice: Callable[[str], None] = lambda message: _log.warning("%s", message)

    def take(self) -> bool:
        """Try to take the lock on a new connection; ``True`` when this process holds it now."""
        conn = self._engine.connect()
        try:
            # The server drops a vanished machine's session (and so its lock, which tells the other
            # workers it is gone: dsr/takeover.py) after about 10 + 5 x 3 s of silence, not hours.
            for name, value in LOCK_KEEPALIVES.items():
                conn.execute(sa.text(f"SET {name} = {int(value)}"))
            got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar())
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        self._backend = int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar() or 0)
        conn.commit()
        return True

    def holder(self) -> int | None:
        """The server PID of the session holding this executor's lock, if any."""
        high, low = (self._key >> 32) & 0xFFFFFFFF, self._key & 0xFFFFFFFF
        with self._engine.connect() as conn:
            pid = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :high AND objid = :low AND objsubid = 1"
                ),
                {"high": high, "low": low},
            ).scalar()
        return None if pid is None else int(pid)

    def check(self) -> str:
        """One check: ``held`` (the connection is alive, so its session lock is), ``retaken``
        (it had died; the lock is ours again), ``lost`` (it had died and another process holds
        the lock now), ``retry`` (our old session still holds it while it exits) or
        ``unreachable`` (the database cannot be reached); the last two are checked again later."""
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT 1"))
                self._conn.commit()
                return "held"
            except sa.exc.DBAPIError:
                self._drop_conn()
        try:
            if self.take():
                return "retaken"
            # A terminated session may hold its locks for a moment while it exits: not lost yet.
            return "retry" if self.holder() in (self._backend, None) else "lost"
        except sa.exc.DBAPIError:
            return "unreachable"

    def watch(self) -> None:
        """Start the checking thread."""
        self._thread = threading.Thread(target=self._run, name="executor-lock-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        unreachable = False
        while not self._stop.wait(self.interval):
            state = self.check()
            if state == "retaken":
                self.on_notice(f"executor {self.executor_id}: the executor lock's connection dropped; lock taken again")
            elif state == "unreachable" and not unreachable:
                self.on_notice(f"executor {self.executor_id}: database unreachable; retrying the executor lock")
            elif state == "lost":
                self.on_lost(
                    f"executor {self.executor_id}: another process took the executor lock after this process's "
                    "database connection dropped; stopping"
                )
                return
            unreachable = state == "unreachable" or (unreachable and state == "retry")

    def _drop_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):  # already dead
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5)
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):  # the server may have dropped it already
                self._conn.close()
            self._conn = None
        self._engine.dispose()


LOCK_FILE_SUFFIX = ".executor.lock"


def lock_file(database: Path, executor_id: str) -> Path:
    """The file an executor of a SQLite database locks: beside the database, named for both."""
    return database.with_name(f"{database.name}.{executor_id}{LOCK_FILE_SUFFIX}")


class ExecutorLock:
    """An exclusive, crash-safe lock per (database, executor ID), released when the process dies.

    On PostgreSQL it is an advisory lock on a connection of its own, watched by a thread that
    takes it again when the server drops that connection, and calls ``on_lost`` when another
    process took it meanwhile (:class:`~amplitude_dsr.dsr.connections.PgLockWatch`)."""

    def __init__(self, database_url: str, executor_id: str, data_dir: Path, *, role: str = "worker") -> None:
        self.database_url = database_url
        self.executor_id = executor_id
        self.data_dir = data_dir
        self.role = role
        self._file: IO[str] | None = None
        self._pg: PgLockWatch | None = None

    def try_acquire(self) -> bool:
        path = sqlite_path(self.database_url)
        if path is not None:
            lock_path = private_file(lock_file(path, self.executor_id))
            handle = lock_path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file = handle
            return True
        watch = PgLockWatch(self.database_url, self.executor_id, role=self.role)
        try:
            got = watch.take()
        except BaseException:
            watch.release()
            raise
        if not got:
            watch.release()
            return False
        self._pg = watch
        return True

    def watch(
        self, on_lost: Callable[[str], None] | None = None, on_notice: Callable[[str], None] | None = None
    ) -> None:
        """Keep the lock while the process lives (PostgreSQL; a file lock cannot be lost)."""
        if self._pg is None:
            return
        if on_lost is not None:
            self._pg.on_lost = on_lost
        if on_notice is not None:
            self._pg.on_notice = on_notice
        self._pg.watch()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._pg is not None:
            self._pg.release()
            self._pg = None
