"""Bench 4: peak memory (RSS) of a full access request with org keys whose DSAR export is large.

For each size the emulator generates the subject's DSAR output on the fly (``dsar_synthetic``:
about that many *uncompressed* bytes of gzipped JSON lines). A fresh child process runs the real
workflow (``api.submit`` + ``api.wait`` on an executor runtime, SQLite): resolve, DSAR create,
poll, streamed download and gunzip into the work file, then the report package (export.json,
events.csv, report.html, manifest). The parent samples the child's ``VmRSS`` from
``/proc/PID/status`` every 50 ms; the child also reports its own ``VmHWM`` (kernel peak). Work
files live in a temp dir on disk, deleted afterwards.

    .venv/bin/python bench/dsar_memory.py                       # 100 MB, 500 MB, 1 GB
    .venv/bin/python bench/dsar_memory.py --sizes-mb 100,1000
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SCALE = 1000.0
FAST_CLOCK = 4 * 86_400.0  # a DSAR export is done after one emulated day: a quarter second
MB = 1_000_000


def proc_status(pid: int | str, field: str) -> int:
    """A ``/proc/PID/status`` field in bytes (``VmRSS``, ``VmHWM``); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def child(doc: dict[str, Any], user_id: str, workdir: str) -> dict[str, Any]:
    """Run one access request in this (fresh) process."""
    from amplitude_dsr.dsr import api
    from amplitude_dsr.dsr.executor import open_runtime
    from amplitude_dsr.dsr.model import Identifier
    from amplitude_dsr.store import repo

    tmp = Path(workdir)
    baseline_rss = proc_status("self", "VmRSS")
    settings = common.settings_for(doc, f"sqlite:///{tmp / 'dsr.sqlite'}", org=True, rate_scale=SCALE)
    rt = open_runtime(settings, role="executor", data_dir=tmp / "data")
    started = time.perf_counter()
    rid, _ = api.submit(rt, "access", [Identifier.parse("user_id", user_id)], options={"out_dir": str(tmp / "out")})
    status = api.wait(rt, rid, timeout=1800)
    elapsed = time.perf_counter() - started
    row = repo.get_request(rt.engine, rid)
    files = {p.name: p.stat().st_size for p in Path(row.out_dir or tmp).glob("*") if p.is_file()}
    work = {p.name: p.stat().st_size for p in (tmp / "data" / "work").rglob("*") if p.is_file()}
    result = {
        "status": status,
        "seconds": elapsed,
        "vm_hwm": proc_status("self", "VmHWM"),
        "rss_after_open": baseline_rss,
        "result": row.result,
        "output_files": files,
        "work_files": work,
    }
    rt.close()
    return result


def run_size(approx_bytes: int) -> dict[str, Any]:
    with (
        common.temp_dir("dsar") as tmp,
        common.emulator(rate_scale=SCALE, clock_speed=FAST_CLOCK) as emu,
    ):
        user = emu.admin.catalog()["web"]["ordinary"][0]
        emu.admin.dsar_synthetic(user["amplitude_id"], approx_bytes)
        emu.admin.clear_log()
        cmd = [common.PYTHON, __file__, "--child", json.dumps(emu.doc), user["user_id"], str(tmp)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=common.REPO)
        samples: list[tuple[float, int]] = []
        t0 = time.monotonic()
        while proc.poll() is None:
            rss = proc_status(proc.pid, "VmRSS")
            if rss:
                samples.append((round(time.monotonic() - t0, 2), rss))
            time.sleep(0.05)
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"child failed with {proc.returncode}")
        result = json.loads(out.strip().splitlines()[-1])
        log = emu.admin.request_log()
    storage = [e for e in log if e.get("pool") == "storage"]
    return {
        "approx_bytes": approx_bytes,
        "peak_rss_sampled": max(s[1] for s in samples),
        "samples": samples[:: max(1, len(samples) // 400)],
        "downloads": len(storage),
        "dsar_calls": common.count(log, paths=["/api/2/dsar/requests"]) - len(storage),
        **result,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="100,500,1000")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child[0]), args.child[1], args.child[2]), default=str), flush=True)
        os._exit(0)
    runs = []
    for mb in (int(s) for s in args.sizes_mb.split(",")):
        r = run_size(mb * MB)
        runs.append(r)
        events = (r.get("result") or {}).get("subjects", [{}])[0].get("events")
        print(
            f"{mb:>5} MB: {r['status']}  peak RSS {r['vm_hwm'] / MB:.0f} MB"
            f" (sampled {r['peak_rss_sampled'] / MB:.0f} MB)"
            f"  events {events}  {r['seconds']:.0f} s",
            flush=True,
        )
    common.print_table(
        ["export (uncompressed)", "status", "events", "peak RSS (VmHWM)", "RSS after start", "seconds"],
        [
            [
                f"{r['approx_bytes'] / MB:.0f} MB",
                r["status"],
                (r.get("result") or {}).get("subjects", [{}])[0].get("events"),
                f"{r['vm_hwm'] / MB:.0f} MB",
                f"{r['rss_after_open'] / MB:.0f} MB",
                r["seconds"],
            ]
            for r in runs
        ],
    )
    common.write_result("dsar_memory", {"rate_scale": SCALE, "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
