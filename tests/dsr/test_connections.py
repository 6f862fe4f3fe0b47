"""Connection bounds per process role and the disconnect notices (see ``docs/operations.md``,
"Connections and database faults")."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from amplitude_dsr.dsr.connections import FOOTPRINTS, DisconnectNotices, application_name
from amplitude_dsr.store.db import make_engine


def test_the_documented_bounds_per_role() -> None:
    assert {role: f.most for role, f in FOOTPRINTS.items()} == {
        "worker": 25, "foreground": 16, "submitter": 7, "offline": 4,
    }  # fmt: skip
    # Two workers and four commands (at most one runs its own requests: they share the default
    # executor lock) fit in PostgreSQL's default 100 connections, 3 of them kept for superusers.
    assert 2 * FOOTPRINTS["worker"].most + FOOTPRINTS["foreground"].most + 3 * FOOTPRINTS["submitter"].most < 97


def test_application_names_carry_role_pid_and_part_only() -> None:
    name = application_name("worker", "store")
    role, pid, part = name.removeprefix("amplitude-dsr ").split()
    assert (role, part) == ("worker", "store") and pid.isdigit()
    assert len(name) <= 63


def test_a_lost_connection_is_reported_once_per_burst_without_identifiers(tmp_path: Path) -> None:
    path = tmp_path / "dsr.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
    engine.dispose()

    @event.listens_for(engine, "do_connect")
    def _read_only(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> Any:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    lines: list[str] = []
    notices = DisconnectNotices(lines.append, every=3600)
    try:
        for _ in range(3):
            with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES ('jane@example.com')")
    finally:
        notices.close()
        engine.dispose()
    assert notices.dropped == 3
    assert lines == [
        "database connections lost: 1 since the last notice (OperationalError); "
        "replaced, work continues from its checkpoints"
    ]
