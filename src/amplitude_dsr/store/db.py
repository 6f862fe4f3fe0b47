"""Engines for our own tables. One database URL serves DBOS, the budgets and our tables.

The database holds identifiers, so a SQLite file is created readable by its owner only (0600;
SQLite gives its ``-wal`` and ``-shm`` files the same mode) in a directory only its owner can
enter (0700)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from amplitude_dsr.config import normalize_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000


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


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and its parent directory."""
    url = normalize_database_url(url)
    path = sqlite_path(url)
    if path is None:
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    if str(path) != ":memory:":
        private_file(path)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    return engine
