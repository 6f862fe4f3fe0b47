"""Render ``bench/RESULTS.md`` and the PNG plots from ``bench/results/*.json`` (the last run).

.venv/bin/python bench/report.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report_history
import report_service

OUT = common.BENCH_DIR / "RESULTS.md"
PLOTS = common.BENCH_DIR / "plots"
MB = 1_000_000
LOAD_HEADERS = [
    "db", "procs", "seconds", "429s", "429s after 1st window", "first 429 at s", "last 429 at s",
    "ours/limit last window",
]  # fmt: skip
MEMORY_HEADERS = [
    "export", "status", "events", "peak RSS (VmHWM)", "peak RSS (sampled)", "RSS after imports",
    "work files left", "report files", "downloads", "seconds",
]  # fmt: skip
SUBMIT_HEADERS = ["db", "how", "requests", "seconds", "requests/s", "first row stored at s", "requests/s after it"]
OVERHEAD_HEADERS = [
    "db", "requests in DB", "timed requests", "calls", "wall s", "HTTP s (replay)", "overhead ms/call",
    "HTTP ms/call", "wall ms/request", "bare DBOS step ms", "CPU ms/request",
]  # fmt: skip


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


NOT_MEASURED = """## Not measured

- Real Amplitude: every figure is against the emulator, whose limits are sliding windows divided
  by `rate_scale`. The deletion pool is measured at x4 only (a 0.25 s window): at larger scales the
  window shrinks below the scheduling jitter of two cores. The DSAR pool never fills a whole window
  in the time we run (its window is 360 s at x10), so only its rate is compared.
- The full deletion path at 10,000 subjects has no recorded row. It takes about an hour on two
  cores; one attempt (`--sizes 10000 --full 10000 --queued 10000`) submitted all 10,000 requests
  at about 30 per second, then the executor started every workflow at once (about 720 MB RSS with
  5,500 of them resolving) and the session ended before it finished, so nothing was written. The
  10,000 row is the reduced path, which skips resolution and measures batching alone.
- Deletion batching on PostgreSQL and with several worker processes (SQLite, one process only).
- The 5-concurrent REST cap under our own load is covered only by `bench/budget.py` (section 1b).
- DBOS system tables are not pre-filled in the overhead bench: only our tables and the audit chain
  grow to 10,000 requests; a database that has run 10,000 workflows also holds their checkpoints.
- Memory of deletion requests, of many concurrent access requests, and of the emulator itself.
- Latency of durable waits (DBOS queue polling 0.2 s, `api.wait` polling 0.2 s) on its own; it is
  inside the overhead figure.
"""


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(common.fmt(c) if c is not None else "-" for c in row) + " |" for row in rows]
    return "\n".join(lines)


def budget_section(data: dict[str, Any] | None) -> str:
    if not data:
        return "## 1. Budget use per pool\n\nNot run yet: `.venv/bin/python bench/budget_procs.py`.\n"
    runs = data["runs"]
    rows = [
        [
            r["pool"],
            r["db"],
            r["procs"],
            f"x{r['rate_scale']:g} ({r['window_s']:.2f} s window)",
            r["steady_calls"],
            r.get("steady_from_s"),
            r["steady_ratio"],
            r["steady_peak_window_ratio"],
            r["steady_429"],
        ]
        for r in runs
    ]
    load = [r for r in runs if "load_429" in r]
    load_rows = [
        [
            r["db"],
            r["procs"],
            r["load_s"],
            r["load_429"],
            r["load_429_after_first_window"],
            r["load_first_429_s"],
            r["load_last_429_s"],
            r["load_ratio_last_window"],
        ]
        for r in load
    ]
    plt = _plt()
    if load:
        fig, axes = plt.subplots(len(load), 1, figsize=(9, 2.2 * len(load)), sharex=True, squeeze=False)
        for ax, r in zip(axes[:, 0], load, strict=True):
            s = r["series"]
            ax.bar([x[0] for x in s], [x[1] for x in s], width=1.0, color="tab:blue", label="200")
            ax.bar(
                [x[0] for x in s], [x[2] for x in s], width=1.0, bottom=[x[1] for x in s], color="tab:red", label="429"
            )
            ax.axhline(r["documented_per_s"], color="black", lw=0.8, ls="--", label="documented rate")
            ax.axhline(0.75 * r["documented_per_s"], color="green", lw=0.8, ls=":", label="0.75")
            ax.axvline(r["steady_s"], color="grey", lw=0.8)
            ax.set_ylabel("calls/s")
            ax.set_title(
                f"user pool, {r['db']}, {r['procs']} process(es); external load from {r['steady_s']:.0f} s", fontsize=9
            )
        axes[0, 0].legend(fontsize=7, loc="upper right")
        axes[-1, 0].set_xlabel("seconds")
        fig.tight_layout()
        fig.savefig(PLOTS / "budget_user_pool.png", dpi=90)
        plt.close(fig)
    return f"""## 1. Budget use per pool

