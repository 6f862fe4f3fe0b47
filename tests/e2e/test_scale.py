"""Deletion at scale: subjects submitted in bulk run to ``verified`` in exactly one POST per 100,
no ID posted twice, while the executor's threads stay under a fixed bound (one flusher and one
tracker per project, bounded queues: not a thread per request waiting on its job).

300 subjects by default (3 POSTs; a few minutes on SQLite, where every request's ~25 writes share
one writer); 2,000 (20 POSTs) with ``AMPLITUDE_DSR_LONG_TESTS=1``.

Limits are scaled x10,000 here (emulator and client agree), so what is exercised is our own
orchestration, not Amplitude's documented pace."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import pytest

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.store import repo

from .conftest import FAST_CLOCK, EmulatorProcess, api_calls, settings_for

SUBJECTS = 2000 if os.environ.get("AMPLITUDE_DSR_LONG_TESTS") == "1" else 300
SCALE = 10_000.0
# Threads of the test process (the emulator runs in its own) while 2,000 requests are in flight. A
# thread per waiting request (the old shape) would pass 2,000; the queues bound this one.
THREAD_BOUND = 150
WAITING = ("queued", "staging", "submitted", "done", "verifying")


@pytest.mark.timeout(3600)
def test_subjects_in_bulk_go_out_in_full_posts_with_bounded_threads(db_url: str, tmp_path: Path) -> None:
    with EmulatorProcess(seed=1, rate_scale=SCALE, clock_speed=FAST_CLOCK / 4) as emulator:
        users = [emulator.admin.add_user("web", user_id=f"bulk-{n:04d}@example.org", events=1) for n in range(SUBJECTS)]
        settings = settings_for(emulator, db_url, poll_interval=0.5, max_linger=600.0, rate_scale=SCALE)
        rt = open_runtime(settings, role="submitter", data_dir=tmp_path / "data")
        try:
            specs = [
                api.Spec("deletion", [Identifier.parse("user_id", f"bulk-{n:04d}@example.org")])
                for n in range(SUBJECTS)
            ]
            ids = [rid for rid, _ in api.submit_many(rt, specs)]
        finally:
            rt.close()
        assert api_calls(emulator, "/deletions/users", "POST") == []

        rt = open_runtime(settings, role="executor", data_dir=tmp_path / "data")
        stop = threading.Event()
        peak = {"threads": 0, "waiting": 0}

        def sample() -> None:
            while not stop.wait(0.25):
                peak["threads"] = max(peak["threads"], threading.active_count())
                waiting = sum(repo.count_requests_in(rt.engine, "deletion", [s]) for s in WAITING)
                peak["waiting"] = max(peak["waiting"], waiting)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            outcomes = Counter(api.wait(rt, rid, timeout=3000) for rid in ids)
        finally:
            stop.set()
            sampler.join()
            rt.close()
        sent = api_calls(emulator, "/deletions/users", "POST")

    assert outcomes == {"verified": SUBJECTS}
    assert len(sent) == SUBJECTS // 100
    posted = [aid for p in sent for aid in p["body"]["amplitude_ids"]]
    assert sorted(posted) == sorted(u["amplitude_id"] for u in users)  # each exactly once
    assert peak["waiting"] >= SUBJECTS // 4, peak  # many requests really were waiting on jobs at once
    assert peak["threads"] <= THREAD_BOUND, peak
    print(f"\n{SUBJECTS} subjects: peak threads {peak['threads']}, peak waiting on jobs {peak['waiting']}")
