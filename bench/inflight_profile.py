"""Profile of section 10 (``inflight.py``): where the executor's memory goes with N deletions in flight.

Runs one size of ``inflight.py`` in this process with ``tracemalloc`` on (Python allocations only;
it slows the run two to three times, so its seconds are not the bench's). Snapshots are taken
every ``--every`` seconds and right after every job listing the tracker or flusher parses (the
moment a listing of N IDs is alive), and the top allocation sites by line are written to
``bench/results/inflight_profile.json`` with the traced peak and VmHWM.

    .venv/bin/python bench/inflight_profile.py --n 30000
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import inflight

TOP = 15


def _top(snapshot: tracemalloc.Snapshot, base: tracemalloc.Snapshot | None) -> list[dict[str, Any]]:
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if base is not None:
        stats = snapshot.compare_to(base, "lineno")[:TOP]
        return [{"site": str(s.traceback[0]), "mb": round(s.size / 2**20, 2),
                 "diff_mb": round(s.size_diff / 2**20, 2), "count": s.count} for s in stats]  # fmt: skip
    return [{"site": str(s.traceback[0]), "mb": round(s.size / 2**20, 2), "count": s.count}
            for s in snapshot.statistics("lineno")[:TOP]]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30000)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--every", type=float, default=20.0)
    parser.add_argument("--frames", type=int, default=1)
    args = parser.parse_args(argv)

    from amplitude_dsr.amplitude.client import AmplitudeClient

    tracemalloc.start(args.frames)
    base = tracemalloc.take_snapshot()
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    lock = threading.Lock()

    def record(label: str) -> None:
        current, peak = tracemalloc.get_traced_memory()
        snap = tracemalloc.take_snapshot()
        with lock:
            samples.append({
                "at_s": round(time.monotonic() - started, 1), "label": label,
                "traced_mb": round(current / 2**20, 1), "traced_peak_mb": round(peak / 2**20, 1),
                "rss_mb": round(inflight._rss_kib("VmRSS") / 1024, 1), "top": _top(snap, base),
            })  # fmt: skip

    listed = 0
    original = AmplitudeClient.list_deletions

    def list_deletions(self: Any, *a: Any, **kw: Any) -> Any:
        nonlocal listed
        jobs = original(self, *a, **kw)
        listed += 1
        if listed <= 3 or listed % 10 == 0:
            record(f"after listing {listed}")
        return jobs

    AmplitudeClient.list_deletions = list_deletions  # type: ignore[method-assign]
    stop = threading.Event()

    def periodic() -> None:
        while not stop.wait(args.every):
            record("periodic")

    thread = threading.Thread(target=periodic, daemon=True)
    thread.start()
    try:
        row = inflight.one(args.n, args.db, 3600.0)
    finally:
        stop.set()
        thread.join()
    record("end")
    result = {"n": args.n, "db": args.db, "row": row, "vmhwm_kib": inflight._rss_kib("VmHWM"),
              "traced_peak_mb": round(tracemalloc.get_traced_memory()[1] / 2**20, 1), "samples": samples}  # fmt: skip
    common.write_result("inflight_profile", result)
    for s in samples:
        print(s["at_s"], s["label"], "traced", s["traced_mb"], "peak", s["traced_peak_mb"], "rss", s["rss_mb"])
        for t in s["top"][:8]:
            print("   ", t)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
