"""The HTTP service's section of ``bench/RESULTS.md`` (``bench/service.py``), and its summary lines;
``report.py`` places them."""

from __future__ import annotations

from typing import Any

TITLE = "## 13. The HTTP service: POST /requests, callback delivery, a restart"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_lines(data: dict[str, Any] | None) -> list[str]:
    if not data:
        return []
    post = "; ".join(
        f"{r['db']}: {r['post']['accepted_per_s']:.0f}/s, p99 {r['post']['p99_ms']:.0f} ms" for r in data["rows"]
    )
    lost = "; ".join(f"{r['db']}: {r['restart']['lost']}" for r in data["rows"])
    return [
        f"| `POST /opendsr/v2/requests`, 50 clients, embedded worker running | 500/s, p99 < 100 ms on PostgreSQL | "
        f"{post} (under contention) |",
        f"| callback deliveries lost across a SIGKILL restart | 0 | {lost} |",
    ]


def _post_runs(data: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, rows) of the POST phase: the baseline commit's run first when there is one."""
    runs = []
    if data.get("baseline"):
        runs.append((f"before ({data['baseline'].get('commit', 'baseline')})", data["baseline"]["rows"]))
    runs.append(("after" if data.get("baseline") else "this commit", data["rows"]))
    return runs


def _post_row(r: dict[str, Any], label: str) -> list[Any]:
    p = r["post"]
    other = ", ".join(f"{k}: {v}" for k, v in p["codes"].items() if str(k) != "201") or "none"
    load = r.get("load_before")
    return [
        r["db"], label, p["clients"], p["posts"], p["accepted"], other, p["wall_s"], p["accepted_per_s"], p["p50_ms"],
        p["p99_ms"], p.get("serve_cpu_ms_per_post"), p.get("client_cpu_ms_per_post"),
        None if load is None else round(load, 1),
    ]  # fmt: skip


def section(data: dict[str, Any] | None) -> str:
    if not data:
        return f"{TITLE}\n\nNot run yet: `.venv/bin/python bench/service.py`.\n"
    post = _table(
        ["db", "code", "clients", "POSTs", "201s", "other answers", "wall s", "accepted/s", "p50 ms", "p99 ms",
         "service CPU ms/POST", "client CPU ms/POST", "load before"],
        [_post_row(r, label) for label, rows in _post_runs(data) for r in rows],
    )  # fmt: skip
    callbacks = _table(
        ["db", "requests", "final callbacks received", "delay p50 s", "delay p99 s", "delay max s"],
        [
            [r["db"], r["callbacks"]["requests"], r["callbacks"]["final_callbacks"], r["callbacks"]["delay_p50_s"],
             r["callbacks"]["delay_p99_s"], r["callbacks"]["delay_max_s"]]
            for r in data["rows"]
        ],
    )  # fmt: skip
    restart = _table(
        ["db", "requests", "final before the kill", "callbacks queued", "received", "repeated", "lost",
         "requests without a final callback"],
        [
            [r["db"], r["restart"]["requests"], r["restart"]["final_before_kill"], r["restart"]["queued"],
             r["restart"]["received"], r["restart"]["duplicates"], r["restart"]["lost"],
             r["restart"]["without_final"]]
            for r in data["rows"]
        ],
    )  # fmt: skip
    return f"""{TITLE}

**How measured.** `bench/service.py`, per database a fresh database, the emulator in its own
process (limits x1000, four emulated days per second so erasures finish) and `amplitude-dsr serve`
with its embedded worker in another, on the same two cores. Other engineers' benches may run on
the machine at the same time (the *load before* column is the one-minute load average when the
phase started, on 2 CPUs), so these figures are lower bounds of what the code does.

*POST*: 50 client threads, each with its own keep-alive connection (the standard library's
`http.client`, bodies encoded before the clock starts), POST access requests (a new
`subject_request_id` and identity each) until the total is sent, while the embedded worker runs
the ones already accepted. Accepted/s = 201 answers over the wall time; latency is one POST as its
client saw it; service CPU = the `serve` process's user + system CPU over the phase (HTTP *and*
its embedded worker, which runs accepted requests meanwhile) per POST; client CPU = the bench
process's own. Until 2026-12-07 the clients were `httpx` clients, which spent more CPU per POST
(about 1.7 ms, py-spy) than the service's HTTP path on the same two cores: PostgreSQL gave 27/s
(p99 3.6 s, load 14) then, 19/s beside a second bench (load 4) on the day of the change, and with
`http.client` 92/s (p99 1.5 s, load 3.3) in the run just after it (`--api-only`, no worker
anywhere: 116/s with `httpx`, 177/s with `http.client`, the service at 4.8 ms of CPU per POST and
the client at 0.3). *before*, when shown, is the commit
named, run just before *after* on the same machine: one transaction per POST plus a separate
mapping transaction, six pooled connections per POST from the pool the worker's steps use, and
two signatures with a 3072-bit RSA key. *after*: POSTs that arrive together share one transaction
(the group commit, `service/group_commit.py`: rows, enqueues, `received` entries and mappings),
each 201 sent after that commit, on a pool of the service's own; a new key is 2048-bit RSA
(`bench/PROBLEMS.md` P-9).

{post}

*Callbacks*: requests (half erasure, half access) with a callback URL to a receiver in the bench
process, run to their end. Delay = the receiver's clock when a request's final callback arrived
minus `completed_at` of the request (the same machine's clock): the delivery loop's one-second
round, the POST and its signature.

{callbacks}

*Restart*: the same again, the service SIGKILLed as soon as five callbacks had arrived, then
started on the same database. Lost = (request, state) pairs the service had queued in
`dsr_callback_deliveries` that the receiver never got; repeated = callbacks received twice (a
kill between a POST and its record: delivery is at least once).

{restart}

Rerun: `.venv/bin/python bench/service.py [--dbs sqlite,postgres] [--posts 1000] [--clients 50]
[--callbacks 40]`; a *before* row: run `--phases post --no-save --dump before.json` on the older
commit, add `"commit"` to that file, then run this commit with `--baseline before.json`.
`--api-only` (diagnosis) serves with `--no-worker`: the HTTP path alone.
"""
