"""Bench 2: deletion POSTs per subject, ours against a one-call-per-subject baseline.

Ours (``full`` path): N users are added to the emulator, N deletion requests go through
``api.submit`` on an in-process executor runtime (SQLite), and we wait until every queued
Amplitude ID is receipted (its job is ``staging``). POSTs and 429s are counted from the
emulator's request log. Budgets are lifted (the same large ``rate_scale`` on both sides).

``queued`` (``--queued N``): the full path, but every request is submitted on a submitter
runtime first and one executor then starts them all at once (``batch`` beside a stopped worker).

``reduced`` path (used where the full path is too slow for two cores): the N requests and their
queued Amplitude IDs are written with ``repo.insert_request`` + ``repo.queue_items`` (resolution
skipped); the executor's sweep starts the project's flusher, which submits them, exactly as in a
worker.

Baseline: a naive loop POSTing one user ID per call, no pacing, no retry (what public
integrations do), against a fresh emulator with the same users, at the bench's scale and at the
documented limit (1 request per second, scale 1).

    .venv/bin/python bench/deletion_batching.py                 # 10, 100, 1000 full; 1000, 10,000 reduced
    .venv/bin/python bench/deletion_batching.py --sizes 10000 --full 10000 --queued 10000  # 10,000, full path (slow)
    .venv/bin/python bench/deletion_batching.py --sizes 10,100  # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SCALE = 2000.0  # every documented limit x2000 on both sides: 1000 resolutions fit in seconds
FULL_MAX = 1000  # above this the full path takes too long for a routine run: reduced path unless --full
# Seconds a partial batch may wait for more IDs: the production default. A partial batch is only
# held while other requests are still resolving, so a burst of requests fills whole batches.
LINGER = 300.0
FAST_CLOCK = 4 * 86_400.0  # four emulated days per second: a deletion job is done in ~5 s
POLL = 0.5
DELETIONS = "/api/2/deletions/users"


def add_users(base_url: str, n: int, prefix: str) -> list[dict[str, Any]]:
    """``n`` fresh users in project ``web`` (admin API, one keep-alive connection)."""
    users = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for i in range(n):
            body = {"project": "web", "user_id": f"{prefix}-{i:05d}@bench.example", "events": 3, "session_events": 3}
            r = http.post("/_admin/users", json=body)
            r.raise_for_status()
            users.append(r.json())
    return users


def baseline(n: int, scale: float) -> dict[str, Any]:
    """A naive loop: one POST per subject, as fast as it goes, no retry."""
    with common.emulator(rate_scale=scale) as emu:
        users = add_users(emu.base_url, n, "naive")
        p = common.project_config(emu.doc)
        emu.admin.clear_log()
        started = time.perf_counter()
        auth = (p.api_key.get_secret_value(), p.secret_key.get_secret_value())
        with httpx.Client(base_url=emu.base_url, auth=auth, timeout=30) as http:
            for u in users:
                body = {"user_ids": [u["user_id"]], "requester": "naive@bench", "ignore_invalid_id": "True"}
                http.post(DELETIONS, json=body)
        elapsed = time.perf_counter() - started
        log = emu.admin.request_log()
    posts = [e for e in log if e["path"] == DELETIONS and e["method"] == "POST"]
    return {
        "n": n,
        "rate_scale": scale,
        "posts": len(posts),
        "posts_per_subject": len(posts) / n,
        "post_429": sum(1 for e in posts if e["status"] == 429),
        "post_ok": sum(1 for e in posts if e["status"] == 200),
        "seconds": elapsed,
    }


def ours(n: int, mode: str, max_seconds: float) -> dict[str, Any]:
    """Our path for ``n`` subjects (run in a fresh process: one DBOS runtime per process)."""
    import sqlalchemy as sa

    from amplitude_dsr.dsr import api
    from amplitude_dsr.dsr.executor import open_runtime
    from amplitude_dsr.dsr.model import Identifier
    from amplitude_dsr.store import repo
    from amplitude_dsr.store.tables import deletion_items

    with common.temp_dir("deletion") as tmp, common.emulator(rate_scale=SCALE, clock_speed=FAST_CLOCK) as emu:
        users = add_users(emu.base_url, n, "ours")
        db_url = f"sqlite:///{tmp / 'dsr.sqlite'}"
        # A fast clock and a short poll: a tracked request reaches `done` within seconds and frees
        # its queue slot (a tracking workflow holds one of the queue's 64 slots until then).
        settings = common.settings_for(emu.doc, db_url, rate_scale=SCALE, poll_interval=POLL, max_linger=LINGER)
        emu.admin.clear_log()
        started = time.perf_counter()
        if mode == "queued":
            # Every request submitted first (a submitter runs nothing, as `batch` beside a stopped
            # worker), then one executor starts them all at once.
            rt = open_runtime(settings, role="submitter", data_dir=tmp / "data")
            try:
                for u in users:
                    api.submit(rt, "deletion", [Identifier.parse("user_id", u["user_id"])])
            finally:
                rt.close()
        rt = open_runtime(settings, role="executor", data_dir=tmp / "data")
        try:
            if mode == "full":
                for u in users:
                    api.submit(rt, "deletion", [Identifier.parse("user_id", u["user_id"])])
            elif mode == "reduced":
                for u in users:
                    row, _ = repo.insert_request(
                        rt.engine,
                        kind="deletion",
                        identifiers=[{"kind": "user_id", "value": u["user_id"]}],
                        options={},
                        regulation="gdpr",
                        deadline_days=30,
                    )
                    repo.queue_items(rt.engine, row.id, "web", [u["amplitude_id"]], org_wide=False)
                    repo.update_request(rt.engine, row.id, status="queued")
                # The executor's sweep (dsr/jobwatch.py) finds the queued IDs and starts the
                # project's flusher, exactly as a worker would.
            submitted = time.perf_counter() - started
            deadline = time.monotonic() + max_seconds
            query = sa.select(sa.func.count()).select_from(deletion_items).where(deletion_items.c.state == "receipted")
            while True:
                with rt.engine.connect() as conn:
                    receipted = int(conn.execute(query).scalar_one())
                if receipted >= n or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            log = emu.admin.request_log()
        finally:
            rt.close()
    posts = [e for e in log if e["path"] == DELETIONS and e["method"] == "POST"]
    ids_posted = [len(e["body"].get("amplitude_ids", [])) for e in posts if isinstance(e["body"], dict)]
    return {
        "n": n,
        "mode": mode,
        "rate_scale": SCALE,
        "max_linger": LINGER,
        "receipted": receipted,
        "posts": len(posts),
        "posts_per_subject": len(posts) / n,
        # what the POSTs covered when the time limit stopped the run (equal to the above when complete)
        "posts_per_receipted": len(posts) / max(1, receipted),
        "max_seconds": max_seconds,
        "post_429": sum(1 for e in posts if e["status"] == 429),
        "ids_per_post": ids_posted,
        "deletion_gets": common.count(log, paths=[DELETIONS], method="GET"),
        "user_pool_calls": common.count(log, paths=common.USER_POOL_PATHS),
        "any_429": sum(1 for e in log if e["status"] == 429),
        "submit_seconds": submitted,
        "seconds": elapsed,
    }


def _in_subprocess(n: int, mode: str, max_seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [common.PYTHON, __file__, "--one", str(n), "--mode", mode, "--max-seconds", str(max_seconds)],
        check=True,
        capture_output=True,
        text=True,
        cwd=common.REPO,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument(
        "--full",
        default="",
        type=lambda v: {int(x) for x in v.split(",") if x},
        help="sizes to run on the full path too",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=3600.0,
        help="stop waiting for receipts after this long (the row then reports how many were receipted)",
    )
    parser.add_argument(
        "--queued",
        default="",
        type=lambda v: {int(x) for x in v.split(",") if x},
        help="sizes whose full-path requests are all submitted before an executor starts them",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="full", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(ours(args.one, args.mode, args.max_seconds)), flush=True)
        sys.stderr.flush()
        os._exit(0)  # workflows left sleeping in their tracking loop must not hold the process

    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        modes = ["full"] if n <= FULL_MAX or n in args.full else ["reduced"]
        modes = ["queued" if m == "full" and n in args.queued else m for m in modes]
        if n == FULL_MAX:
            modes.append("reduced")  # the same size both ways: shows what the reduction skips
        for mode in modes:
            mine = _in_subprocess(n, mode, args.max_seconds)
            naive = baseline(n, SCALE)
            naive_1 = baseline(n, 1.0)
            mine["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            rows.append({"ours": mine, "baseline": naive, "baseline_documented": naive_1})
            print(
                f"n={n:<6} {mode:8} ours: {mine['posts']} POSTs ({mine['posts_per_subject']:.4f}/subject, "
                f"{mine['post_429']} x 429, {mine['deletion_gets']} GETs, {mine['seconds']:.1f} s)  "
                f"naive: {naive['posts']} POSTs "
                f"({naive['post_429']} x 429 at x{SCALE:g}; {naive_1['post_429']} x 429 at x1)",
                flush=True,
            )
    common.print_table(
        [
            "subjects",
            "path",
            "our POSTs",
            "POSTs/subject",
            "our 429",
            "naive POSTs",
            "naive 429 (x2000)",
            "naive 429 (x1)",
        ],
        [
            [
                r["ours"]["n"],
                r["ours"]["mode"],
                r["ours"]["posts"],
                r["ours"]["posts_per_subject"],
                r["ours"]["post_429"],
                r["baseline"]["posts"],
                r["baseline"]["post_429"],
                r["baseline_documented"]["post_429"],
            ]
            for r in rows
        ],
    )
    previous = common.load_result("deletion")
    if previous:  # a rerun replaces only its own rows (the slow 10,000 full-path row stays)
        mine = {(r["ours"]["n"], r["ours"]["mode"]) for r in rows}
        kept = [r for r in previous["rows"] if (r["ours"]["n"], r["ours"]["mode"]) not in mine]
        rows = sorted([*kept, *rows], key=lambda r: (r["ours"]["n"], r["ours"]["mode"]))
    common.write_result("deletion", {"rate_scale": SCALE, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
