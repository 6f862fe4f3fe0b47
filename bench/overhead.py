"""Bench 5: orchestration overhead per Amplitude call, and how it grows with the database.

Budgets lifted (client ``rate_scale`` 1e6; the emulator's limits switched off) and an emulator
without injected latency, in its own process. For each database (SQLite, PostgreSQL) one child
process opens an executor runtime, pre-fills the tables with 100, then 1,000, then 10,000
earlier requests (``repo.insert_request`` + an audit ``received`` entry each, half access and
half deletion, with deletion items), and at each level times a batch of access requests for
ordinary users (project keys) submitted together, from the first ``api.submit`` to the last
``api.wait``.

HTTP time is measured by replaying exactly the logged calls of that batch (same method, path,
query and keys) with a bare ``httpx.Client``, one after another, against the same emulator.
Overhead per call = (wall time - replay time) / calls. It includes everything that is not the
HTTP exchange: DBOS checkpoints, our tables and audit chain, budget transactions, the report
package written per request.

    .venv/bin/python bench/overhead.py
    .venv/bin/python bench/overhead.py --dbs sqlite --levels 100,1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from dbos import DBOS

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

CLIENT_SCALE = 1_000_000.0
BATCH = 20  # access requests timed at each level (``--batch``)
FLOOR_STEPS = 200  # bare DBOS steps timed in one workflow: the floor any checkpointed call pays


@DBOS.step()
def bare_step(i: int) -> int:
    """A DBOS step that does nothing: what remains is DBOS's own checkpoint."""
    return i


@DBOS.workflow()
def floor_workflow(n: int) -> float:
    """Seconds for ``n`` bare steps in a row, inside one workflow."""
    t0 = time.perf_counter()
    for i in range(n):
        bare_step(i)
    return time.perf_counter() - t0


def bare_step_ms() -> float:
    """Milliseconds per bare DBOS step on this process's database (the floor of our overhead)."""
    seconds = DBOS.start_workflow(floor_workflow, FLOOR_STEPS).get_result()
    return float(seconds) / FLOOR_STEPS * 1000


