"""Faults of our own database (a locked SQLite file, a dropped connection) never fail a request:
steps that only touch our tables retry in place, steps that call Amplitude retry durably, and a
workflow that still meets one waits and resumes its phases. The emulator's log shows that
nothing was posted twice."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from dbos._error import DBOSMaxStepRetriesExceeded

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.dbfaults import is_transient_db_error
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit, repo

from .conftest import api_calls


def locked() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("UPDATE dsr_requests ...", {}, sqlite3.OperationalError("database is locked"))


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (locked(), True),
        (
            sa.exc.OperationalError("SELECT 1", {}, Exception("terminating connection due to administrator command")),
            True,
        ),
        (sa.exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")), True),
        (sa.exc.DBAPIError("SELECT 1", {}, Exception("x"), connection_invalidated=True), True),
        (sa.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"), True),
        (sa.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")), False),
        (sa.exc.ProgrammingError("SELECT nope", {}, Exception("no such table")), False),
        (DBOSMaxStepRetriesExceeded("progress_step", 7, [locked(), locked()]), True),
        (DBOSMaxStepRetriesExceeded("progress_step", 7, [locked(), ValueError("bug")]), False),
        (ValueError("a bug"), False),
        (RuntimeError("database is locked"), False),  # our own message, not the driver's
    ],
)
def test_which_database_errors_are_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient_db_error(exc) is transient


def flaky(monkeypatch: pytest.MonkeyPatch, name: str, failures: int) -> list[int]:
    """Make ``repo.<name>`` raise "database is locked" ``failures`` times, then work."""
    real: Callable[..., Any] = getattr(repo, name)
    raised: list[int] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(raised) < failures:
            raised.append(1)
            raise locked()
        return real(*args, **kwargs)

    monkeypatch.setattr(repo, name, wrapper)
    return raised


def test_a_locked_database_while_tracking_does_not_fail_the_deletion(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = catalog["web"]["ordinary"][3]
    rt = make_runtime()
    raised = flaky(monkeypatch, "advance_request", 12)  # tracking rounds and progress updates alike
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user["user_id"])])
    assert api.wait(rt, rid, timeout=120) == "verified"
    assert len(raised) == 12
    assert len(api_calls(emulator, "/deletions/users", "POST")) == 1
    with rt.engine.connect() as conn:
        audit.verify(conn)


def test_a_database_fault_longer_than_a_steps_retries_is_waited_out_by_the_workflow(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = catalog["web"]["ordinary"][4]
    rt = make_runtime()
    raised = flaky(monkeypatch, "queue_items_in", 9)  # more than the step's 7 attempts in place
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user["user_id"])])
    assert api.wait(rt, rid, timeout=120) == "verified"
    assert len(raised) == 9
    row = repo.get_request(rt.engine, rid)
    assert row.error is None
    [post] = api_calls(emulator, "/deletions/users", "POST")
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]


def test_a_locked_database_during_access_does_not_fail_it(
    make_runtime: Any, catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    user = catalog["web"]["ordinary"][5]
    rt = make_runtime()
    raised = flaky(monkeypatch, "advance_in", 9)  # every status change of an access request
    rid, _ = api.submit(
        rt, "access", [Identifier.parse("user_id", user["user_id"])], options={"out_dir": str(tmp_path)}
    )
    assert api.wait(rt, rid, timeout=120) == "completed"
    assert len(raised) == 9
