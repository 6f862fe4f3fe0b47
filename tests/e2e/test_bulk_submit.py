"""``api.submit_many``: rows, ``received`` entries and workflow enqueues in one transaction per
chunk; a failed chunk leaves nothing; calling again stores only what is missing; the enqueued
workflows run like any other (checked against what the emulator received)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import DELETION_QUEUE, QUEUE, Runtime
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit, repo

from .conftest import api_calls


def _access(email: str) -> api.Spec:
    return api.Spec("access", [Identifier.parse("email", email)], {"batch_key": "t"})


def _held(rt: Runtime) -> dict[str, Any]:
    """Requests (ID -> kind), workflows (ID -> queue) and ``received`` entries per request."""
    workflow_table = "dbos.workflow_status" if rt.engine.dialect.name == "postgresql" else "workflow_status"
    with rt.engine.connect() as conn:
        requests = dict(conn.exec_driver_sql("SELECT id, kind FROM dsr_requests").all())
        workflows = dict(conn.exec_driver_sql(f"SELECT workflow_uuid, queue_name FROM {workflow_table}").all())
        received = Counter(e.request_id for e in audit.entries(conn) if e.kind == "received")
        audit.verify(conn)
    return {"requests": requests, "workflows": workflows, "received": received}


def test_a_failed_chunk_leaves_nothing_and_calling_again_stores_only_the_rest(
    make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime(role="submitter")  # nothing runs: only what was stored is seen
    specs = [_access(f"s{n}@example.org") for n in range(5)] + [
        api.Spec("deletion", [Identifier.parse("user_id", f"gone-{n}")], {"batch_key": "t"}) for n in range(2)
    ]
    real_append_many = audit.append_many
    calls = {"n": 0}

    def failing_append_many(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        written = real_append_many(*args, **kwargs)
        if calls["n"] == 2:  # the second chunk: its rows, enqueues and entries are written by now
            raise sa.exc.OperationalError("INSERT INTO dsr_audit", {}, Exception("disk I/O error"))
        return written

    monkeypatch.setattr(audit, "append_many", failing_append_many)
    with pytest.raises(sa.exc.OperationalError):
        api.submit_many(rt, specs, chunk_size=3)
    held = _held(rt)
    assert len(held["requests"]) == 3
    assert set(held["workflows"]) == set(held["requests"])
    assert held["received"] == Counter(list(held["requests"]))

    monkeypatch.setattr(audit, "append_many", real_append_many)
    results = api.submit_many(rt, specs, chunk_size=3)
    assert [created for _, created in results] == [False] * 3 + [True] * 4
    assert {rid for rid, _ in results[:3]} == set(held["requests"])
    held = _held(rt)
    ids = [rid for rid, _ in results]
    assert sorted(held["requests"]) == sorted(ids)
    assert held["received"] == Counter(ids)
    # Each workflow is enqueued on its kind's shared queue under the request ID (a submitter).
    assert held["workflows"] == {rid: QUEUE if held["requests"][rid] == "access" else DELETION_QUEUE for rid in ids}

    again = api.submit_many(rt, specs)
    assert again == [(rid, False) for rid in ids]
    assert _held(rt) == held


def test_the_same_request_twice_in_one_call_is_stored_once(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(role="submitter")
    (first, created), (second, created_again) = api.submit_many(rt, [_access("twice@example.org")] * 2)
    assert first == second and created and not created_again
    assert list(_held(rt)["requests"]) == [first]


def test_bulk_submitted_requests_run_once_each(
    make_runtime: Callable[..., Runtime], emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    """An executor runs the workflows enqueued in the submission's transaction (same name, queue
    and application version as any other enqueue): each user is searched for once."""
    rt = make_runtime()
    users = catalog["web"]["ordinary"][:3]
    specs = [api.Spec("access", [Identifier.parse("user_id", u["user_id"])], {"batch_key": "run"}) for u in users]
    results = api.submit_many(rt, specs)
    for rid, created in results:
        assert created
        assert api.wait(rt, rid, timeout=120) == "completed"
        assert repo.get_request(rt.engine, rid).status == "completed"
    searched = Counter(c["query"]["user"] for c in api_calls(emulator, "/api/2/usersearch"))
    assert searched == Counter(u["user_id"] for u in users)
