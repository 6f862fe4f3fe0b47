"""Bench 10: user-pool calls (User Search + User Activity, 360/hour per project) per deleted
person, on the resolve-first path and on the direct path, for each kind of identifier.

For each path and identifier kind, ``N`` fresh users are added to the emulator (each with a user
ID that is also an email, and a device ID), one deletion request per person is submitted through
``api.submit`` on an in-process executor runtime (SQLite), and every request is waited for to its
final status (the emulator's clock runs fast, so jobs reach ``done`` in seconds). Calls and POSTs
are counted from the emulator's request log, from the first submission to the last final status.
Budgets are lifted on both sides (the same ``rate_scale``).

    .venv/bin/python bench/deletion_calls.py            # 20 people per kind and path
    .venv/bin/python bench/deletion_calls.py --n 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SCALE = 2000.0
FAST_CLOCK = 4 * 86_400.0  # four emulated days per second
KINDS = ("user_id", "email", "amplitude_id", "device_id")
PATHS = ("resolve-first", "direct")


def identifier(kind: str, user: dict[str, Any]) -> tuple[str, str]:
    if kind == "amplitude_id":
        return kind, str(user["amplitude_id"])
    if kind == "device_id":
        return kind, str(user["device_ids"][0])
    return kind, str(user["user_id"])  # an email is the product's user ID here


def run(n: int) -> list[dict[str, Any]]:
    from amplitude_dsr.dsr import api
    from amplitude_dsr.dsr.executor import open_runtime
    from amplitude_dsr.dsr.model import Identifier

    rows = []
    for path in PATHS:
        for kind in KINDS:
            with (
                common.temp_dir("calls") as tmp,
                common.emulator(rate_scale=SCALE, clock_speed=FAST_CLOCK) as emu,
            ):
                admin = emu.admin
                users = [
                    admin.add_user("web", user_id=f"{kind}-{i:04d}@bench.example", device_id=f"dev-{kind}-{i:04d}",
                                   events=3, session_events=3)
                    for i in range(n)
                ]  # fmt: skip
                settings = common.settings_for(
                    emu.doc, f"sqlite:///{tmp / 'dsr.sqlite'}", rate_scale=SCALE, poll_interval=0.5, max_linger=1.0
                )
                rt = open_runtime(settings, role="executor", data_dir=tmp / "data")
                since = common.last_seq(admin)
                try:
                    ids = [
                        api.submit(rt, "deletion", [Identifier.parse(*identifier(kind, u))],
                                   options={"deletion_path": path, "out_dir": str(tmp / "out")})[0]
                        for u in users
                    ]  # fmt: skip
                    statuses = [api.wait(rt, rid, timeout=600) for rid in ids]
                finally:
                    rt.close()
                log = admin.request_log(since)
                pool = common.count(log, paths=common.USER_POOL_PATHS)
                rows.append(
                    {
                        "path": path, "kind": kind, "people": n,
                        "verified": sum(1 for s in statuses if s == "verified"),
                        "other": sorted({s for s in statuses if s != "verified"}),
                        "searches": common.count(log, paths=["/api/2/usersearch"]),
                        "activity_pages": common.count(log, paths=["/api/2/useractivity"]),
                        "user_pool_calls": pool, "per_person": round(pool / n, 2),
                        "posts": common.count(log, paths=["/api/2/deletions/users"], method="POST"),
                        "http_429": sum(1 for e in log if e["status"] == 429),
                    }
                )  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="people per identifier kind and path")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.n)), flush=True)
        os._exit(0)
    out = subprocess.run(
        [common.PYTHON, __file__, "--child", "--n", str(args.n)],
        check=True, capture_output=True, text=True, cwd=common.REPO,
    )  # fmt: skip
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    common.print_table(
        ["path", "identifier", "people", "verified", "searches", "activity", "user-pool / person", "POSTs", "429"],
        [
            [r["path"], r["kind"], r["people"], r["verified"], r["searches"], r["activity_pages"], r["per_person"],
             r["posts"], r["http_429"]]
            for r in rows
        ],
    )  # fmt: skip
    common.write_result("deletion_calls", {"rate_scale": SCALE, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
