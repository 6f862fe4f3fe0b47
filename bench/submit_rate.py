"""Bench 6: how fast requests are submitted, one by one (as ``batch`` did before bulk submission)
and in bulk (``api.submit_many``, and the real ``batch`` command), on SQLite and PostgreSQL.

Per database, a fresh database and an emulator in its own process (limits x1000 on both sides):

* ``one by one, idle``: a submitter process (nothing runs) submits access requests the way
  ``batch`` did before, three commits each: the request row, its ``received`` entry, the
  workflow's enqueue (``api.submit`` of that time, reproduced here as :func:`one_by_one`);
  at most 3,000 requests or 30 s.
* ``one by one, beside a worker``: the same while a ``worker`` runs the workflows just submitted.
* ``one by one, alone``: the same in a command without a worker (a foreground executor, as
  ``batch`` is then): the workflows it submitted run in the same process meanwhile.
* ``submit_many, idle``: ``api.submit_many`` of 10,000 access requests in a submitter process
  (one transaction per chunk of 500).
* ``batch, beside a worker``: the real command on a 10,000-row CSV file while a ``worker``
  runs the workflows. Timed from the process start (imports, DBOS launch, reading the file
  included) until the database holds all 10,000 requests; then the command is interrupted
  (following 10,000 requests to their end is not what is measured).
* ``batch, alone``: the same without a worker: the command itself runs the workflows it
  submits (a foreground executor), so they compete with the submission for the database.

    .venv/bin/python bench/submit_rate.py
    .venv/bin/python bench/submit_rate.py --dbs sqlite --rows 2000 --one-by-one 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

RATE_SCALE = 1000.0
CLI = [common.PYTHON, "-c", "from amplitude_dsr.cli.main import run; run()"]
ONE_BY_ONE_SECONDS = 30.0  # each one-by-one measurement stops after this long
BATCH_TIMEOUT = 900.0  # seconds a batch run may take before the bench gives up on it


def one_by_one(rt: Any, n: int, prefix: str, max_seconds: float = 1e9) -> tuple[int, float]:
    """Submit up to ``n`` access requests (stopping after ``max_seconds``) as ``api.submit`` did
    before bulk submission: the row (race-free insert), then its ``received`` entry, then the
    enqueue, three commits. Returns (requests submitted, seconds)."""
    from amplitude_dsr.dsr import api
    from amplitude_dsr.dsr.model import Identifier
    from amplitude_dsr.dsr.runtime import enqueue
    from amplitude_dsr.store import audit, repo

    t0 = time.perf_counter()
    done = 0
    while done < n and time.perf_counter() - t0 < max_seconds:
        ident = Identifier.parse("email", f"{prefix}-{done}@bench.example")
        options = {"batch_key": f"bench:{prefix}", "full_history": False}
        row, created = repo.insert_request(
            rt.engine, kind="access", identifiers=[ident.model_dump(mode="json")], options=options,
            regulation="gdpr", deadline_days=30, idempotency_key=api.idempotency_key("access", [ident], options),
        )  # fmt: skip
        if created:
            with rt.engine.begin() as conn:
                detail = {"kind": "access", "identifiers": [audit.identifier_digest("email", ident.value)]}
                audit.append(conn, row.id, "received", {**detail, "regulation": "gdpr"})
        enqueue(rt, "access_workflow", row.id, row.id)
        done += 1
    return done, time.perf_counter() - t0


def child(phase: str, doc: dict[str, Any], db_url: str, workdir: str, n: int) -> dict[str, Any]:
    from amplitude_dsr.dsr import api
    from amplitude_dsr.dsr.executor import open_runtime
    from amplitude_dsr.dsr.model import Identifier

    settings = common.settings_for(doc, db_url, rate_scale=RATE_SCALE)
    # "fg": a foreground command (no worker), whose own workflows run here while it submits.
    rt = open_runtime(settings, role="auto" if phase == "fg" else "submitter", data_dir=Path(workdir) / "data")
    try:
        one_by_one(rt, 3, f"warm-{phase}")  # imports, connections, prepared statements
        if phase == "bulk":
            specs = [
                api.Spec("access", [Identifier.parse("email", f"bulk-{i}@bench.example")], {"batch_key": "bench:bulk"})
                for i in range(n)
            ]
            t0 = time.perf_counter()
            results = api.submit_many(rt, specs)
            seconds = time.perf_counter() - t0
            assert sum(created for _, created in results) == n
        else:
            n, seconds = one_by_one(rt, n, phase, ONE_BY_ONE_SECONDS)
    finally:
        rt.close()
    return {"requests": n, "seconds": seconds, "per_s": n / seconds}


def run_child(phase: str, emu: common.Emulator, db_url: str, tmp: Path, n: int) -> dict[str, Any]:
    cmd = [common.PYTHON, __file__, "--child", phase, json.dumps(emu.doc), db_url, str(tmp), str(n)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=common.REPO)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def cli_env(doc: dict[str, Any], db_url: str, tmp: Path) -> dict[str, str]:
    p = common.project_config(doc)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AMPLITUDE_", "DBOS"))},
        "HOME": str(tmp / "home"), "XDG_DATA_HOME": str(tmp / "xdg"),
        "AMPLITUDE_API_KEY": p.api_key.get_secret_value(), "AMPLITUDE_SECRET_KEY": p.secret_key.get_secret_value(),
        "AMPLITUDE_BASE_URL": p.base_url or "", "AMPLITUDE_REGION": p.region,
        "AMPLITUDE_DSR_DATABASE_URL": db_url, "AMPLITUDE_DSR_RATE_SCALE": str(RATE_SCALE),
        "AMPLITUDE_DSR_POLL_INTERVAL": "0.2", "AMPLITUDE_DSR_MAX_LINGER": "30",
    }  # fmt: skip


def start_worker(env: dict[str, str], tmp: Path) -> subprocess.Popen[str]:
    """A ``worker`` process, once it holds the executor lock. Its log goes to a file: it prints
    a line per state change, which would fill a pipe nobody reads and stall it."""
    log = tmp / f"worker-{time.monotonic_ns()}.log"
    with log.open("w") as err:
        worker = subprocess.Popen([*CLI, "worker"], env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=err, text=True)
    deadline = time.monotonic() + 120
    while "running" not in log.read_text():  # "worker ... running" once it holds the lock
        if worker.poll() is not None or time.monotonic() > deadline:
            stop(worker)
            raise RuntimeError(f"worker did not start: {log.read_text()[-500:]}")
        time.sleep(0.05)
    return worker


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def stored(engine: sa.Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM dsr_requests").scalar_one())
    except sa.exc.SQLAlchemyError:  # not created yet
        return 0


def run_batch(doc: dict[str, Any], db_url: str, tmp: Path, rows: int, *, beside_worker: bool) -> dict[str, Any]:
    """Time the ``batch`` command until the database holds every row's request."""
    tag = "worker" if beside_worker else "alone"
    csv_file = tmp / f"batch-{tag}.csv"
    lines = ["request,kind,value"] + [f"access,email,{tag}-{i}@bench.example" for i in range(rows)]
    csv_file.write_text("\n".join(lines) + "\n")
    env = cli_env(doc, db_url, tmp)
    engine = sa.create_engine(common.normalize_database_url(db_url))
    before = stored(engine)
    worker = start_worker(env, tmp) if beside_worker else None
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*CLI, "batch", str(csv_file), "--json", "--out", str(tmp / f"out-{tag}")],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        first = None
        while True:
            have = stored(engine) - before
            now = time.perf_counter() - t0
            if have and first is None:
                first = now
            if have >= rows or now > BATCH_TIMEOUT or proc.poll() is not None:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        stop(proc)
    finally:
        if worker is not None:
            stop(worker, signal.SIGTERM)
        engine.dispose()
    first = first or seconds
    return {
        "requests": have, "seconds": seconds, "per_s": have / seconds, "first_stored_s": first,
        "per_s_after_first": have / max(seconds - first, 1e-9), "complete": have >= rows,
    }  # fmt: skip


