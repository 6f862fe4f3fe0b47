"""Bench 1: how close to Amplitude's documented limits the shared budget runs, and how many 429s.

For each pool (user search/activity, deletions, DSAR), each database (SQLite, PostgreSQL) and
1 or 4 worker processes (multiprocessing ``spawn``; each process runs a few threads), every
worker builds its own :class:`Budget` + client on the *same* database and calls the pool's
cheapest endpoint as fast as the budget lets it. Rates and 429s are counted from the
emulator's request log, not from the client. For the user pool an external consumer then takes
half of the pool (``external_load``) and we count the 429s until the client settles.

Budgets are scaled: the emulator and the client agree on ``rate_scale`` (every documented
window is divided by it, counts unchanged), so an hour of the 360/hour pool passes in seconds.

    .venv/bin/python bench/budget_procs.py            # full matrix
    .venv/bin/python bench/budget_procs.py --quick    # shorter phases
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

FRACTION = 0.75
THREADS_PER_PROCESS = 4
# pool -> (emulator path suffix, documented count, documented window in s, method, rate_scale)
POOLS: dict[str, dict[str, Any]] = {
    # 360 per hour: at x300 a window is 12 s and the client may spend 22.5 calls/s.
    "user": {"path": "/api/2/usersearch", "limit": 360, "window": 3600.0, "scale": 300.0},
    # 1 per second: at x4 a window is 0.25 s (3 calls/s for us). A larger scale would shrink
    # the window below the scheduling jitter of two cores and measure the machine, not us.
    "deletion": {"path": "/api/2/deletions/users", "limit": 1, "window": 1.0, "scale": 4.0},
    # 14,400 cost per hour (GET costs 1): at x10 we may spend 30 GETs/s; a window is 360 s, so
    # only the rate is compared, no window can fill up in the time we run.
    "dsar": {"path": "/api/2/dsar/requests", "limit": 14_400, "window": 3600.0, "scale": 10.0},
}


def _worker(
    doc: dict[str, Any],
    db_url: str,
    pool: str,
    scale: float,
    start_at: float,
    stop_at: float,
    extra: dict[str, Any],
    out: Any,
) -> None:
    """One worker process: a Budget + client on the shared database, a few threads calling."""
    import logging

    from amplitude_dsr.amplitude import AmplitudeClient, Budget, DsarClient
    from amplitude_dsr.errors import AmplitudeError, DeferredError

    logging.getLogger("amplitude_dsr").setLevel(logging.ERROR)  # 429s are counted from the log
    budget = Budget(db_url, fraction=FRACTION, rate_scale=scale)
    budget.create_tables()
    if pool == "dsar":
        client: Any = DsarClient(common.org_config(doc), budget)
    else:
        client = AmplitudeClient(common.project_config(doc), budget)
    today = date.today()
    counts = {"ok": 0, "deferred": 0, "errors": 0}
    lock = threading.Lock()

    def one(n: int) -> None:
        if pool == "user":
            client.user_search(f"bench-nobody-{n}")
        elif pool == "deletion":
            client.list_deletions(today, today + timedelta(days=30))
        else:
            client.get(extra["dsar_request_id"])

    def loop(thread: int) -> None:
        n = thread
        while time.time() < stop_at:
            try:
                one(n)
                key = "ok"
            except DeferredError as exc:
                key = "deferred"
                resume = exc.resume_at.timestamp() if exc.resume_at else time.time() + 1
                time.sleep(max(0.0, min(resume, stop_at) - time.time()))
            except AmplitudeError:
                key = "errors"
            with lock:
                counts[key] += 1
            n += THREADS_PER_PROCESS

    time.sleep(max(0.0, start_at - time.time()))
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(THREADS_PER_PROCESS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    budget.close()
    out.put(counts)


def _create_dsar(doc: dict[str, Any]) -> int:
    org = doc["org"]
    response = httpx.post(
        doc["base_url"] + "/api/2/dsar/requests",
        auth=(org["api_key"], org["secret_key"]),
        json={"userId": "alice@example.com", "startDate": "2024-01-01", "endDate": "2024-02-01"},
        timeout=10,
    )
    response.raise_for_status()
    return int(response.json()["requestId"])


def _window_peak(times: list[float], window: float) -> int:
    """The most calls inside any window of ``window`` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def run_one(pool: str, db_kind: str, procs: int, steady: float, load: float) -> dict[str, Any]:
    spec = POOLS[pool]
    scale = spec["scale"]
    window = spec["window"] / scale
    doc_rate = spec["limit"] / window  # documented calls (cost) per second, scaled
    with (
        common.temp_dir("budget") as tmp,
        common.emulator(rate_scale=scale) as emu,
        common.fresh_database(db_kind, tmp) as db_url,
    ):
        from amplitude_dsr.amplitude import Budget

        Budget(db_url, rate_scale=scale).create_tables()
        extra = {"dsar_request_id": _create_dsar(emu.doc)} if pool == "dsar" else {}
        admin = emu.admin
        admin.clear_log()
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        start_at = time.time() + 4.0  # spawned interpreters import the package first
        ext_at = start_at + steady
        stop_at = ext_at + (load if pool == "user" else 0.0)
        workers = [
            ctx.Process(target=_worker, args=(emu.doc, db_url, pool, scale, start_at, stop_at, extra, queue))
            for _ in range(procs)
        ]
        for w in workers:
            w.start()
        if pool == "user" and load:
            time.sleep(max(0.0, ext_at - time.time()))
            admin.external_load("usersearch", 0.5, project="web")
        client_counts = []
        while len(client_counts) < procs:
            try:
                client_counts.append(queue.get(timeout=1.0))
            except Exception:
                if time.time() > stop_at + 60 or not any(w.is_alive() for w in workers):
                    raise RuntimeError("a benchmark worker died; see its traceback above") from None
        for w in workers:
            w.join(30)
        entries = [e for e in admin.request_log() if e["path"].startswith(spec["path"]) and e["method"] == "GET"]
    ok_all = sorted(e["time"] for e in entries if e["status"] == 200 and start_at <= e["time"] < ext_at)
    steady_429 = sum(1 for e in entries if e["status"] == 429 and e["time"] < ext_at)
    peak = _window_peak(ok_all, window) / spec["limit"] if steady >= window else None
    result: dict[str, Any] = {
        "pool": pool,
        "db": db_kind,
        "procs": procs,
        "threads_per_proc": THREADS_PER_PROCESS,
        "rate_scale": scale,
        "window_s": window,
        "documented_per_s": doc_rate,
        "steady_s": steady,
        "steady_calls": len(ok_all),
        "steady_peak_window_ratio": peak,
        "steady_429": steady_429,
        "client": client_counts,
    }
    if pool == "user" and load:
        in_load = [e for e in entries if e["time"] >= ext_at]
        load_429 = sorted(e["time"] - ext_at for e in in_load if e["status"] == 429)
        last = stop_at - window
        late_ok = sum(1 for e in in_load if e["status"] == 200 and e["time"] >= last)
        result.update(
            load_s=load,
            load_429=len(load_429),
            load_429_after_first_window=sum(1 for t in load_429 if t >= window),
            load_first_429_s=load_429[0] if load_429 else None,
            load_last_429_s=load_429[-1] if load_429 else None,
            load_ratio_last_window=late_ok / spec["limit"],
            load_429_times=[round(t, 2) for t in load_429],
        )
    # a per-second series for the plot
    t0 = start_at
    series: dict[int, list[int]] = {}
    for e in entries:
        second = int(e["time"] - t0)
        if 0 <= second < int(stop_at - t0) + 1:
            bucket = series.setdefault(second, [0, 0])
            bucket[0 if e["status"] == 200 else 1] += 1
    result["series"] = [[s, *series.get(s, [0, 0])] for s in range(int(stop_at - t0) + 1)]
    return steady_rate(result)