**How measured.** `bench/budget_procs.py`: a fresh emulator process and a fresh database per row
(SQLite file, or `CREATE DATABASE` on `{common.PG_URL}`, dropped afterwards). 1 or 4 worker processes
(`multiprocessing` spawn), each with {runs[0]["threads_per_proc"]} threads and its own `Budget` +
client on the shared database (fraction {data["fraction"]}), call the pool's cheapest endpoint as
fast as the budget allows (user: `usersearch`; deletion: `GET /deletions/users`; DSAR: `GET` of one
export). Counted from the emulator's request log. Emulator and client share one `rate_scale`, which
divides every documented window (counts unchanged). *achieved/limit* = 200s per second / documented
(scaled) rate over the second half of the steady phase (from *from s* on): the bucket starts full
(its capacity: 18 calls for the user pool, 1 for deletions, 720 cost for DSAR) and refills while
that burst drains, so the first half is not steady.
*peak window* = the fullest sliding window of the documented length, burst included / documented
count (only where the phase is longer than a window).

Rerun: `.venv/bin/python bench/budget_procs.py` (`--quick` for shorter phases).

{table(["pool", "db", "procs", "scale", "calls", "from s", "achieved/limit", "peak window/limit", "429s"], rows)}

**External consumer takes half of the user pool** (`external_load("usersearch", 0.5)`, after the
steady phase): 429s seen while it runs, and our share of the documented count in the last window.
The emulator's external load fills its half of the window at once, so the first 429s come within
a second. Each 429 that starts a pause halves our rate factor (`amplitude/adaptive.py`), which
then grows back by a tenth per window: the 429s stop once our rate plus the other consumer's fits
under the limit, and our share in the last window shows how far we backed off.

{table(LOAD_HEADERS, load_rows)}

![user pool](plots/budget_user_pool.png)
"""


def budget_client_section(data: dict[str, Any] | None) -> str:
    if not data or not data.get("runs"):
        return ""
    keys: list[str] = []
    for r in data["runs"]:
        keys += [k for k in r if k not in keys]
    rows = [[r.get(k) for k in keys] for r in data["runs"]]
    return f"""### 1b. All pools from one process pair (`bench/budget.py`, the client engineer's bench)

**How measured.** `bench/budget.py` (its docstring has the details): 2 worker processes per pool
with several threads each, a fixed number of calls per thread, an in-process emulator; the REST
row holds every response for 0.2 s (`slow` fault) to measure concurrency. Run by `run_all.py` on a
SQLite file and on a fresh PostgreSQL database.

Rerun: `.venv/bin/python bench/budget.py` (`--database-url postgresql+psycopg://...` for PostgreSQL).

{table(keys, rows)}
"""


def deletion_section(data: dict[str, Any] | None) -> str:
    if not data:
        return "## 2. Deletion submissions per subject\n\nNot run yet: `.venv/bin/python bench/deletion_batching.py`.\n"
    rows = []
    for r in data["rows"]:
        o, b, b1 = r["ours"], r["baseline"], r["baseline_documented"]
        sizes = o["ids_per_post"]
        rows.append(
            [
                o["n"],
                o["mode"],
                f"{o['receipted']} of {o['n']}",
                o["posts"],
                o["posts_per_subject"],
                ", ".join(map(str, sizes)) if len(sizes) <= 12 else f"{len(sizes)} POSTs, max {max(sizes)}",
                o["post_429"],
                o["deletion_gets"],
                o["seconds"],
                b["posts"],
                b["post_429"],
                b1["post_429"],
                o.get("measured_at", data["measured_at"]),
            ]
        )
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for mode, marker in (("full", "o"), ("queued", "^"), ("reduced", "s")):
        pts = [(r["ours"]["n"], r["ours"]["posts_per_subject"]) for r in data["rows"] if r["ours"]["mode"] == mode]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=marker, label=f"ours ({mode} path)")
    base = sorted({(r["baseline"]["n"], r["baseline"]["posts_per_subject"]) for r in data["rows"]})
    ax.plot(*zip(*base, strict=True), marker="x", label="naive: one POST per subject")
    ax.axhline(0.011, color="grey", ls=":", label="target 0.011")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("subjects")
    ax.set_ylabel("POSTs per subject")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOTS / "deletion_posts.png", dpi=90)
    plt.close(fig)
    first = data["rows"][0]["ours"]
    return f"""## 2. Deletion submissions per subject

**How measured.** `bench/deletion_batching.py`, SQLite, limits x{data["rate_scale"]:g} on both sides.
*full* path: N users added to the emulator (admin `add_user`), N deletion requests through
`api.submit` on an in-process executor runtime, timed until every Amplitude ID is receipted (its
job is `staging` or later); POSTs counted from the emulator's log. Settings: `max_linger`
{first.get("max_linger")} s (the production default: a partial batch waits only while other
requests are still resolving), `poll_interval` 0.5 s with a fast emulated clock (jobs are `done`
within seconds, so tracking and verification run too; *our deletion GETs* are those job listings).
*reduced* path (1,000 and 10,000): requests and queued IDs written with
`repo.insert_request` + `repo.queue_items` (resolution skipped); the executor's sweep starts the
project's flusher, as in a worker. Baseline: a naive loop, one POST of one user ID per subject, no pacing, no retry,
on a fresh emulator with the same users, at x{data["rate_scale"]:g} and at the documented limit
(x1: 1 request per second).

Rerun: `.venv/bin/python bench/deletion_batching.py` (`--sizes 10,100` for a subset, which
replaces only its own rows; `--sizes 10000 --full 10000 --queued 10000` for the full path at 10,000,
about an hour).

