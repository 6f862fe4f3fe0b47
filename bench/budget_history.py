"""Bench 18: what recording the budget's history costs per Amplitude call.

Each call that fires is counted (``amplitude/budget_history.py``): ``--mode buffered`` (what the
budget does) counts in memory and adds the counts to the database every few seconds inside a
call's transaction; ``--mode each`` adds one ``INSERT ... ON CONFLICT DO UPDATE`` per call (the
first design, kept here to show why it was dropped). One process acquires and releases the user
pool ``--calls`` times with limits scaled so far up that nothing waits (the figure is the budget's
own database work per call), with the history recorded and, in alternating rounds on the same
database, with counting replaced by a no-op. Median per-call microseconds are reported, with the
difference.

    .venv/bin/python bench/budget_history.py [--calls 2000] [--rounds 5] [--dbs sqlite,postgres] [--modes buffered,each]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from amplitude_dsr.amplitude import Budget


def per_call_us(budget: Budget, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        with budget.acquire("user", "bench"):
            pass
    return (time.perf_counter() - t0) / calls * 1e6


def run(db: str, mode: str, calls: int, rounds: int) -> dict[str, Any]:
    with common.temp_dir("budget-history") as work, common.fresh_database(db, work) as url:
        budget = Budget(url, rate_scale=1e6, max_inline_wait=60)
        history = budget.history
        count = history.count
        if mode == "each":
            count = lambda conn, pool, scope, now: history.record(conn, pool, scope, now, calls=1)  # noqa: E731
        per_call_us(budget, 200)  # warm-up: tables, rows, connections
        on, off = [], []
        for _ in range(rounds):
            history.count = count  # type: ignore[method-assign]
            on.append(per_call_us(budget, calls))
            history.count = lambda *a, **k: None  # type: ignore[method-assign]
            off.append(per_call_us(budget, calls))
        history.count = count  # type: ignore[method-assign]
        [spent] = budget.spent()
        budget.close()
    result = {
        "db": db, "mode": mode, "calls_per_round": calls, "rounds": rounds,
        "with_history_us": statistics.median(on), "without_us": statistics.median(off),
        "recorded_calls": sum(spent.calls),
    }  # fmt: skip
    result["added_us"] = result["with_history_us"] - result["without_us"]
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dbs", default="sqlite,postgres")
    parser.add_argument("--modes", default="buffered,each")
    args = parser.parse_args()
    rows = [run(db, mode, args.calls, args.rounds) for db in args.dbs.split(",") for mode in args.modes.split(",")]
    common.write_result("budget_history", {"rows": rows, "shared_machine": True})


if __name__ == "__main__":
    main()
