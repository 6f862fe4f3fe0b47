"""Bench 3: User Search + User Activity calls (the 360/hour pool) per access request.

Each case is one access request with project keys only, run through ``api.submit`` /
``api.wait`` on an in-process executor runtime against a fresh emulator (seed 1); the calls are
counted from the emulator's request log between the submission and the result.

    .venv/bin/python bench/access_calls.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SCALE = 1000.0


def cases(catalog: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(case, identifier kind, value, options) for the seeded awkward users of project web."""
    web = catalog["web"]
    out: list[tuple[str, str, str, dict[str, Any]]] = []
    for n, user in enumerate(web["ordinary"][:5]):
        out.append((f"ordinary #{n + 1} (user ID)", "user_id", user["user_id"], {}))
    out.append(("ordinary, by email", "email", web["ordinary"][5]["user_id"], {}))
    out.append(("ordinary, by Amplitude ID", "amplitude_id", str(web["ordinary"][6]["amplitude_id"]), {}))
    out.append(("device-only user (device ID)", "device_id", web["device_only"][0]["device_ids"][0], {}))
    out.append(("merged user", "user_id", web["merged"]["user_id"], {}))
    heavy = web["heavy"]
    out.append((f"heavy ({heavy['num_events']} events, last session over page 1)", "user_id", heavy["user_id"], {}))
    out.append(
        (f"heavy, full history ({heavy['num_events']} events)", "user_id", heavy["user_id"], {"full_history": True})
    )
    marathon = web["long_session"]
    out.append((f"one session of {marathon['num_events']} events", "user_id", marathon["user_id"], {}))
    out.append(("prefix-colliding user", "user_id", web["prefix_pairs"][0][0]["user_id"], {}))
    return out


def run() -> list[dict[str, Any]]:
    from amplitude_dsr.dsr import api
    from amplitude_dsr.dsr.executor import open_runtime
    from amplitude_dsr.dsr.model import Identifier

    rows = []
    with common.temp_dir("access") as tmp, common.emulator(rate_scale=SCALE) as emu:
        catalog = emu.admin.catalog()
        settings = common.settings_for(emu.doc, f"sqlite:///{tmp / 'dsr.sqlite'}", rate_scale=SCALE)
        rt = open_runtime(settings, role="executor", data_dir=tmp / "data")
        try:
            for name, kind, value, options in cases(catalog):
                since = common.last_seq(emu.admin)
                rid, _ = api.submit(
                    rt, "access", [Identifier.parse(kind, value)], options={"out_dir": str(tmp / "out"), **options}
                )
                status = api.wait(rt, rid, timeout=120)
                log = emu.admin.request_log(since)
                rows.append(
                    {
                        "case": name,
                        "status": status,
                        "searches": common.count(log, paths=["/api/2/usersearch"]),
                        "activity_pages": common.count(log, paths=["/api/2/useractivity"]),
                        "user_pool_calls": common.count(log, paths=common.USER_POOL_PATHS),
                        "http_429": sum(1 for e in log if e["status"] == 429),
                    }
                )
        finally:
            rt.close()
    return rows


def main() -> int:
    if "--child" in sys.argv:
        print(json.dumps(run()), flush=True)
        os._exit(0)
    out = subprocess.run(
        [common.PYTHON, __file__, "--child"], check=True, capture_output=True, text=True, cwd=common.REPO
    )
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    common.print_table(
        ["case", "status", "searches", "activity pages", "user-pool calls", "429"],
        [
            [r["case"], r["status"], r["searches"], r["activity_pages"], r["user_pool_calls"], r["http_429"]]
            for r in rows
        ],
    )
    common.write_result("access_calls", {"rate_scale": SCALE, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