{
        table(
            [
                "subjects",
                "path",
                "receipted",
                "our POSTs",
                "POSTs/subject",
                "IDs per POST",
                "our 429s",
                "our deletion GETs",
                "seconds",
                "naive POSTs",
                f"naive 429s (x{data['rate_scale']:g})",
                "naive 429s (x1)",
                "measured",
            ],
            rows,
        )
    }

![deletion POSTs per subject](plots/deletion_posts.png)
"""


def access_section(data: dict[str, Any] | None) -> str:
    if not data:
        return "## 3. User-pool calls per access request\n\nNot run yet: `.venv/bin/python bench/access_calls.py`.\n"
    rows = [
        [r["case"], r["status"], r["searches"], r["activity_pages"], r["user_pool_calls"], r["http_429"]]
        for r in data["rows"]
    ]
    return f"""## 3. User-pool calls per access request

**How measured.** `bench/access_calls.py`: one access request per case (project keys only) through
`api.submit`/`api.wait` on an executor runtime against a fresh emulator (seed 1, limits
x{data["rate_scale"]:g}); `usersearch` and `useractivity` calls counted from the request log between
submission and result. Target: 2 for an ordinary user.

Rerun: `.venv/bin/python bench/access_calls.py`.

{table(["case", "status", "searches", "activity pages", "user-pool calls", "429s"], rows)}
"""


def memory_section(data: dict[str, Any] | None) -> str:
    if not data:
        return "## 4. Peak memory of a large DSAR export\n\nNot run yet: `.venv/bin/python bench/dsar_memory.py`.\n"
    rows = []
    for r in data["runs"]:
        subj = ((r.get("result") or {}).get("subjects") or [{}])[0]
        rows.append(
            [
                f"{r['approx_bytes'] / MB:.0f} MB",
                r["status"],
                subj.get("events"),
                f"{r['vm_hwm'] / MB:.0f} MB",
                f"{r['peak_rss_sampled'] / MB:.0f} MB",
                f"{r['rss_after_open'] / MB:.0f} MB",
                f"{sum(r['work_files'].values()) / MB:.0f} MB",
                f"{sum(r['output_files'].values()) / MB:.0f} MB",
                r["downloads"],
                r["seconds"],
            ]
        )
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r in data["runs"]:
        s = r["samples"]
        ax.plot([x[0] for x in s], [x[1] / MB for x in s], label=f"{r['approx_bytes'] / MB:.0f} MB export")
    ax.axhline(200, color="grey", ls=":", label="target 200 MB")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOTS / "dsar_memory.png", dpi=90)
    plt.close(fig)
    return f"""## 4. Peak memory while processing a large DSAR export

**How measured.** `bench/dsar_memory.py`: per size a fresh emulator process generates the subject's
DSAR output on the fly (`dsar_synthetic`, about that many uncompressed bytes, gzipped JSON lines),
and a fresh child process runs the full access request with org keys through the real workflow
(`api.submit` + `api.wait`, SQLite): search, activity, DSAR create, polls, streamed download and
gunzip into the work file, then the report package. *VmHWM* is the kernel's peak RSS of that
process (read by the child from `/proc/self/status` at the end); the parent also samples `VmRSS`
every 50 ms (the plot). Work and output files are in a temp dir on disk, deleted afterwards.
Target: under 200 MB and flat as the export grows.

Rerun: `.venv/bin/python bench/dsar_memory.py` (`--sizes-mb 100,1000` for a subset).

{table(MEMORY_HEADERS, rows)}

![RSS over time](plots/dsar_memory.png)
"""


FLOOR_STEPS_NOTE = (
    "200 steps that do nothing, in a row inside one workflow (each is one DBOS checkpoint write), divided by 200."
)


def overhead_section(data: dict[str, Any] | None) -> str:
    if not data:
        return "## 5. Orchestration overhead per Amplitude call\n\nNot run yet: `.venv/bin/python bench/overhead.py`.\n"
    rows = [
        [
            r["db"],
            r["prefilled"],
            r["requests"],
            r["calls"],
            r["wall_s"],
            r["http_replay_s"],
            r["overhead_per_call_ms"],
            r["http_per_call_ms"],
            r["wall_per_request_ms"],
            r.get("bare_step_ms"),
            r.get("cpu_per_request_ms"),
        ]
        for r in data["rows"]
    ]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for db in sorted({r["db"] for r in data["rows"]}):
        pts = [(r["prefilled"], r["overhead_per_call_ms"]) for r in data["rows"] if r["db"] == db]
        ax.plot(*zip(*pts, strict=True), marker="o", label=db)
    ax.set_xscale("log")
    ax.set_xlabel("requests already in the database")
    ax.set_ylabel("overhead per Amplitude call (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOTS / "overhead.png", dpi=90)
    plt.close(fig)
    return f"""## 5. Orchestration overhead per Amplitude call

