"""Engines replace a connection that a database fault left unusable instead of handing it out
again: a SQLite connection opened while the file could not be written stays read-only for its
whole life (SQLite falls back to read-only silently), so it must not go back to the pool."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from amplitude_dsr.store.db import make_engine


def test_a_sqlite_connection_opened_read_only_is_replaced_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "dsr.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    engine.dispose()
    opened: list[str] = []

    @event.listens_for(engine, "do_connect")
    def _first_read_only(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> Any:
        # What SQLite does when the file is write-protected at the moment it is opened.
        opened.append("ro" if not opened else "rw")
        if opened[-1] == "ro":
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        return None

    with pytest.raises(sa.exc.OperationalError, match="readonly"), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    # The file is writable again: the next transaction gets a new connection and succeeds.
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [2]
    assert opened == ["ro", "rw"]
    engine.dispose()
