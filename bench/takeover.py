"""Bench: how long a dead worker's requests wait before another worker takes them over.

``--workers`` workers (own executor IDs) on one fresh database; ``--requests`` deletions are
submitted through ``batch`` and run until every one waits on its Amplitude job (the emulator's
clock at real speed keeps the jobs in ``staging``). Then the worker running the most workflows is
SIGKILLed. Measured from the kill: when a surviving worker logs the takeover, and when every
workflow of the dead executor runs under a live one (DBOS's own table). Then the clock is sped up
and every request runs to its end: final statuses, POSTs, IDs posted twice, verification searches.
The run measures; it asserts nothing.

    .venv/bin/python bench/takeover.py [--db postgres|sqlite] [--workers 3] [--requests 60]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

CLI = str(Path(common.PYTHON).parent / "amplitude-dsr")
FINAL = ("verified", "recollected", "still_present", "nothing_found", "cancelled", "failed")


def _env(doc: dict[str, Any], db_url: str, home: Path) -> dict[str, str]:
    p = next(p for p in doc["projects"] if p["name"] == "web")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AMPLITUDE_", "DBOS"))}
    return {
        **keep, "HOME": str(home), "AMPLITUDE_API_KEY": p["api_key"], "AMPLITUDE_SECRET_KEY": p["secret_key"],
        "AMPLITUDE_BASE_URL": p["base_url"], "AMPLITUDE_DSR_DATABASE_URL": db_url,
        "AMPLITUDE_DSR_RATE_SCALE": "1000", "AMPLITUDE_DSR_POLL_INTERVAL": "0.5", "AMPLITUDE_DSR_MAX_LINGER": "1",
    }  # fmt: skip


def _status(env: dict[str, str]) -> list[dict[str, Any]]:
    out = subprocess.run([CLI, "status", "--json"], env=env, capture_output=True, text=True, check=True)
    requests: list[dict[str, Any]] = json.loads(out.stdout)["requests"]
    return requests


def _executors(db_url: str) -> dict[str, str]:
    engine = sa.create_engine(common.normalize_database_url(db_url))
    table = "workflow_status" if engine.dialect.name == "sqlite" else "dbos.workflow_status"
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT workflow_uuid, executor_id, status FROM {table}")).all()
    finally:
        engine.dispose()
    return {r[0]: f"{r[1]}:{r[2]}" for r in rows}


def _until(check: Any, limit: float, what: str) -> Any:
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.1)


def run(db_kind: str, workers: int, requests: int) -> dict[str, Any]:
    with (
        common.temp_dir("takeover-") as work,
        common.fresh_database(db_kind, work) as db,
        common.emulator(rate_scale=1000.0, clock_speed=1.0) as emu,
    ):
        admin = emu.admin
        users = [admin.add_user("web", user_id=f"takeover-{n}", events=3) for n in range(requests)]
        env = _env(emu.doc, db, work)
        csv_file = work / "requests.csv"
        csv_file.write_text("request,kind,value\n" + "".join(f"deletion,user_id,{u['user_id']}\n" for u in users))
        procs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
        try:
            for n in range(workers):
                name = f"worker-{n}"
                log = work / f"{name}.err"
                with log.open("w") as err:
                    procs[name] = (
                        subprocess.Popen([CLI, "worker", "--executor-id", name], env=env, stderr=err, text=True),
                        log,
                    )
            for _, log in procs.values():
                _until(lambda log=log: "running" in log.read_text(), 60, "workers to start")
            subprocess.run([CLI, "batch", str(csv_file), "--json"], env=env, capture_output=True, check=True)
            _until(
                lambda: (r := _status(env)) and len(r) == requests and all(d["status"] == "staging" for d in r),
                600, "every request to wait on its job",
            )  # fmt: skip
            running = Counter(v.split(":")[0] for v in _executors(db).values() if v.endswith(":PENDING"))
            victim, held = running.most_common(1)[0]
            process, _ = procs.pop(victim)
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed = time.monotonic()
            survivors = [log for _, log in procs.values()]
            _until(lambda: any(f"executor {victim} is gone" in log.read_text() for log in survivors), 300, "takeover")
            logged = time.monotonic() - killed
            _until(
                lambda: not any(v == f"{victim}:PENDING" for v in _executors(db).values())
                and sum(v.endswith(":PENDING") for v in _executors(db).values()) >= requests,
                300, "the dead executor's workflows to run elsewhere",
            )  # fmt: skip
            resumed = time.monotonic() - killed
            before = len(admin.request_log())
            admin.set_speed(86400.0 * 4)
            done = _until(
                lambda: (r := _status(env)) and all(d["status"] in FINAL for d in r) and r, 900, "every request to end"
            )
            finished = time.monotonic() - killed
        finally:
            for process, _ in procs.values():
                process.terminate()
                process.wait(30)
        log = admin.request_log()
        posted = [i for e in log if e["method"] == "POST" and e["path"].endswith("/deletions/users")
                  for i in e["body"]["amplitude_ids"]]  # fmt: skip
        searches = sum(1 for e in log[before:] if e["path"].endswith("/usersearch"))
        return {
            "db": db_kind, "workers": workers, "requests": requests, "victim_held": held,
            "takeover_logged_s": round(logged, 2), "all_resumed_s": round(resumed, 2),
            "all_final_s": round(finished, 2), "statuses": dict(Counter(d["status"] for d in done)),
            "posts": sum(1 for e in log if e["method"] == "POST" and e["path"].endswith("/deletions/users")),
            "ids_posted_twice": sum(1 for n in Counter(posted).values() if n > 1),
            "verification_searches": searches,
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="postgres,sqlite")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    rows = [run(kind, args.workers, args.requests) for kind in args.db.split(",")]
    headers = list(rows[0])
    common.print_table(headers, [[json.dumps(r[h]) if isinstance(r[h], dict) else r[h] for h in headers] for r in rows])
    common.write_result("takeover", {"rows": rows})


if __name__ == "__main__":
    main()