**How measured.** `bench/overhead.py`: budgets lifted (client `rate_scale`
{data["client_rate_scale"]:g}, the emulator's limits switched off), no injected latency, the
emulator in its own process. One child process per database opens an executor runtime, pre-fills
the tables (`repo.insert_request` + an audit `received` entry per request; half of them deletions
with a deletion item), and at 100, 1,000 and 10,000 earlier requests times {data["batch"]} access
requests for ordinary users submitted together, from the first `api.submit` to the last
`api.wait`. HTTP time = the same logged calls replayed one after another with a bare
`httpx.Client` against the same emulator. Overhead per call = (wall - HTTP) / calls; it covers
DBOS checkpoints, our tables and audit chain, budget transactions, `api.wait` polling (0.2 s) and
writing each request's report package (its events as JSON and CSV, the HTML report). *Bare DBOS
step* is the floor measured in the same process: {FLOOR_STEPS_NOTE} *CPU ms/request* is the
process's own CPU time (user + system, every thread, SQLite's work included; PostgreSQL's server
is another process) over the timed burst, divided by its requests: unlike wall time it hardly
moves when other work shares the cores. The DBOS system tables are not pre-filled (see "Not
measured").

With bursts of {data["batch"]} requests the table measures throughput (the fixed latencies of
DBOS's queue polling and `api.wait`'s 0.2 s polling are spread over 400 calls); bursts of 20, as
the section measured until 2026-12-06, mostly measure latency. Bursts of 20 on the same quiet
machine on 2026-12-07, after the changes below: SQLite 31 to 33 ms per call (CPU 55 to 63 ms per
request), PostgreSQL 49 to 52 ms (CPU 91 to 97 ms), against 48 to 56 and 60 to 79 ms measured the
day before (P-11). What changed: checkpoints per access request 8 to 5, a concurrency slot handed
to a waiter of the same process at once, the budget's statements built once. Where the CPU of a
request went before that last change (py-spy `--gil` on bursts of 200, workflow threads): on
PostgreSQL the budget's
transactions (lock the bucket row, spend, take a slot, free it) were half, the two Amplitude calls'
HTTP under a tenth, the package about an eighth, DBOS's checkpoint writes about an eighth. The
goal of 5 ms per call is not met; P-11 says why and what is left.

**Tried and reverted on 2026-12-07: keeping budget slots between calls.** A worker process kept
the concurrency slots it had claimed for 0.25 s after each call (and, in a first version, up to
four calls' tokens for 1 s), so a call ran one budget transaction instead of two. Three
back-to-back pairs against the commit before, bursts of 200 at 100 earlier requests, on a quiet
machine (load 2 to 3): CPU per request SQLite 58, 55, 58 ms before and 57, 56, 68 after;
PostgreSQL 97, 94, 101 before and 98, 99, 109 after; overhead per call 25-27 against 26-31 ms
(SQLite) and 49-52 against 51-56 ms (PostgreSQL). No gain above the noise, so the code (a lease
module and a sweeper thread) was not kept. Pairs taken under other engineers' benches (load 5 to
9) had shown PostgreSQL 110-132 → 61-100 ms: under contention, not in the code alone. The
token stash also doubled the 429s met while an external consumer took half the user pool
(section 1's bench, SQLite, 4 processes: 5 without, 10-11 with).

Rerun: `.venv/bin/python bench/overhead.py`.

{table(OVERHEAD_HEADERS, rows)}

![overhead](plots/overhead.png)
"""


def submit_section(data: dict[str, Any] | None) -> str:
    title = "## 6. Submission rate: one by one and in bulk"
    if not data:
        return f"{title}\n\nNot run yet: `.venv/bin/python bench/submit_rate.py`.\n"
    rows = [
        [
            r["db"],
            r["how"],
            r["requests"],
            r["seconds"],
            r["per_s"],
            r.get("first_stored_s"),
            r.get("per_s_after_first"),
        ]
        for r in data["rows"]
    ]
    return f"""{title}

**How measured.** `bench/submit_rate.py`, per database a fresh database and an emulator in its own
process (limits x{data["rate_scale"]:g} on both sides), access requests for unknown email addresses.
*One by one* is how `batch` submitted before bulk submission: per request the row, its `received`
audit entry and the workflow's enqueue, three commits (reproduced in the bench), in a submitter
process with nothing running (*idle*), beside a `worker` that runs the workflows just submitted,
and *alone* (a foreground command: its workflows run in the same process). *submit_many* is
`api.submit_many` in a submitter process, chunks of {data["chunk"]} requests per transaction (row,
audit entry and enqueue together). *batch* is the real command on a CSV file, timed from the
process start (imports, DBOS launch, reading the file) until the database holds every row's
request; the command is then interrupted (following the requests to their end is not measured).
*Alone*, the command runs the workflows it has submitted while it submits the rest. The seconds
column of *batch* includes the start-up; the last column leaves it out. Goal: at least 500
requests/s through `batch` on SQLite. The *alone* rows of `batch` on PostgreSQL are problem P-6.

Rerun: `.venv/bin/python bench/submit_rate.py` (`--dbs sqlite --rows 2000` for a shorter run).

{table(SUBMIT_HEADERS, rows)}
"""


def connections_section(data: dict[str, Any] | None) -> str:
    if not data:
        return "## 7. PostgreSQL connections per process\n\nNot run yet: `.venv/bin/python bench/connections.py`.\n"
    rows = [
        [r["command"], r["role"], r["peak"], r["bound"] if r["bound"] is not None else "-",
         ", ".join(f"{k} {v}" for k, v in sorted(r["parts"].items()))]
        for r in data["rows"]
    ]  # fmt: skip
    bounds = ", ".join(f"{role} {f['most']}" for role, f in data["footprints"].items())
    ended = ", ".join(f"{n} {status}" for status, n in sorted(data.get("load_statuses", {}).items())) or "-"
    return f"""## 7. PostgreSQL connections per process

**How measured.** `bench/connections.py`: one fresh PostgreSQL database, the emulator in its own
process. A sampler reads `pg_stat_activity` for that database every 20 ms (from a connection to
another database) and keeps the peak per process and per part, grouped by `application_name`
(`amplitude-dsr <role> <pid> <part>`). First a worker runs while `batch` submits
{data["deletions"]} deletions and {data["access"]} access requests and until all are final, and
each command runs beside it; then commands run with no worker. The load took
{data.get("load_seconds", "-")} s and ended with {ended}. Bound = the most the role's pools
allow ({bounds}; `docs/operations.md`, "Connections and database faults"); the server's
`max_connections` was {data["max_connections"]}.

Rerun: `.venv/bin/python bench/connections.py`.

{table(["process", "role", "peak connections", "bound", "peak per part"], rows)}
"""


def summary(results: dict[str, dict[str, Any] | None]) -> str:
    lines = ["| figure | target | measured |", "|---|---|---|"]
    b = results["budget"]
    if b:
        user = [r for r in b["runs"] if r["pool"] == "user"]
        if user:
            lo, hi = min(r["steady_ratio"] for r in user), max(r["steady_ratio"] for r in user)
            lines.append(
                f"| user pool achieved/limit (1 and 4 procs, SQLite and PostgreSQL) | 0.70-0.80, 0 429s | "
                f"{lo:.3f}-{hi:.3f}, {sum(r['steady_429'] for r in user)} 429s |"
            )
            lines.append(
                "| 429s while an external consumer takes half the user pool (after the first window) | bounded | "
                + ", ".join(
                    f"{r['db']}/{r['procs']}p: {r['load_429']} ({r['load_429_after_first_window']})"
                    for r in user
                    if "load_429" in r
                )
                + " |"
            )
        for pool in ("deletion", "dsar"):
            rs = [r for r in b["runs"] if r["pool"] == pool]
            if rs:
                lines.append(
                    f"| {pool} pool achieved/limit | 0.70-0.80, 0 429s | "
                    f"{min(r['steady_ratio'] for r in rs):.3f}-{max(r['steady_ratio'] for r in rs):.3f}, "
                    f"{sum(r['steady_429'] for r in rs)} 429s |"
                )
    d = results["deletion"]
    if d:
        for r in d["rows"]:
            o = r["ours"]
            partial = "" if o["receipted"] >= o["n"] else f", only {o['receipted']} receipted in {o['seconds']:.0f} s"
            lines.append(
                f"| deletion POSTs per subject, {o['n']} subjects ({o['mode']} path) | <= 0.011 at 1000 | "
                f"{o['posts_per_subject']:.4f}{partial} (naive: {r['baseline']['posts_per_subject']:.0f} per subject, "
                f"{r['baseline_documented']['post_429']} of its {r['baseline_documented']['posts']} POSTs 429 at 1/s) |"
            )
    a = results["access_calls"]
    if a:
        ordinary = [r["user_pool_calls"] for r in a["rows"] if r["case"].startswith("ordinary")]
        heavy = [f"{r['case']}: {r['user_pool_calls']}" for r in a["rows"] if r["case"].startswith("heavy")]
        lines.append(f"| user-pool calls per access request, ordinary user | 2 | {min(ordinary)}-{max(ordinary)} |")
        lines.append(f"| user-pool calls per access request, heavy user | - | {'; '.join(heavy)} |")
    m = results["dsar_memory"]
    if m:
        lines.append(
            "| peak RSS during a DSAR export | < 200 MB, flat | "
            + ", ".join(f"{r['approx_bytes'] / MB:.0f} MB: {r['vm_hwm'] / MB:.0f} MB" for r in m["runs"])
            + " |"
        )
    inflight = results["inflight"]
    if inflight:
        per_db: dict[str, list[str]] = {}
        for r in sorted(inflight["rows"], key=lambda r: (r["db"], r["n"])):
            per_db.setdefault(r["db"], []).append(f"{r['peak_rss_kib'] / 1024:.0f}")
        lines.append(
            "| peak RSS (MiB) with 1,000 / 10,000 / 100,000 deletions in flight, one worker | < 300 MB, flat | "
            + "; ".join(f"{db}: {' / '.join(v)}" for db, v in per_db.items())
            + " |"
        )
    done = results.get("inflight_done")
    if done:
        lines.append(
            "| seconds until no request waits on a job of 100,000 once it is `done` (section 10) | - | "
            + "; ".join(
                f"{r['db']}: {r['done_seconds']:.1f} s, {r['job_status_entries']:,} entries"
                for r in done["rows"]
                if r["n"] == 100_000
            )
            + " |"
        )
    o5 = results["overhead"]
    if o5:
        lines.append(
            f"| orchestration overhead per call (ms) by requests in DB, bursts of {o5['batch']} | <= 5 | "
            + "; ".join(f"{r['db']} {r['prefilled']}: {r['overhead_per_call_ms']:.0f}" for r in o5["rows"])
            + " |"
        )
    s6 = results["submit_rate"]
    if s6:
        batch_rows = [r for r in s6["rows"] if r["how"].startswith("batch")]
        before = [r for r in s6["rows"] if r["how"].startswith("one by one")]
        lines.append(
            "| requests/s submitted through `batch` (10,000 rows) | >= 500 on SQLite | "
            + "; ".join(f"{r['db']} {r['how'].split(', ')[1]}: {r['per_s']:.0f}" for r in batch_rows)
            + " (one by one before: "
            + "; ".join(f"{r['db']} {r['how'].split(', ')[1]}: {r['per_s']:.0f}" for r in before)
            + ") |"
        )
    c = results.get("connections")
    if c:
        worker = max((r["peak"] for r in c["rows"] if r["role"] == "worker"), default=0)
        command = max((r["peak"] for r in c["rows"] if r["role"] != "worker"), default=0)
        lines.append(
            f"| PostgreSQL connections per process, peak (worker under load / any command) | "
            f"<= {c['footprints']['worker']['most']} / <= {c['footprints']['foreground']['most']} | "
            f"{worker} / {command} |"
        )
    t = results.get("takeover")
    if t:
        lines.append(
            "| seconds from a worker's SIGKILL until the others run its requests (3 workers) | bounded | "
            + "; ".join(
                f"{r['db']}: {r['all_resumed_s']:.1f} s, {r['ids_posted_twice']} IDs posted twice" for r in t["rows"]
            )
            + " |"
        )
    calls = results.get("deletion_calls")
    if calls:
        per = {(r["path"], r["kind"]): r["per_person"] for r in calls["rows"]}
        shown = "; ".join(
            f"{kind} {per.get(('resolve-first', kind), '-')} -> {per.get(('direct', kind), '-')}"
            for kind in ("user_id", "email", "amplitude_id", "device_id")
        )
        lines.append(f"| user-pool calls per deleted person, resolve-first -> direct | fewer than 3 | {shown} |")
    lines += report_service.summary_lines(results.get("service"))
    return "\n".join(lines)


def takeover_section(data: dict[str, Any] | None) -> str:
    title = "## 9. A dead worker's requests taken over by the others"
    if not data:
        return f"{title}\n\nNot run yet: `.venv/bin/python bench/takeover.py`.\n"
    headers = ["db", "workers", "requests", "held by the killed worker", "takeover logged s", "all resumed s",
               "all final s", "final statuses", "POSTs", "IDs posted twice", "verification searches"]  # fmt: skip
    rows = [
        [r["db"], r["workers"], r["requests"], r["victim_held"], r["takeover_logged_s"], r["all_resumed_s"],
         r["all_final_s"], ", ".join(f"{n} {k}" for k, n in r["statuses"].items()), r["posts"],
         r["ids_posted_twice"], r["verification_searches"]]
        for r in data["rows"]
    ]  # fmt: skip
    return f"""{title}

**How measured.** `bench/takeover.py`: that many `worker` processes (own executor IDs) on one fresh
database, the emulator in its own process (x1000 limits, real-time clock so the jobs stay in
`staging`). The deletions are submitted with `batch` and run until every one waits on its job;
then the worker running the most workflows is SIGKILLed. Seconds are counted from the kill: until a
surviving worker logs the takeover (`dsr/takeover.py` checks every 5 s), until no workflow is left
running under the dead executor ID (DBOS's own table), and, after the emulator's clock is sped up,
until every request is final. POSTs and searches come from the emulator's log; one verification
search per subject means no request was verified twice.

Rerun: `.venv/bin/python bench/takeover.py [--db postgres,sqlite] [--workers 3] [--requests 60]`.

{table(headers, rows)}
"""


def faults_section(data: dict[str, Any] | None) -> str:
    title = "## 8. Faults that waiting fixes"
    if not data:
        return f"{title}\n\nNot run yet: `.venv/bin/python bench/fault_tolerance.py`.\n"
    headers = ["scenario", "requests", "final statuses", "failed", "POSTs", "IDs posted twice", "429s",
               "calls through", "wall s"]  # fmt: skip
    rows = [
        [r["scenario"], r["requests"], ", ".join(f"{n} {k}" for k, n in r["statuses"].items()), r["failed"],
         r["posts"], r["ids_posted_twice"], r["429s"], r.get("calls_through", "-"), r["wall_s"]]
        for r in data["rows"]
    ]  # fmt: skip
    return f"""{title}

**How measured.** `bench/fault_tolerance.py`, SQLite, the emulator in its own process. *Silent*:
the emulator process is stopped (SIGSTOP: connections hang and time out, as in a network outage)
for the given time while 10 deletions wait on their job (x1000 limits), or while an access
request polls its DSAR export, then continued; the clock is then sped up so the jobs finish.
*Outside consumer*: the emulator and we both at x10 (10 deletion calls per second), an outside
consumer sending 9 of them, so our calls get through only in the gaps (`docs/emulator.md`); 10
deletions are submitted together and run to `verified`. Counts come from the emulator's request
log (calls that hung during the silence never reached it). With 90% of a one-per-second pool
taken, about one call in ten finds a gap, so each call that got through cost about 11 refused
ones: bounded by the backoff (no tight loop) and nothing failed, but not few.

Rerun: `.venv/bin/python bench/fault_tolerance.py [--outage 60] [--requests 10]`.

{table(headers, rows)}
"""


def inflight_section(data: dict[str, Any] | None) -> str:
    title = "## 10. In-flight deletions on one executor"
    if not data:
        return f"{title}\n\nNot run yet: `.venv/bin/python bench/inflight.py`.\n"
    headers = ["db", "requests in flight", "POSTs", "max IDs per POST", "429s", "s to every receipt",
               "job listings", "peak threads", "RSS before MB", "peak RSS MB", "peak - before MB", "SQLite peak MB",
               "waiting on jobs"]  # fmt: skip
    rows = [
        [r["db"], r["n"], r["posts"], r["ids_per_post_max"], r["any_429"], round(r["seconds_to_receipts"], 1),
         r["deletion_gets"], r["peak_threads"], round(r["rss_before_kib"] / 1024), round(r["peak_rss_kib"] / 1024),
         round((r["peak_rss_kib"] - r["rss_before_kib"]) / 1024),
         "-" if r.get("sqlite_peak_kib") is None or r["db"] != "sqlite" else round(r["sqlite_peak_kib"] / 1024, 1),
         r["statuses"].get("staging", 0) + r["statuses"].get("submitted", 0)]
        for r in data["rows"]
    ]  # fmt: skip
    return f"""{title}

**How measured.** `bench/inflight.py`, one fresh process per size: N anonymous users are added to the
emulator (its own process, x1000 limits, real-time clock so every job stays `staging`), N deletion
requests with one queued Amplitude ID each are written in bulk (resolution skipped; its cost is the
user pool's, section 2), both by a process of their own, then one in-process executor opens in the
measured process. Its sweep starts the project's flusher
(POSTs of 100) and tracker (one job listing per round, poll interval 2 s). Threads and RSS of the
executor process are sampled every 0.25 s until every ID is receipted and two more tracking rounds
have run; POSTs, 429s and listings come from the emulator's log. "SQLite peak" is SQLite's own
allocations at their highest (`sqlite3_memory_highwater`, every connection of the process).
Before the job-centric redesign a deletion held a workflow thread until its job was `done` (about
720 MB RSS at 10,000, P-5).

Rerun: `.venv/bin/python bench/inflight.py [--sizes 1000,10000,100000] [--db sqlite|postgres]`.
Where the memory goes: `.venv/bin/python bench/inflight_profile.py --n 30000` (one size under
`tracemalloc`, snapshots after job listings and every 20 s; P-8 has what it showed).

{table(headers, rows)}
{INFLIGHT_NOTE}"""


# What the table above was measured after, and on what (kept beside the section's code: the
# results file holds figures only).
INFLIGHT_NOTE = """
SQLite measured on 2026-12-07, 06:17 to 06:23 UTC, after P-8's third round (a listing's chunks
kept only up to 1 MiB; the round in which a job changes status written a page per transaction),
load average 1 to 2: peak RSS 115 → 120 → 126 MiB at 1,000 → 10,000 → 100,000, 11 MiB from 1,000
to 100,000. After the second round (03:10 to 03:17 UTC: listings read from their chunks as they
arrive, no whole-body text for error excerpts, SQLite page cache of 256 KiB a connection, the
bench's writing in a process of its own) 115 → 120 → 136; before it (load 5 to 15) 117 → 146 →
203, and before the first round 118 → 144 → 269. PostgreSQL, from before the third round (1,000 and
10,000 at 03:41 to 03:43 UTC, 100,000 at 04:45 to 04:59 UTC, load 1 to 3): 111 → 114 → 126 MiB
(before the second round: 113 → 134 → 177); the second table's PostgreSQL row, after the third
round, peaked at 117 MiB at 100,000 while staging.
"""


def inflight_done_section(data: dict[str, Any] | None) -> str:
    title = "**The round in which a job turns `done`.**"
    if not data:
        return f"{title} Not run yet: `.venv/bin/python bench/inflight_done.py 100000 [sqlite|postgres]`.\n"
    headers = ["db", "requests in the job", "s until none waits on the job", "peak RSS MB, staging",
               "peak RSS MB, done phase", "`job_status` entries", "then done / verifying / verified"]  # fmt: skip
    rows = [
        [r["db"], r["n"], round(r["done_seconds"], 1), round(r["staging_peak_rss_kib"] / 1024),
         round(r["done_peak_rss_kib"] / 1024), r["job_status_entries"],
         " / ".join(str(r["after_done"].get(s, 0)) for s in ("done", "verifying", "verified"))]
        for r in data["rows"]
    ]  # fmt: skip
    return f"""{title} `bench/inflight_done.py N db`: the bench above at one size, then the
emulator's clock moved 60 days on, so the next listing shows the one job `done`. Timed from the
clock's move until no request still waits on `queued`, `staging` or `submitted`, then two more
tracking rounds; RSS sampled as above over that phase. Verifications start meanwhile (the sweep
enqueues up to 1,000 every 5 s) and run as in a worker; the last column is where the requests
stood at the end. One `job_status` entry per request means none was written twice.

{table(headers, rows)}
{INFLIGHT_DONE_NOTE}"""


INFLIGHT_DONE_NOTE = """
Before this table existed (2026-12-07, SQLite, 100,000): the round wrote every request's entry
and the job's items in one transaction, which held SQLite's write lock for about 90 s; the
requests then moved at 170 to 300 a second, and every certificate walked the whole audit chain
(400,000 rows, about 70 s each with a connection held), so the store's pool ran dry and
verifications logged database faults (they resumed; nothing was lost). With those two fixed,
requests still moved one UPDATE each: 52.6 s on SQLite and 709 s on PostgreSQL until none waited
on the job. P-8 has the three fixes; the rows above are after all of them.
"""


def console_section(data: dict[str, Any] | None) -> str:
    title = "## 11. Console pages as the request table grows"
    if not data:
        return f"{title}\n\nNot run yet: `.venv/bin/python bench/console_list.py`.\n"
    headers = ["db", "requests", "page", "p50 ms", "max ms", "SQL statements"]
    rows = [
        [r["db"], r["requests"], r["page"], round(r["p50_ms"], 1), round(r["max_ms"], 1), r["statements"]]
        for r in data["rows"]
    ]
    levels = ", then ".join(f"{n:,}" for n in sorted({int(r["requests"]) for r in data["rows"]}))
    return f"""{title}

**How measured.** `bench/console_list.py`: the real service app (console included) on a fresh
database, requested in process with Starlette's `TestClient` (the app's own time, database
included, no network). Requests, their OpenDSR mapping (half of them), one `received` audit entry
each and its identifier digest's row in `dsr_identifier_digests` (as intake writes it) are written
in bulk with SQL up to {levels} rows (`ANALYZE` after each load on PostgreSQL). Each page: one
warm-up, then {data.get("repeat", 20)} timed requests (median and worst); SQL statements counted
with a SQLAlchemy event on the engine (one is the session's token check). Measured while the
machine's two cores were shared with other work (tests and benches of other branches, another
engineer's session), so single figures are noisy; the point is the trend.

The list pages (first page, a page after 90% of the rows by keyset, filters) stay flat from 1,000
to 100,000 requests: two statements each, whatever the size. The identifier search is flat too
since it reads the indexed digest table (`store/digests.py`): at 100,000 requests it took a median
of 97 ms on SQLite and 144 ms on PostgreSQL when it scanned the `received` audit entries with
`LIKE` (the run before this one); it is now within the noise of the other pages.

Rerun: `.venv/bin/python bench/console_list.py [--levels 1000,10000,100000] [--dbs sqlite,postgres]`.

{table(headers, rows)}
"""


def deletion_calls_section(data: dict[str, Any] | None) -> str:
    title = "## 12. User-pool calls per deleted person: resolve-first and direct"
    if not data:
        return f"{title}\n\nNot run yet: `.venv/bin/python bench/deletion_calls.py`.\n"
    headers = ["path", "identifier", "people", "verified", "searches", "activity pages", "user-pool calls per person",
               "POSTs", "429s"]  # fmt: skip
    rows = [
        [r["path"], r["kind"], r["people"], r["verified"], r["searches"], r["activity_pages"], r["per_person"],
         r["posts"], r["http_429"]]
        for r in data["rows"]
    ]  # fmt: skip
    return f"""{title}

**How measured.** `bench/deletion_calls.py`: for each path and identifier kind, N fresh users
(user ID an email, one device each) in a fresh emulator (x2000 limits, clock four days per second),
one deletion request per person through `api.submit` on an in-process executor (SQLite), each
waited for to its final status. Calls are counted from the emulator's request log between the first
submission and the last final status: resolution, the flusher, verification, and any follow-up.
The user pool (User Search + User Activity) is 360 calls an hour per project; at our 75% that is
90 people an hour on the resolve-first path and 270 on the direct path, for user IDs, emails and
Amplitude IDs (`docs/deletion.md#two-paths` says which to choose and why).

Rerun: `.venv/bin/python bench/deletion_calls.py [--n 20]`.

{table(headers, rows)}
"""


def render() -> Path:
    PLOTS.mkdir(parents=True, exist_ok=True)
    names = [
        "budget", "budget_client", "deletion", "access_calls", "dsar_memory", "overhead", "submit_rate",
        "connections", "fault_tolerance", "takeover", "inflight", "console_list", "deletion_calls", "service",
        "budget_history", "inflight_done",
    ]  # fmt: skip
    results = {n: common.load_result(n) for n in names}
    when = sorted({r["measured_at"] for r in results.values() if r})
    mach = next((r["machine"] for r in results.values() if r), common.machine())
    problems = (common.BENCH_DIR / "PROBLEMS.md").read_text() if (common.BENCH_DIR / "PROBLEMS.md").exists() else ""
    text = f"""# Benchmark results

Generated by `bench/report.py` from `bench/results/*.json` (the last run of each bench); do not edit by
hand. Rerun everything (about 17 minutes on two cores) with:

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/run_all.py

Measured {when[0] if when else "-"}{" to " + when[-1] if len(when) > 1 else ""} on {mach["cpus"]} CPUs
({mach["cpu"]}), Python {mach["python"]}. Every figure comes from the emulator's request log or the
operating system, never from what our code says about itself. Benchmarks are not tests: nothing here
is asserted.

## Summary

{summary(results)}

Last run of each bench (UTC): {"; ".join(f"`{n}` {r['measured_at']}" for n, r in results.items() if r)}.

{problems}
{budget_section(results["budget"])}
{budget_client_section(results["budget_client"])}
{deletion_section(results["deletion"])}
{access_section(results["access_calls"])}
{memory_section(results["dsar_memory"])}
{overhead_section(results["overhead"])}
{submit_section(results["submit_rate"])}
{connections_section(results["connections"])}
{faults_section(results["fault_tolerance"])}
{takeover_section(results["takeover"])}
{inflight_section(results["inflight"])}
{inflight_done_section(results["inflight_done"])}
{console_section(results["console_list"])}
{deletion_calls_section(results["deletion_calls"])}
{report_service.section(results["service"])}
{report_history.section(results["budget_history"])}
{NOT_MEASURED}"""
    OUT.write_text(text)
    return OUT


if __name__ == "__main__":
    print(render())
