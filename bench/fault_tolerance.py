"""Bench: faults that waiting fixes, at sizes the tests do not reach.

1. Amplitude away for ``--outage`` seconds (the emulator process SIGSTOPped: calls hang, then
   time out) while deletions wait on their job, and while an access request polls its DSAR export.
2. An outside consumer taking 90 % of the deletion pool (the emulator and we both at x10) while
   ``--requests`` deletions are submitted, posted and tracked.

Reported per scenario: final statuses, failed requests, POSTs (each ID posted once?), calls that
got a 429 or a 5xx, and the wall time. The run measures; it asserts nothing.

    .venv/bin/python bench/fault_tolerance.py [--outage 60] [--requests 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.store import repo

FAST = 86400.0 * 4


def _wait_for(check: Any, limit: float = 600.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up")
        time.sleep(0.1)


def _receipted(rt: Any, request_id: str) -> bool:
    items = repo.items_for(rt.engine, request_id)
    return bool(items) and all(i.state == "receipted" for i in items)


def outage(kind: str, seconds: float, requests: int) -> dict[str, Any]:
    """Deletions (or one access request with a DSAR export) survive ``seconds`` of silence."""
    with (
        common.temp_dir("faults-") as work,
        common.fresh_database("sqlite", work) as db,
        common.emulator(rate_scale=1000.0, clock_speed=1.0) as emu,
    ):
        admin = emu.admin
        users = [admin.add_user("web", user_id=f"outage-{n}@example.org", events=3) for n in range(requests)]
        settings = common.settings_for(emu.doc, db, org=kind == "access", rate_scale=1000.0, max_linger=0.0)
        rt = open_runtime(settings, role="executor", data_dir=work / "data")
        try:
            started = time.monotonic()
            if kind == "deletion":
                ids = [api.submit(rt, "deletion", [Identifier.parse("user_id", u["user_id"])])[0] for u in users]
                _wait_for(lambda: all(_receipted(rt, r) for r in ids))
            else:
                ids = [
                    api.submit(
                        rt, "access", [Identifier.parse("user_id", users[0]["user_id"])],
                        options={"out_dir": str(work / "out")},
                    )[0]
                ]  # fmt: skip
                _wait_for(lambda: any(e["method"] == "POST" for e in common.log_since(admin) if "dsar" in e["path"]))
            os.kill(emu.pid, signal.SIGSTOP)
            time.sleep(seconds)
            os.kill(emu.pid, signal.SIGCONT)
            admin.set_speed(FAST if kind == "deletion" else 86400.0 / 8)
            if kind == "access":
                admin.advance(days=1.05)
            statuses = [api.wait(rt, r, timeout=900) for r in ids]
            wall = time.monotonic() - started
        finally:
            rt.close()
        log = common.log_since(admin)
    posts = [e for e in log if e["method"] == "POST" and e["path"].endswith("/deletions/users") and e["status"] == 200]
    posted = [aid for e in posts for aid in e["body"]["amplitude_ids"]]
    return {
        "scenario": f"{kind}: Amplitude silent {seconds:g} s",
        "requests": len(ids),
        "statuses": dict(Counter(statuses)),
        "failed": statuses.count("failed"),
        "posts": len(posts),
        "ids_posted_twice": len(posted) - len(set(posted)),
        "429s": sum(1 for e in log if e["status"] == 429),
        "5xx": sum(1 for e in log if e["status"] >= 500),
        "wall_s": round(wall, 1),
    }


def crowded(requests: int) -> dict[str, Any]:
    """Deletions while an outside consumer takes 90 % of the one-per-second pool (both at x10)."""
    scale = 10.0
    with (
        common.temp_dir("faults-") as work,
        common.fresh_database("sqlite", work) as db,
        common.emulator(rate_scale=scale, clock_speed=FAST) as emu,
    ):
        admin = emu.admin
        users = [admin.add_user("web", user_id=f"crowded-{n}@example.org", events=2) for n in range(requests)]
        admin.external_load("deletions", 0.9, project="web")
        settings = common.settings_for(emu.doc, db, rate_scale=scale, max_linger=0.0, poll_interval=1.0)
        rt = open_runtime(settings, role="executor", data_dir=work / "data")
        try:
            started = time.monotonic()
            ids = [api.submit(rt, "deletion", [Identifier.parse("user_id", u["user_id"])])[0] for u in users]
            statuses = [api.wait(rt, r, timeout=1800) for r in ids]
            wall = time.monotonic() - started
        finally:
            rt.close()
        log = [e for e in common.log_since(admin) if "/deletions/users" in e["path"]]
    posts = [e for e in log if e["method"] == "POST" and e["status"] == 200]
    posted = [aid for e in posts for aid in e["body"]["amplitude_ids"]]
    return {
        "scenario": "deletion: outside consumer takes 90% of the deletion pool",
        "requests": len(ids),
        "statuses": dict(Counter(statuses)),
        "failed": statuses.count("failed"),
        "posts": len(posts),
        "ids_posted_twice": len(posted) - len(set(posted)),
        "429s": sum(1 for e in log if e["status"] == 429),
        "calls_through": sum(1 for e in log if e["status"] == 200),
        "5xx": sum(1 for e in log if e["status"] >= 500),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=60.0, help="seconds Amplitude is silent")
    parser.add_argument("--requests", type=int, default=10, help="deletion requests per scenario")
    args = parser.parse_args()
    rows = [
        outage("deletion", args.outage, args.requests),
        outage("access", args.outage, 1),
        crowded(args.requests),
    ]
    headers = ["scenario", "requests", "statuses", "failed", "posts", "ids_posted_twice", "429s", "5xx", "wall_s"]
    common.print_table(headers, [[r.get(h, "") for h in headers] for r in rows])
    common.write_result("fault_tolerance", {"machine": common.machine(), "rows": rows})


if __name__ == "__main__":
    main()
