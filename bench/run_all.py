"""Run every benchmark (about 17 minutes on two cores), then regenerate ``bench/RESULTS.md`` and
the plots in ``bench/plots/``.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/run_all.py            # everything
    .venv/bin/python bench/run_all.py --quick    # shorter budget phases, smaller sizes (~6 min)
    .venv/bin/python bench/run_all.py --only deletion,access

Each bench also runs on its own (see its docstring); PostgreSQL is expected at
``postgresql://127.0.0.1:5432/test`` (``BENCH_PG_URL`` overrides); each run creates a fresh
database there and drops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report

BENCHES = {
    "budget": (["budget_procs.py"], ["budget_procs.py", "--quick"]),
    "deletion": (["deletion_batching.py"], ["deletion_batching.py", "--sizes", "10,100,10000"]),
    "access": (["access_calls.py"], ["access_calls.py"]),
    "memory": (["dsar_memory.py"], ["dsar_memory.py", "--sizes-mb", "100,1000"]),
    "overhead": (["overhead.py"], ["overhead.py", "--levels", "100,10000"]),
    "submit": (["submit_rate.py"], ["submit_rate.py", "--rows", "2000"]),
    "connections": (["connections.py"], ["connections.py", "--deletions", "20", "--access", "4"]),
    "faults": (["fault_tolerance.py"], ["fault_tolerance.py", "--outage", "20", "--requests", "3"]),
    "takeover": (["takeover.py"], ["takeover.py", "--requests", "20"]),
    "inflight": (["inflight.py"], ["inflight.py", "--sizes", "1000,10000"]),
    "deletion_calls": (["deletion_calls.py"], ["deletion_calls.py", "--n", "5"]),
    "service": (["service.py"], ["service.py", "--posts", "300", "--callbacks", "20"]),
    "budget_history": (["budget_history.py"], ["budget_history.py", "--calls", "500", "--rounds", "3"]),
}


def run_client_budget_bench() -> None:
    """``bench/budget.py`` (the client engineer's: every pool incl. REST concurrency, 2 processes)
    on SQLite and on a fresh PostgreSQL database; its JSON lines go to results/budget_client.json."""
    script = common.BENCH_DIR / "budget.py"
    if not script.exists():
        return
    runs = []
    for db_kind in ("sqlite", "postgres"):
        with common.temp_dir("budget-client") as tmp, common.fresh_database(db_kind, tmp) as url:
            cmd = [common.PYTHON, str(script)]
            if db_kind == "postgres":
                cmd += ["--database-url", common.normalize_database_url(url)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=common.REPO)
        print(out.stdout, flush=True)
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                runs.append({"db": db_kind, **json.loads(line)})
    common.write_result("budget_client", {"runs": runs})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join([*BENCHES, "budget_client"]))
    args = parser.parse_args(argv)
    started = time.monotonic()
    for name in args.only.split(","):
        t0 = time.monotonic()
        print(f"=== {name}", flush=True)
        if name == "budget_client":
            run_client_budget_bench()
        else:
            full, quick = BENCHES[name]
            script, *rest = quick if args.quick else full
            subprocess.run([common.PYTHON, str(common.BENCH_DIR / script), *rest], check=True, cwd=common.REPO)
        print(f"=== {name}: {time.monotonic() - t0:.0f} s", flush=True)
    path = report.render()
    print(f"wrote {path} in {time.monotonic() - started:.0f} s total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
