"""Benchmark: does the shared budget keep every pool at ~0.75 of its documented limit, with zero
429s, when several PROCESSES (each with several threads) spend it through one database?

Runs the emulator with scaled limits, drives each pool from 2 worker processes, and judges by the
emulator's request log. Per pool it prints: calls, 429s, the steady rate (after the initial
burst) as a share of the documented (scaled) rate, and the fullest window of the documented
length as a share of the documented count (for concurrency: the peak number in flight). For
the deletion pool (1 per window) the fullest window is 1/1 by construction: what matters is 0
429s at a steady 0.75.

    .venv/bin/python bench/budget.py                      # SQLite file in a temp dir
    .venv/bin/python bench/budget.py --database-url postgresql+psycopg://127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from amplitude_dsr.amplitude import AmplitudeClient, Budget, DsarClient
from amplitude_dsr.amplitude.limits import POOLS, bucket_capacity, min_call_cost, slot_count
from amplitude_dsr.config import OrgConfig, ProjectConfig
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.errors import BudgetExhausted, NotFound

FRACTION = 0.75


@dataclass(frozen=True)
class Scenario:
    pool: str  # our pool name
    path: str  # the endpoint driven
    rate_scale: float
    processes: int
    threads: int
    calls: int  # per thread
    slow: float = 0.0  # seconds each response is held (concurrency scenario)


SCENARIOS = [
    Scenario("user", "/api/2/usersearch", 720.0, 2, 4, 60),
    Scenario("deletion", "/api/2/deletions/users", 5.0, 2, 4, 4),
    Scenario("dsar", "/api/2/dsar/requests", 20.0, 2, 4, 160),
    Scenario("rest", "/api/2/events/list", 1.0, 2, 6, 8, slow=0.2),
]


# --- worker process ------------------------------------------------------------------------


def worker(config: dict[str, Any]) -> dict[str, Any]:
    """Spend ``calls`` x ``threads`` calls of one pool; BudgetExhausted waits until resume_at."""
    budget = Budget(
        config["database_url"],
        fraction=FRACTION,
        rate_scale=config["rate_scale"],
        table_prefix=config["table_prefix"],
    )
    budget.create_tables()
    errors: list[str] = []
    deferred = 0

    def one(amp: AmplitudeClient | DsarClient) -> None:
        if isinstance(amp, DsarClient):
            with contextlib.suppress(NotFound):  # an unknown ID still spends the GET
                amp.get(1)
        elif config["pool"] == "user":
            amp.user_search("nobody-zz9")
        elif config["pool"] == "deletion":
            amp.list_deletions(date.today(), date.today())
        else:
            amp.events_list()

    def run() -> None:
        nonlocal deferred
        keys = {"api_key": config["api_key"], "secret_key": config["secret_key"]}
        amp: AmplitudeClient | DsarClient
        if config["pool"] == "dsar":
            amp = DsarClient(OrgConfig(base_url=config["base_url"], **keys), budget)
        else:
            amp = AmplitudeClient(ProjectConfig(base_url=config["base_url"], **keys), budget)
        with amp:
            for _ in range(config["calls"]):
                while True:
                    try:
                        one(amp)
                        break
                    except BudgetExhausted as exc:
                        deferred += 1
                        time.sleep(max(0.0, exc.resume_at.timestamp() - time.time()))
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        return

    threads = [threading.Thread(target=run) for _ in range(config["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    budget.close()
    return {"errors": errors, "deferred": deferred}


# --- driver ----------------------------------------------------------------------------------


def peak_window(times: list[float], window: float) -> int:
    """The most calls in any window of ``window`` seconds."""
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def peak_in_flight(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at once."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def run_scenario(scenario: Scenario, database_url: str) -> dict[str, Any]:
    spec = POOLS[scenario.pool]
    with EmulatorServer(seed=7, rate_scale=scenario.rate_scale) as server:
        state = server.admin.state()
        creds = state["org"] if scenario.pool == "dsar" else state["projects"][0]
        if scenario.slow:
            server.admin.inject_fault("slow", path=scenario.path, count=None, delay=scenario.slow)
        config = {
            "database_url": database_url,
            "table_prefix": f"bench{uuid.uuid4().hex[:8]}",
            "rate_scale": scenario.rate_scale,
            "base_url": server.base_url,
            "api_key": creds["api_key"],
            "secret_key": creds["secret_key"],
            "pool": scenario.pool,
            "threads": scenario.threads,
            "calls": scenario.calls,
        }
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", json.dumps(config)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(scenario.processes)
        ]
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            results.append(json.loads(out.strip().splitlines()[-1]))
        log = [e for e in server.admin.request_log() if e["path"].startswith(scenario.path)]
    ok = sorted(e["time"] for e in log if e["status"] in (200, 404))
    throttled = sum(1 for e in log if e["status"] == 429)
    row: dict[str, Any] = {
        "pool": scenario.pool,
        "scale": scenario.rate_scale,
        "procs_x_threads": f"{scenario.processes}x{scenario.threads}",
        "calls": len(ok),
        "429s": throttled,
        "errors": sum(len(r["errors"]) for r in results),
    }
    if spec.limit is not None and spec.window is not None:
        cost = 1
        burst = int(bucket_capacity(spec, FRACTION, min_call_cost(scenario.pool)) // cost)
        documented = spec.limit * scenario.rate_scale / spec.window  # calls per second
        # The steady state: the second half of the calls made after the initial burst (tokens
        # keep arriving while the burst drains, so the first half still carries surplus).
        steady = ok[burst + (len(ok) - burst) // 2 :]
        rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
        window = spec.window / scenario.rate_scale
        span = ok[-1] - ok[0] if ok else 0.0
        row["steady_rate/limit"] = round(rate / documented, 3)
        row["peak_window/limit"] = round(peak_window(ok, window) / spec.limit, 3) if span >= window else "run < window"
        row["seconds"] = round(span, 1)
    else:
        assert spec.concurrency is not None
        intervals = [(t - scenario.slow, t) for t in ok]
        peak = peak_in_flight(intervals)
        row["peak_in_flight/limit"] = f"{peak}/{spec.concurrency} = {peak / spec.concurrency:.2f}"
        row["slots_used"] = slot_count(spec, FRACTION)
        row["seconds"] = round(ok[-1] - ok[0], 1) if ok else 0.0
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        print(f"database: {url.split(':')[0]}   fraction: {FRACTION}")
        for scenario in SCENARIOS:
            print(json.dumps(run_scenario(scenario, url)), flush=True)
    print(f"total {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
