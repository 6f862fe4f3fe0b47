"""Engines for our own tables. One database URL serves DBOS, the budgets and our tables."""

from __future__ import annotations

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


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and its parent directory."""
    url = normalize_database_url(url)
    path = sqlite_path(url)
    if path is None:
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    return engine