def steady_rate(result: dict[str, Any]) -> dict[str, Any]:
    """The achieved rate over the second half of the steady phase, from the per-second series.

    The bucket starts full (a burst of its capacity: 18 calls for the user pool, 720 cost for
    DSAR) and refills while the burst drains, so only the second half shows the steady rate."""
    steady = int(result["steady_s"])
    half = (steady + 1) // 2
    ok = sum(row[1] for row in result["series"] if half <= row[0] < steady)
    result["steady_from_s"] = half
    result["steady_ratio"] = ok / (steady - half) / result["documented_per_s"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--pools", default="user,deletion,dsar")
    parser.add_argument("--dbs", default="sqlite,postgres")
    parser.add_argument("--procs", default="1,4")
    args = parser.parse_args(argv)
    steady_user, load_user, steady_other = (14.0, 14.0, 6.0) if args.quick else (26.0, 36.0, 10.0)
    steady_dsar = 20.0 if args.quick else 40.0  # the 720-call burst of the DSAR bucket drains first
    runs = []
    for pool in args.pools.split(","):
        for db_kind in args.dbs.split(","):
            for procs in (int(p) for p in args.procs.split(",")):
                steady = {"user": steady_user, "dsar": steady_dsar}.get(pool, steady_other)
                load = load_user if pool == "user" else 0.0
                r = run_one(pool, db_kind, procs, steady, load)
                runs.append(r)
                print(
                    f"{pool:9} {db_kind:9} procs={procs}  ratio={r['steady_ratio']}  "
                    f"peak={r['steady_peak_window_ratio']}  429={r['steady_429']}  "
                    f"load429={r.get('load_429', '-')}",
                    flush=True,
                )
    common.print_table(
        [
            "pool",
            "db",
            "procs",
            "achieved/limit",
            "peak window/limit",
            "429 steady",
            "429 under ext. load",
            "429 after 1st window",
            "ours/limit, last window",
        ],
        [
            [
                r["pool"],
                r["db"],
                r["procs"],
                r["steady_ratio"],
                r["steady_peak_window_ratio"] if r["steady_peak_window_ratio"] is not None else "-",
                r["steady_429"],
                r.get("load_429", "-"),
                r.get("load_429_after_first_window", "-"),
                r.get("load_ratio_last_window", "-"),
            ]
            for r in runs
        ],
    )
    previous = common.load_result("budget") if args.pools != parser.get_default("pools") else None
    if previous:  # a partial rerun replaces only its own rows
        mine = {(r["pool"], r["db"], r["procs"]) for r in runs}
        runs = [r for r in previous["runs"] if (r["pool"], r["db"], r["procs"]) not in mine] + runs
    common.write_result("budget", {"fraction": FRACTION, "runs": runs, "at": datetime.now(UTC).isoformat()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
