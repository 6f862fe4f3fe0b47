"""Bench 11: the HTTP service. Per database (SQLite, PostgreSQL), a fresh database, the emulator in
its own process (limits x1000, a fast clock so erasures finish) and ``amplitude-dsr serve`` with its
embedded worker in another:

* ``post``: ``--clients`` threads, each with its own HTTP connection, POST access requests to
  ``/opendsr/v2/requests`` until ``--posts`` were sent, while the embedded worker runs the ones
  already accepted. Accepted requests per second (201s over the wall time of the phase) and the
  p50/p99 latency of one POST, as the clients saw it.
* ``callbacks``: ``--callbacks`` requests (half erasure, half access) with a status callback URL
  pointing at a receiver in this process, run to their end. Delay = when the receiver got a
  request's final callback minus when the request became final (``completed_at`` in our table).
* ``restart``: the same again, but the service is SIGKILLed once the first callbacks arrive and
  started again on the same database. Lost = (request, state) pairs the service queued
  (``dsr_callback_deliveries``) that the receiver never got, plus requests without a final callback.

    .venv/bin/python bench/service.py
    .venv/bin/python bench/service.py --dbs sqlite --posts 300 --callbacks 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

RATE_SCALE = 1000.0
FAST_CLOCK = 86400.0 * 4  # four emulated days per second: an erasure is verified within seconds
CLI = [common.PYTHON, "-c", "from amplitude_dsr.cli.main import run; run()"]
REQUESTS = "/opendsr/v2/requests"
FINAL_TIMEOUT = 900.0  # seconds a phase may wait for its requests before the bench gives up


def service_env(doc: dict[str, Any], db_url: str, tmp: Path) -> dict[str, str]:
    p = common.project_config(doc)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AMPLITUDE_", "DBOS"))},
        common.DATA_KEY_ENV: os.environ[common.DATA_KEY_ENV],
        "HOME": str(tmp / "home"), "XDG_DATA_HOME": str(tmp / "xdg"),
        "AMPLITUDE_API_KEY": p.api_key.get_secret_value(), "AMPLITUDE_SECRET_KEY": p.secret_key.get_secret_value(),
        "AMPLITUDE_BASE_URL": p.base_url or "", "AMPLITUDE_REGION": p.region,
        "AMPLITUDE_DSR_DATABASE_URL": db_url, "AMPLITUDE_DSR_RATE_SCALE": str(RATE_SCALE),
        "AMPLITUDE_DSR_POLL_INTERVAL": "0.2", "AMPLITUDE_DSR_MAX_LINGER": "30",
    }  # fmt: skip


class Service:
    """``amplitude-dsr serve`` (embedded worker) on a free port, its log in a file."""

    def __init__(self, env: dict[str, str], tmp: Path, *extra: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (tmp / f"serve-{time.monotonic_ns()}.log").open("ab")
        cmd = [*CLI, "serve", "--port", str(self.port), "--callback-retry-base", "0.2", *extra]
        self.proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not answer")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(120)
        self._log.close()


class Receiver:
    """A callback endpoint: every POST's (subject_request_id, state, status, receipt time)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, str, float]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                [ours] = body["extensions"].values()
                outer.got.append((body["subject_request_id"], ours["state"], body["request_status"], time.time()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callbacks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def finals(self) -> set[str]:
        return {sid for sid, _, status, _ in self.got if status == "completed"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def body(kind: str, sid: str, user_id: str, callback: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "subject_request_id": sid, "subject_request_type": kind, "regulation": "gdpr",
        "submitted_time": "2026-12-01T10:00:00Z",
        "subject_identities": [{"identity_type": "controller_customer_id", "identity_value": user_id}],
    }  # fmt: skip
    if callback:
        doc["status_callback_urls"] = [callback]
    return doc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post_phase(svc: Service, token: str, posts: int, clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    left = [posts]
    mutex = threading.Lock()

    # The standard library's HTTP client, one keep-alive connection per client thread: the load
    # generator shares the two cores with the service, and httpx cost more CPU per POST than the
    # service itself (py-spy, 2026-12-07), so it measured the client as much as the server.
    host, port = svc.url.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            while True:
                with mutex:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                sid = str(uuid.uuid4())
                payload = json.dumps(body("access", sid, f"bench-{sid}")).encode()
                t0 = time.perf_counter()
                conn.request("POST", REQUESTS, body=payload, headers=headers)
                response = conn.getresponse()
                response.read()
                took = time.perf_counter() - t0
                with mutex:
                    latencies.append(took)
                    codes[response.status] = codes.get(response.status, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    cpu0 = cpu_seconds(svc.proc.pid)
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(svc.proc.pid) - cpu0  # the service's CPU (HTTP and its embedded worker)
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
    return {
        "posts": posts, "clients": clients, "accepted": codes.get(201, 0), "codes": codes, "wall_s": round(wall, 2),
        "accepted_per_s": round(codes.get(201, 0) / wall, 1), "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1), "serve_cpu_s": round(cpu, 2),
        "serve_cpu_ms_per_post": round(cpu * 1000 / max(1, posts), 2),
        "client_cpu_ms_per_post": round(client_cpu * 1000 / max(1, posts), 2),
        "load_after": round(os.getloadavg()[0], 2),
    }  # fmt: skip


def submit_with_callbacks(svc: Service, token: str, emu: common.Emulator, n: int, receiver: Receiver) -> list[str]:
    sids = []
    for i in range(n):
        user = emu.admin.add_user("web", user_id=f"bench-cb-{uuid.uuid4().hex[:10]}", events=2)
        sid = str(uuid.uuid4())
        kind = "erasure" if i % 2 == 0 else "access"
        doc = body(kind, sid, user["user_id"], receiver.url)
        response = httpx.post(f"{svc.url}{REQUESTS}", json=doc, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        sids.append(sid)
    return sids


def wait_for(check: Any, timeout: float = FINAL_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def completed_at(db_url: str, sids: list[str]) -> dict[str, float]:
    """When each request became final (our table), as epoch seconds."""
    engine = sa.create_engine(common.normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT m.subject_request_id, r.completed_at FROM dsr_service_requests m "
                    "JOIN dsr_requests r ON r.id = m.request_id"
                )
            ).all()
    finally:
        engine.dispose()
    out = {}
    for sid, at in rows:
        if sid in sids and at is not None:
            value = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
            out[sid] = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()  # stored in UTC
    return out


def queued_deliveries(db_url: str) -> list[tuple[str, str, bool]]:
    engine = sa.create_engine(common.normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT subject_request_id, state, delivered_at FROM dsr_callback_deliveries")
            ).all()
    finally:
        engine.dispose()
    return [(sid, state, at is not None) for sid, state, at in rows]


def callback_phase(
    svc: Service, token: str, emu: common.Emulator, db_url: str, n: int, receiver: Receiver
) -> dict[str, Any]:
    sids = submit_with_callbacks(svc, token, emu, n, receiver)
    wait_for(lambda: set(sids) <= receiver.finals())
    became_final = completed_at(db_url, sids)
    delays = [
        at - became_final[sid] for sid, _, status, at in receiver.got if status == "completed" and sid in became_final
    ]
    return {
        "requests": n, "final_callbacks": len(receiver.finals() & set(sids)),
        "delay_p50_s": round(percentile(delays, 0.5), 2), "delay_p99_s": round(percentile(delays, 0.99), 2),
        "delay_max_s": round(max(delays, default=0.0), 2),
    }  # fmt: skip


def restart_phase(
    env: dict[str, str], tmp: Path, token: str, emu: common.Emulator, db_url: str, n: int
) -> dict[str, Any]:
    receiver = Receiver()
    try:
        svc = Service(env, tmp)
        sids = submit_with_callbacks(svc, token, emu, n, receiver)
        wait_for(lambda: len(receiver.got) >= 5, timeout=120)
        svc.stop(signal.SIGKILL)
        final_before = len(receiver.finals() & set(sids))
        again = Service(env, tmp)
        try:
            wait_for(lambda: set(sids) <= receiver.finals())
            wait_for(lambda: all(done for *_, done in queued_deliveries(db_url)), timeout=120)
        finally:
            again.stop()
        queued = {(sid, state) for sid, state, _ in queued_deliveries(db_url) if sid in sids}
        got = [(sid, state) for sid, state, _, _ in receiver.got if sid in sids]
        lost = queued - set(got)
        return {
            "requests": n, "final_before_kill": final_before, "queued": len(queued), "received": len(got),
            "duplicates": len(got) - len(set(got)), "lost": len(lost),
            "without_final": len(set(sids) - receiver.finals()),
        }  # fmt: skip
    finally:
        receiver.close()


def run_db(db: str, args: argparse.Namespace) -> dict[str, Any]:
    with (
        common.temp_dir(f"service-{db}") as tmp,
        common.fresh_database(db, tmp) as db_url,
        common.emulator(rate_scale=RATE_SCALE, clock_speed=FAST_CLOCK) as emu,
    ):
        env = service_env(emu.doc, db_url, tmp)
        made = subprocess.run(
            [*CLI, "tokens", "create", "--name", "bench", "--scope", "submit", "--scope", "read", "--json"],
            env=env, cwd=tmp, capture_output=True, text=True, check=True,
        )  # fmt: skip
        token = json.loads(made.stdout)["token"]
        row: dict[str, Any] = {"db": db}
        phases = args.phases.split(",")
        svc = Service(env, tmp, *(["--no-worker"] if args.api_only else []))
        receiver = Receiver()
        try:
            if "post" in phases:
                row["load_before"] = os.getloadavg()[0]
                row["post"] = post_phase(svc, token, args.posts, args.clients)
                print(db, "post", row["post"], "load before", row["load_before"], flush=True)
            if "callbacks" in phases:
                row["callbacks"] = callback_phase(svc, token, emu, db_url, args.callbacks, receiver)
                print(db, "callbacks", row["callbacks"], flush=True)
        finally:
            receiver.close()
            svc.stop()
        if "restart" in phases:
            row["restart"] = restart_phase(env, tmp, token, emu, db_url, args.callbacks)
            print(db, "restart", row["restart"], flush=True)
        return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", default="sqlite,postgres")
    parser.add_argument("--posts", type=int, default=1000, help="POSTs in the throughput phase")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--callbacks", type=int, default=40, help="requests in each callback phase")
    parser.add_argument("--phases", default="post,callbacks,restart", help="which phases to run")
    parser.add_argument(
        "--api-only", action="store_true", help="diagnosis: serve --no-worker (no workflow runs; POST phase only)"
    )
    parser.add_argument("--dump", help="also write the rows to this JSON file")
    parser.add_argument(
        "--baseline", help="a --dump of an earlier commit's run (with its 'commit' added), shown beside these rows"
    )
    parser.add_argument("--no-save", action="store_true", help="print only; keep bench/results as it is")
    args = parser.parse_args(argv)
    os.environ.setdefault(common.DATA_KEY_ENV, Fernet.generate_key().decode())
    rows = [run_db(db, args) for db in args.dbs.split(",")]
    if args.dump:
        Path(args.dump).write_text(json.dumps({"rows": rows}, indent=1))
    if not args.no_save:
        doc: dict[str, Any] = {"rows": rows, "contended": True}
        if args.baseline:  # the POST phase of an earlier commit, run just before on the same machine
            doc["baseline"] = json.loads(Path(args.baseline).read_text())
        common.write_result("service", doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
