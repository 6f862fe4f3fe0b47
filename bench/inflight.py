"""Bench: N deletion requests in flight on one executor: peak memory, threads, POSTs, 429s.

Each size runs in a fresh process (one DBOS runtime per process). N anonymous users are added to
the emulator, then N deletion requests and their queued Amplitude IDs are written in bulk
(resolution skipped: its cost is the user pool's, measured in section 2), both by a process of
their own so the measured one starts as a worker's does. Then one in-process executor opens:
its sweep starts the project's flusher, which posts every ID in batches of 100, and the
project's tracker follows the jobs. The emulator runs at real clock speed, so every job stays
``staging``: all N requests wait on their jobs, which is the state a company's deletions spend
weeks in. Measured in the executor process: peak RSS (VmHWM and sampled VmRSS), threads
(sampled), seconds until every ID is receipted, then two more tracking
rounds; POSTs and 429s from the emulator's log.

    .venv/bin/python bench/inflight.py                       # 1,000 / 10,000 / 100,000 on SQLite
    .venv/bin/python bench/inflight.py --sizes 1000 --db postgres
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SCALE = 1000.0
POLL = 2.0
DELETIONS = "/api/2/deletions/users"


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _sqlite_memory_kib() -> dict[str, int | None]:
    """SQLite's own allocations in this process (all connections): now and at their peak, from
    ``sqlite3_memory_used`` / ``sqlite3_memory_highwater`` of the library ``sqlite3`` uses."""
    try:
        import ctypes

        lib = ctypes.CDLL("libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = lib.sqlite3_memory_highwater.restype = ctypes.c_int64
        return {"sqlite_used_kib": lib.sqlite3_memory_used() // 1024,
                "sqlite_peak_kib": lib.sqlite3_memory_highwater(0) // 1024}  # fmt: skip
    except (OSError, AttributeError):
        return {"sqlite_used_kib": None, "sqlite_peak_kib": None}


def add_users(base_url: str, n: int) -> list[int]:
    """``n`` anonymous users (no user ID, so the emulator skips its linear uniqueness check; no
    events) in project ``web``; their Amplitude IDs."""
    import httpx

    ids = []
    with httpx.Client(base_url=base_url, timeout=60) as http:
        for _ in range(n):
            r = http.post("/_admin/users", json={"project": "web", "events": 0})
            r.raise_for_status()
            ids.append(int(r.json()["amplitude_id"]))
    return ids


def _write_requests(engine: Any, amplitude_ids: list[int]) -> None:
    """One deletion request per Amplitude ID, status ``queued``, its ID queued, in bulk."""
    from amplitude_dsr.store.tables import deletion_items, requests

    now = datetime.now(UTC)
    chunk = 5000
    with engine.begin() as conn:
        for start in range(0, len(amplitude_ids), chunk):
            rows, items = [], []
            for i in range(start, min(len(amplitude_ids), start + chunk)):
                rid = f"req_bench_{i:06d}_{uuid.uuid4().hex[:6]}"
                rows.append({
                    "id": rid, "kind": "deletion", "status": "queued", "regulation": "gdpr", "created_at": now,
                    "updated_at": now, "deadline": now + timedelta(days=30),
                    "identifiers": [{"kind": "user_id", "value": f"bench-{i}"}], "options": {},
                })  # fmt: skip
                items.append({
                    "request_id": rid, "project": "web", "amplitude_id": amplitude_ids[i], "org_wide": False,
                    "state": "queued", "created_at": now,
                })  # fmt: skip
            conn.execute(requests.insert(), rows)
            conn.execute(deletion_items.insert(), items)


def setup(base_url: str, db_url: str, n: int) -> float:
    """Tables, ``n`` users in the emulator and ``n`` requests written in bulk; the seconds the writing took."""
    import sqlalchemy as sa

    from amplitude_dsr.store import repo

    engine = sa.create_engine(common.normalize_database_url(db_url))
    repo.create_tables(engine)
    amplitude_ids = add_users(base_url, n)
    written_at = time.perf_counter()
    _write_requests(engine, amplitude_ids)
    engine.dispose()
    return time.perf_counter() - written_at


def _setup_elsewhere(base_url: str, db_url: str, n: int) -> float:
    """:func:`setup` in a process of its own, so the executor's process starts as a worker's does
    (not with the heap the bulk writing of ``n`` requests left behind)."""
    proc = subprocess.run(
        [common.PYTHON, __file__, "--setup", base_url, db_url, str(n)],
        check=True, capture_output=True, text=True, cwd=common.REPO, env=os.environ.copy(),
    )  # fmt: skip
    return float(proc.stdout.strip().splitlines()[-1])


Then = Callable[[Any, Any, dict[str, int]], dict[str, Any]]  # (runtime, emulator, peaks so far) -> more figures


def one(n: int, db: str, max_seconds: float, then: Then | None = None) -> dict[str, Any]:
    """One size; ``then`` runs before the executor closes (``inflight_done.py``: jobs to ``done``)
    and its figures are added to the row."""
    import sqlalchemy as sa

    from amplitude_dsr.dsr.executor import open_runtime
    from amplitude_dsr.store import repo
    from amplitude_dsr.store.tables import deletion_items

    with (
        common.temp_dir("inflight") as tmp,
        common.emulator(rate_scale=SCALE) as emu,
        common.fresh_database(db, tmp) as db_url,
    ):
        settings = common.settings_for(emu.doc, db_url, rate_scale=SCALE, poll_interval=POLL, max_linger=1.0)
        write_seconds = _setup_elsewhere(emu.base_url, db_url, n)
        emu.admin.clear_log()
        rss_before = _rss_kib("VmRSS")
        peak = {"threads": threading.active_count(), "rss_kib": rss_before}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.25):
                peak["threads"] = max(peak["threads"], threading.active_count())
                peak["rss_kib"] = max(peak["rss_kib"], _rss_kib("VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        rt = open_runtime(settings, role="executor", data_dir=tmp / "data")
        receipted = 0
        try:
            query = sa.select(sa.func.count()).select_from(deletion_items).where(deletion_items.c.state == "receipted")
            deadline = time.monotonic() + max_seconds
            while time.monotonic() < deadline:
                with rt.engine.connect() as conn:
                    receipted = int(conn.execute(query).scalar_one())
                if receipted >= n:
                    break
                time.sleep(0.5)
            to_receipts = time.perf_counter() - started
            time.sleep(2 * POLL + 1)  # two tracking rounds over every open job
            statuses = {
                s: repo.count_requests_in(rt.engine, "deletion", [s]) for s in ("queued", "staging", "submitted")
            }
            more = {} if then is None else then(rt, emu, dict(peak))
            sqlite_memory = _sqlite_memory_kib()
        finally:
            stop.set()
            sampler.join()
            rt.close()
        log = emu.admin.request_log()
    posts = [e for e in log if e["path"] == DELETIONS and e["method"] == "POST"]
    return {
        "n": n, "db": db, "rate_scale": SCALE, "poll_interval": POLL, "write_seconds": write_seconds,
        "receipted": receipted, "seconds_to_receipts": to_receipts, "posts": len(posts),
        "ids_per_post_max": max((len(e["body"].get("amplitude_ids", [])) for e in posts), default=0),
        "any_429": sum(1 for e in log if e["status"] == 429),
        "deletion_gets": sum(1 for e in log if e["path"] == DELETIONS and e["method"] == "GET"),
        "peak_threads": peak["threads"], "rss_before_kib": rss_before, "peak_rss_kib": peak["rss_kib"],
        "vmhwm_kib": _rss_kib("VmHWM"), "statuses": statuses, **sqlite_memory, **more,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--setup", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        print(setup(args.setup[0], args.setup[1], int(args.setup[2])), flush=True)
        return 0
    if args.one:
        print(json.dumps(one(args.one, args.db, args.max_seconds)), flush=True)
        return 0
    data: dict[str, Any] = common.load_result("inflight") or {"rows": []}
    for n in [int(s) for s in args.sizes.split(",") if s]:
        proc = subprocess.run(
            [common.PYTHON, __file__, "--one", str(n), "--db", args.db, "--max-seconds", str(args.max_seconds)],
            check=True, capture_output=True, text=True, cwd=common.REPO, env=os.environ.copy(),
        )  # fmt: skip
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        data["rows"] = [r for r in data["rows"] if (r["n"], r["db"]) != (n, args.db)] + [row]
        data["rows"].sort(key=lambda r: (r["db"], r["n"]))
        common.write_result("inflight", {"rows": data["rows"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
