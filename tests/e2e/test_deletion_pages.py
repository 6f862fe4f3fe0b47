"""A job's requests read a page at a time by the tracker (``dsr/tracking.py``): with pages of
three requests and at most four verifications handed on per round, every request of a job of
twenty still gets each job status in its trail exactly once, and every one is verified (the
executor's sweep starts the verifications a round did not hand on)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

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
