"""Section 10 at one size, then every job to ``done``: the tracking round in which a job of N
requests changes status (for P-8). After the bench's own run (every ID receipted, every job
``staging``), the emulator's clock is moved 60 days on, so the next listing shows the job
``done``; measured until no request still waits on ``queued``/``staging``/``submitted`` (each moved
to ``done`` or on to its verification), then two more tracking rounds: seconds, peak RSS of that
phase (sampled VmRSS, as the bench's), and the trail entries written. Verifications started
meanwhile run as they would in a worker. Prints one JSON line and keeps it in
``bench/results/inflight_done.json`` (replacing the row of the same size and database; section
10's second table).

    .venv/bin/python bench/inflight_done.py 100000 [sqlite|postgres]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import inflight

WAITING = ("queued", "staging", "submitted")
KEYS = ("n", "db", "rss_before_kib", "peak_rss_kib", "posts", "any_429", "seconds_to_receipts", "statuses")


def to_done(rt: Any, emu: Any, staging_peak: dict[str, int]) -> dict[str, Any]:
    import sqlalchemy as sa

    from amplitude_dsr.store import repo
    from amplitude_dsr.store.audit import dsr_audit

    peak = {"rss_kib": inflight._rss_kib("VmRSS")}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            peak["rss_kib"] = max(peak["rss_kib"], inflight._rss_kib("VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    emu.admin.advance(days=60)
    try:
        while repo.count_requests_in(rt.engine, "deletion", list(WAITING)) > 0:
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        time.sleep(2 * inflight.POLL + 1)
    finally:
        stop.set()
        sampler.join()
    with rt.engine.connect() as conn:
        entries = int(conn.execute(sa.select(sa.func.count()).where(dsr_audit.c.kind == "job_status")).scalar_one())
    found = {"staging_peak_rss_kib": staging_peak["rss_kib"], "done_seconds": seconds,
             "done_peak_rss_kib": peak["rss_kib"], "job_status_entries": entries,
             "after_done": {s: repo.count_requests_in(rt.engine, "deletion", [s])
                            for s in ("done", "verifying", "verified")}}  # fmt: skip
    # Printed now: verifications still running may hold files in the run's directory when it goes.
    print("done phase", json.dumps(found), flush=True)
    return found


def main(argv: list[str]) -> int:
    n, db = int(argv[0]), (argv[1] if len(argv) > 1 else "sqlite")
    row = inflight.one(n, db, 3600.0, then=to_done)
    keys = (*KEYS, "staging_peak_rss_kib", "done_seconds", "done_peak_rss_kib", "job_status_entries", "after_done")
    found = {k: row[k] for k in keys}
    print(json.dumps(found), flush=True)
    data: dict[str, Any] = common.load_result("inflight_done") or {"rows": []}
    data["rows"] = [r for r in data["rows"] if (r["n"], r["db"]) != (n, db)] + [found]
    data["rows"].sort(key=lambda r: (r["db"], r["n"]))
    common.write_result("inflight_done", {"rows": data["rows"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