def run_db(db_kind: str, rows: int, one: int) -> list[dict[str, Any]]:
    results = []
    with (
        common.temp_dir("submit") as tmp,
        common.emulator(rate_scale=RATE_SCALE) as emu,
        common.fresh_database(db_kind, tmp) as db_url,
    ):
        measured = [
            ("one by one, idle", lambda: run_child("one", emu, db_url, tmp, one)),
            ("one by one, beside a worker", lambda: beside(emu, db_url, tmp, one)),
            ("one by one, alone", lambda: run_child("fg", emu, db_url, tmp, one)),
            ("submit_many, idle", lambda: run_child("bulk", emu, db_url, tmp, rows)),
            ("batch, beside a worker", lambda: run_batch(emu.doc, db_url, tmp, rows, beside_worker=True)),
            ("batch, alone", lambda: run_batch(emu.doc, db_url, tmp, rows, beside_worker=False)),
        ]
        for how, measure in measured:
            r = {"db": db_kind, "how": how, **measure()}
            results.append(r)
            print(f"{db_kind:9} {how:28} {r['requests']:>6} in {r['seconds']:7.1f} s: {r['per_s']:8.1f}/s", flush=True)
    return results


def beside(emu: common.Emulator, db_url: str, tmp: Path, n: int) -> dict[str, Any]:
    worker = start_worker(cli_env(emu.doc, db_url, tmp), tmp)
    try:
        return run_child("beside", emu, db_url, tmp, n)
    finally:
        stop(worker, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", default="sqlite,postgres")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--one-by-one", type=int, default=3000, help="at most this many one by one (and 30 s)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        phase, doc, db_url, workdir, n = args.child
        print(json.dumps(child(phase, json.loads(doc), db_url, workdir, int(n))), flush=True)
        os._exit(0)
    rows = []
    for db_kind in args.dbs.split(","):
        rows += run_db(db_kind, args.rows, args.one_by_one)
    common.print_table(
        ["db", "how", "requests", "seconds", "requests/s"],
        [[r["db"], r["how"], r["requests"], r["seconds"], r["per_s"]] for r in rows],
    )
    common.write_result(
        "submit_rate", {"rate_scale": RATE_SCALE, "chunk": 500, "one_by_one_seconds": ONE_BY_ONE_SECONDS, "rows": rows}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
