"""A job's requests read a page at a time by the tracker (``dsr/tracking.py``): with pages of
three requests and at most four verifications handed on per round, every request of a job of
twenty still gets each job status in its trail exactly once, and every one is verified (the
executor's sweep starts the verifications a round did not hand on)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from amplitude_dsr.dsr import api, tracking
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit, repo
from amplitude_dsr.store import jobs as jobs_store

from .conftest import settings_for

N = 20


def test_a_job_read_in_pages_moves_audits_and_verifies_every_request_once(
    emulator: EmulatorServer, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_store, "PAGE", 3)
    monkeypatch.setattr(tracking, "READY_PER_ROUND", 4)
    for n in range(N):
        emulator.admin.add_user("web", user_id=f"paged-{n:02d}@example.org", events=1)
    settings = settings_for(emulator, db_url, poll_interval=0.5, max_linger=1.0)
    rt = open_runtime(settings, role="executor", data_dir=tmp_path / "data")
    try:
        ids = [api.submit(rt, "deletion", [Identifier.parse("user_id", f"paged-{n:02d}@example.org")])[0]
               for n in range(N)]  # fmt: skip
        outcomes = [api.wait(rt, rid) for rid in ids]
        with rt.engine.connect() as conn:
            trails = {rid: [e for e in audit.entries(conn, rid) if e.kind == "job_status"] for rid in ids}
        items = [i for rid in ids for i in repo.items_for(rt.engine, rid)]
    finally:
        rt.close()
    assert outcomes == ["verified"] * N
    assert all(i.job_status == "done" for i in items)
    for trail in trails.values():
        statuses = Counter(e.detail["status"] for e in trail)
        assert statuses["done"] == 1 and all(count == 1 for count in statuses.values())


def test_a_job_turning_done_commits_page_by_page_and_a_fault_between_pages_writes_nobody_twice(
    emulator: EmulatorServer, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round in which a job changes status writes its requests' entries a page per
    transaction, the job's items last (a job of 100,000 held SQLite's write lock for 90 s in one
    transaction). A database fault after two pages: those two pages are already committed, the
    step runs again, and every request still ends with one ``done`` entry and verified."""
    monkeypatch.setattr(jobs_store, "PAGE", 3)
    real = audit.append_many
    seen: dict[str, int] = {"done_pages": 0, "committed_at_fault": -1}
    engine_box: list[sa.Engine] = []

    def faulty(conn: sa.Connection, items: Any, **kwargs: Any) -> Any:
        if items and items[0][1] == "job_status" and items[0][2].get("status") == "done":
            seen["done_pages"] += 1
            if seen["done_pages"] == 3:
                with engine_box[0].connect() as other:  # what another connection sees now
                    seen["committed_at_fault"] = _done_entries(other)
                raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))
        return real(conn, items, **kwargs)

    monkeypatch.setattr(audit, "append_many", faulty)
    emulator.admin.set_speed(1.0)  # the clock stands still until every ID sits in one staging job
    for n in range(N):
        emulator.admin.add_user("web", user_id=f"faulted-{n:02d}@example.org", events=1)
    settings = settings_for(emulator, db_url, poll_interval=0.5, max_linger=1.0)
    rt = open_runtime(settings, role="executor", data_dir=tmp_path / "data")
    engine_box.append(rt.engine)
    try:
        ids = [api.submit(rt, "deletion", [Identifier.parse("user_id", f"faulted-{n:02d}@example.org")])[0]
               for n in range(N)]  # fmt: skip
        deadline = time.monotonic() + 60
        while repo.count_requests_in(rt.engine, "deletion", ["staging"]) < N and time.monotonic() < deadline:
            time.sleep(0.2)
        emulator.admin.advance(days=20)  # the one job is now done: one round moves all twenty
        outcomes = [api.wait(rt, rid) for rid in ids]
        with rt.engine.connect() as conn:
            trails = {rid: [e for e in audit.entries(conn, rid) if e.kind == "job_status"] for rid in ids}
            chain_ok = audit.verify(conn) == audit.head(conn)
    finally:
        rt.close()
    assert outcomes == ["verified"] * N
    assert seen["committed_at_fault"] == 6, seen  # two pages of three, committed before the third failed
    assert seen["done_pages"] > 3  # the step ran again after the fault
    assert chain_ok
    for trail in trails.values():
        assert Counter(e.detail["status"] for e in trail)["done"] == 1


def _done_entries(conn: sa.Connection) -> int:
    return sum(1 for e in audit.entries(conn) if e.kind == "job_status" and e.detail.get("status") == "done")
