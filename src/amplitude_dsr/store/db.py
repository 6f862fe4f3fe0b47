"""Engines for our own tables. One database URL serves DBOS, the budgets and our tables.

The database holds identifiers, so a SQLite file is created readable by its owner only (0600;
SQLite gives its ``-wal`` and ``-shm`` files the same mode) in a directory only its owner can
enter (0700).

On PostgreSQL every engine of a process (ours, the budget's, DBOS's) is built from
:func:`pg_engine_options`: a bounded pool (``docs/operations.md`` has the connection formula per
process), a liveness check before each checkout (a connection the server terminated is replaced,
not handed to a step), recycling of old connections, TCP keepalives (a connection to a vanished
server fails instead of hanging), error messages without statement values (they can hold
identifiers) and an ``application_name`` saying which process and which part
of it holds the connection (``pg_stat_activity``)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from amplitude_dsr.config import normalize_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite's page cache per connection (2 MB by default, and a pool holds several): filled as the
# database grows, so a worker's memory grew with the requests stored (bench/PROBLEMS.md, P-8).
# Reads that miss it come from the operating system's file cache.
SQLITE_CACHE_KIB = 256
PG_CONNECT_TIMEOUT = 10  # seconds to open a connection before the attempt fails (and is retried)
# A pooled connection older than this is closed and replaced at its next checkout, so a proxy's or
# firewall's idle cut never reaches a step.
PG_POOL_RECYCLE = 1800.0
# Seconds a thread waits for a free pooled connection. Long on purpose: a full pool under load is
# a queue, not a fault (a dead connection is replaced at checkout, it never blocks the pool).
PG_POOL_TIMEOUT = 600.0
# TCP keepalives: an idle connection to a server that vanished is found dead within about a minute.
PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
APP_NAME_MAX = 63  # PostgreSQL truncates application_name beyond this (NAMEDATALEN - 1)


@dataclass(frozen=True)
class Pool:
    """The connections one engine may hold: ``size`` kept open once used, ``overflow`` more
    opened under load and closed when returned."""

    size: int
    overflow: int = 0

    @property
    def most(self) -> int:
        """The most connections the engine holds at once."""
        return self.size + self.overflow


COMMAND_POOL = Pool(1, 1)  # one-off readers (status, tests): one connection at a time, one spare


def pg_engine_options(
    pool: Pool, application_name: str | None = None, *, timeout: float = PG_POOL_TIMEOUT
) -> dict[str, Any]:
    """``create_engine`` keyword arguments for a PostgreSQL engine with ``pool`` (see the module
    docstring for what each does)."""
    connect_args: dict[str, Any] = {"connect_timeout": PG_CONNECT_TIMEOUT, **PG_KEEPALIVES}
    if application_name:
        connect_args["application_name"] = application_name[:APP_NAME_MAX]
    return {
        "pool_size": pool.size,
        "max_overflow": pool.overflow,
        "pool_timeout": timeout,
        "pool_pre_ping": True,
        "pool_recycle": PG_POOL_RECYCLE,
        # Database errors are logged (by DBOS too): never with the statement's values, which can
        # hold identifiers.
        "hide_parameters": True,
        "connect_args": connect_args,
    }


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or ``None`` for other databases."""
    url = normalize_database_url(url)
    if not url.startswith("sqlite:///"):
        return None
    return Path(url[len("sqlite:///") :])


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing directory is left as it is."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty as 0600 unless it exists."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return path


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (to show which database is in use)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def make_engine(url: str, *, pool: Pool = COMMAND_POOL, application_name: str | None = None) -> sa.Engine:
    """An engine for ``url``. PostgreSQL gets :func:`pg_engine_options` with ``pool``; SQLite gets
    WAL, a busy timeout, a page cache of :data:`SQLITE_CACHE_KIB` and its parent directory (its
    connections are file handles, not server slots, so its pool keeps SQLAlchemy's defaults)."""
    url = normalize_database_url(url)
    path = sqlite_path(url)
    if path is None:
        name = application_name or f"amplitude-dsr offline {os.getpid()} store"  # a one-off reader
        return sa.create_engine(url, **pg_engine_options(pool, name))
    if str(path) != ":memory:":
        private_file(path)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.close()

    # For every engine of the process, DBOS's and the budget's SQLite engines included.
    if not event.contains(sa.engine.Engine, "handle_error", replace_broken_sqlite_connections):
        event.listen(sa.engine.Engine, "handle_error", replace_broken_sqlite_connections)
    return engine


# SQLite errors after which a connection stays unusable: one opened while the file could not be
# written is read-only for good (SQLite falls back to read-only without saying so), and an I/O
# error can leave a connection's file handles behind a replaced or remounted file.
SQLITE_BROKEN_CONNECTION = ("attempt to write a readonly database", "disk i/o error")


def replace_broken_sqlite_connections(context: sa.engine.ExceptionContext) -> None:
    """``handle_error`` hook: treat those errors as a lost connection, so the pool discards it
    (and every connection opened before it) instead of handing it out again."""
    if context.dialect is None or context.dialect.name != "sqlite":
        return
    message = str(context.original_exception).lower()
    if any(text in message for text in SQLITE_BROKEN_CONNECTION):
        context.is_disconnect = True