def cpu_seconds() -> float:
    """CPU time of this process so far (user + system, every thread): what the orchestration
    costs whatever else the machine runs, unlike wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prefill(rt: Any, start: int, stop: int) -> float:
    """Add earlier requests ``start..stop-1`` (completed, with audit entries and deletion items)."""
    from amplitude_dsr.store import audit, repo

    t0 = time.perf_counter()
    for i in range(start, stop):
        kind = "access" if i % 2 else "deletion"
        row, _ = repo.insert_request(
            rt.engine,
            kind=kind,
            identifiers=[{"kind": "user_id", "value": f"old-{i}@bench.example"}],
            options={},
            regulation="gdpr",
            deadline_days=30,
        )
        with rt.engine.begin() as conn:
            audit.append(conn, row.id, "received", {"kind": kind, "identifiers": []})
        if kind == "deletion":
            repo.queue_items(rt.engine, row.id, "web", [10_000_000 + i], org_wide=False)
            repo.cancel_items(rt.engine, row.id, only_queued=True)  # not queued: nothing to submit
        repo.update_request(rt.engine, row.id, status="completed" if kind == "access" else "verified")
    return time.perf_counter() - t0


def replay(doc: dict[str, Any], calls: list[dict[str, Any]]) -> float:
    """Seconds a bare httpx client spends on exactly these calls, one after another."""
    p = common.project_config(doc)
    auth = (p.api_key.get_secret_value(), p.secret_key.get_secret_value())
    with httpx.Client(base_url=doc["base_url"], auth=auth, timeout=30) as http:
        http.get("/api/2/usersearch", params={"user": "warm-up"})
        t0 = time.perf_counter()
        for c in calls:
            http.request(c["method"], c["path"], params=c["query"] or None, json=c["body"])
        return time.perf_counter() - t0


def child(doc: dict[str, Any], db_url: str, workdir: str, levels: list[int], batch: int) -> list[dict[str, Any]]:
    from amplitude_dsr.dsr import api
    from amplitude_dsr.dsr.executor import open_runtime
    from amplitude_dsr.dsr.model import Identifier
    from amplitude_dsr.emulator.admin_client import EmulatorAdmin

    tmp = Path(workdir)
    if os.environ.get("BENCH_QUEUE_CONCURRENCY"):  # experiment: the access queue's bound
        from amplitude_dsr.dsr import runtime

        runtime.SHARED_QUEUES[runtime.QUEUE] = int(os.environ["BENCH_QUEUE_CONCURRENCY"])
    admin = EmulatorAdmin(doc["base_url"], timeout=120)
    users = [u["user_id"] for u in admin.catalog()["web"]["ordinary"]]
    settings = common.settings_for(doc, db_url, rate_scale=CLIENT_SCALE)
    rt = open_runtime(settings, role="executor", data_dir=tmp / "data")
    rows = []
    have = 0
    try:
        # warm-up: imports, connections, first DBOS dequeue
        rid, _ = api.submit(rt, "access", [Identifier.parse("user_id", users[0])], options={"out_dir": str(tmp / "w")})
        api.wait(rt, rid, timeout=120)
        floor_ms = bare_step_ms()
        for level in levels:
            fill_s = prefill(rt, have, level)
            have = level
            since = common.last_seq(admin)
            cpu0 = cpu_seconds()
            t0 = time.perf_counter()
            ids = [
                api.submit(
                    rt,
                    "access",
                    [Identifier.parse("user_id", users[i % len(users)])],
                    options={"out_dir": str(tmp / "out" / str(level))},
                )[0]
                for i in range(batch)
            ]
            statuses = [api.wait(rt, r, timeout=600) for r in ids]
            wall = time.perf_counter() - t0
            cpu = cpu_seconds() - cpu0
            calls = [e for e in admin.request_log(since) if e["path"].startswith("/api/")]
            http_s = replay(doc, calls)
            rows.append(
                {
                    "prefilled": level,
                    "prefill_seconds": fill_s,
                    "requests": batch,
                    "completed": statuses.count("completed"),
                    "calls": len(calls),
                    "wall_s": wall,
                    "http_replay_s": http_s,
                    "overhead_per_call_ms": (wall - http_s) / len(calls) * 1000,
                    "http_per_call_ms": http_s / len(calls) * 1000,
                    "wall_per_request_ms": wall / batch * 1000,
                    "bare_step_ms": floor_ms,
                    "cpu_per_request_ms": cpu / batch * 1000,
                }
            )
    finally:
        rt.close()
    return rows


def run_db(db_kind: str, levels: list[int], batch: int) -> list[dict[str, Any]]:
    with common.temp_dir("overhead") as tmp, common.emulator(rate_scale=1.0) as emu:
        emu.admin.set_limits(enforce=False)
        with common.fresh_database(db_kind, tmp) as db_url:
            cmd = [
                common.PYTHON,
                __file__,
                "--child",
                json.dumps(emu.doc),
                db_url,
                str(tmp),
                ",".join(map(str, levels)),
                str(batch),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=common.REPO)
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    for r in rows:
        r["db"] = db_kind
    return list(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", default="sqlite,postgres")
    parser.add_argument("--levels", default="100,1000,10000")
    parser.add_argument("--batch", type=int, default=BATCH, help="access requests timed at each level")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        doc, db_url, workdir, levels, batch = args.child
        rows = child(json.loads(doc), db_url, workdir, [int(x) for x in levels.split(",")], int(batch))
        print(json.dumps(rows), flush=True)
        os._exit(0)
    levels = [int(x) for x in args.levels.split(",")]
    rows = []
    for db_kind in args.dbs.split(","):
        for r in run_db(db_kind, levels, args.batch):
            rows.append(r)
            print(
                f"{db_kind:9} prefilled={r['prefilled']:<6} calls={r['calls']} wall={r['wall_s']:.2f}s "
                f"http={r['http_replay_s']:.2f}s overhead/call={r['overhead_per_call_ms']:.1f} ms "
                f"cpu/request={r['cpu_per_request_ms']:.1f} ms",
                flush=True,
            )
    common.print_table(
        ["db", "requests in DB", "calls", "wall s", "HTTP s (replay)", "overhead ms/call", "HTTP ms/call"],
        [
            [
                r["db"],
                r["prefilled"],
                r["calls"],
                r["wall_s"],
                r["http_replay_s"],
                r["overhead_per_call_ms"],
                r["http_per_call_ms"],
            ]
            for r in rows
        ],
    )
    common.write_result("overhead", {"client_rate_scale": CLIENT_SCALE, "batch": args.batch, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
