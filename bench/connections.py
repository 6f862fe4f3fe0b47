"""Bench 6: PostgreSQL connections per process, for a worker under load and for each CLI command.

One fresh PostgreSQL database, an emulator in its own process (fast clock, limits x1000). A
sampler reads ``pg_stat_activity`` for that database every 20 ms from a connection to another
database (so it never counts itself) and keeps, per process, the peak number of connections and
the peak per part (``application_name`` is ``amplitude-dsr <role> <pid> <part>``; a connection
without it would be listed under its own name). Scenarios, one after another:

* ``worker`` under load: a worker runs while ``batch`` submits deletions and access requests
  (``--deletions``, ``--access``) and until they are all final;
* each command beside that worker (submitters): ``delete``, ``delete --wait``, ``access``,
  ``batch``, ``status``, ``cancel``;
* each command with no worker running: ``access`` and ``batch`` (foreground executors),
  ``test-connection``, ``worker --until-idle``.

    .venv/bin/python bench/connections.py
    .venv/bin/python bench/connections.py --deletions 20 --access 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from amplitude_dsr.config import normalize_database_url
from amplitude_dsr.dsr.connections import FOOTPRINTS

CLI = str(Path(sys.executable).parent / "amplitude-dsr")
FINAL = ("completed", "failed", "verified", "recollected", "still_present", "nothing_found", "cancelled")


class Sampler:
    """Peak connections per process and per part while it runs."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.admin = sa.create_engine(normalize_database_url(common.PG_URL), poolclass=sa.NullPool)
        self.peak: dict[str, int] = {}
        self.parts: dict[str, dict[str, int]] = {}
        self.roles: dict[str, str] = {}
        self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = sa.text(
            "SELECT application_name FROM pg_stat_activity WHERE datname = :d AND backend_type = 'client backend'"
        )
        with self.admin.connect() as conn:
            while not self._stop.wait(0.02):
                names = [str(n) for n in conn.execute(query, {"d": self.database}).scalars()]
                conn.commit()
                self.total = max(self.total, len(names))
                now: dict[str, int] = {}
                parts: dict[str, dict[str, int]] = {}
                for name in names:
                    words = name.split()
                    ours = name.startswith("amplitude-dsr ") and len(words) == 4
                    key = words[2] if ours else name or "(no name)"  # the OS PID
                    part = words[3] if ours else "-"
                    now[key] = now.get(key, 0) + 1
                    mine = parts.setdefault(key, {})
                    mine[part] = mine.get(part, 0) + 1
                    if ours and (part != "lock" or key not in self.roles):
                        # A command tries the executor lock first (as "foreground"); its other
                        # pools carry the role it ends up with.
                        self.roles[key] = words[1]
                for key, n in now.items():
                    self.peak[key] = max(self.peak.get(key, 0), n)
                    mine = self.parts.setdefault(key, {})
                    for part, m in parts[key].items():
                        mine[part] = max(mine.get(part, 0), m)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.admin.dispose()

    def rows(self, scenario: str, pids: dict[int, str]) -> list[dict[str, Any]]:
        """One row per process the scenario started (``pids``: OS PID -> command); the bench's
        own ``status`` polls are left out."""
        out = []
        for pid, command in pids.items():
            key = str(pid)
            role = self.roles.get(key, "?")
            out.append(
                {
                    "scenario": scenario,
                    "command": command,
                    "role": role,
                    "peak": self.peak.get(key, 0),
                    "bound": FOOTPRINTS[role].most if role in FOOTPRINTS else None,
                    "parts": self.parts.get(key, {}),
                }
            )
        unnamed = [k for k in self.peak if not k.isdigit()]
        if unnamed:
            out.append({"scenario": scenario, "command": "without our application_name", "role": "?",
                        "peak": sum(self.peak[k] for k in unnamed), "bound": None, "parts": {}})  # fmt: skip
        return out


def env_for(doc: dict[str, Any], db_url: str) -> dict[str, str]:
    p = next(p for p in doc["projects"] if p["name"] == "web")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AMPLITUDE_", "DBOS"))}
    return {
        **keep,
        "AMPLITUDE_API_KEY": p["api_key"],
        "AMPLITUDE_SECRET_KEY": p["secret_key"],
        "AMPLITUDE_BASE_URL": p["base_url"],
        "AMPLITUDE_REGION": p["region"],
        "AMPLITUDE_DSR_DATABASE_URL": db_url,
        "AMPLITUDE_DSR_RATE_SCALE": "1000",
        "AMPLITUDE_DSR_POLL_INTERVAL": "0.2",
        "AMPLITUDE_DSR_MAX_LINGER": "2",
    }


def spawn(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([CLI, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode not in (0, 3) and proc.args[1] != "cancel":  # cancel of an unknown ID: exit 1
        print(f"  {proc.args[1]} exited {proc.returncode}: {err.strip().splitlines()[-1:]}", flush=True)
    return out


def all_final(env: dict[str, str], cwd: Path, expected: int) -> bool:
    done = subprocess.run([CLI, "status", "--json"], env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return False
    docs = json.loads(done.stdout)["requests"]
    return len(docs) >= expected and all(d["status"] in FINAL for d in docs)


def statuses(env: dict[str, str], cwd: Path) -> dict[str, int]:
    done = subprocess.run([CLI, "status", "--json"], env=env, cwd=cwd, capture_output=True, text=True, check=True)
    counts: dict[str, int] = {}
    for doc in json.loads(done.stdout)["requests"]:
        counts[doc["status"]] = counts.get(doc["status"], 0) + 1
    return counts


def csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("request,kind,value\n" + "".join(f"{k},user_id,{v}\n" for k, v in rows))
    return path


def run(deletions: int, access: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with (
        common.temp_dir("connections") as tmp,
        common.emulator(rate_scale=1000.0, clock_speed=86400.0 * 4) as emu,
        common.fresh_database("postgres", tmp) as db_url,
    ):
        admin = emu.admin
        count = deletions + access + 12
        users = [admin.add_user("web", user_id=f"conn-{i}", events=5)["user_id"] for i in range(count)]
        env = env_for(emu.doc, db_url)
        database = db_url.rsplit("/", 1)[1]
        load = csv(tmp / "load.csv", [("deletion", u) for u in users[:deletions]] + [
            ("access", u) for u in users[deletions : deletions + access]
        ])  # fmt: skip
        spare = iter(users[deletions + access :])
        print(f"worker under load: {deletions} deletions, {access} access requests", flush=True)
        with Sampler(database) as s:
            worker = spawn(["worker"], env, tmp)
            try:
                while s.roles.get(str(worker.pid)) != "worker":  # it holds the lock: commands submit
                    if worker.poll() is not None:
                        raise RuntimeError(f"worker exited {worker.returncode}: {worker.communicate()[1][-500:]}")
                    time.sleep(0.05)
                batch = spawn(["batch", str(load), "--out", str(tmp / "out")], env, tmp)
                finish(batch)
                started = time.monotonic()
                while not all_final(env, tmp, deletions + access) and time.monotonic() < started + 300:
                    time.sleep(1)
                load_seconds = time.monotonic() - started
                load_statuses = statuses(env, tmp)
                pids = {worker.pid: "worker", batch.pid: "batch"}
                beside = {
                    "delete": ["delete", "--user-id", next(spare)],
                    "delete --wait": ["delete", "--user-id", next(spare), "--wait"],
                    "access": ["access", "--user-id", next(spare), "--out", str(tmp / "out")],
                    "batch": ["batch", str(csv(tmp / "b1.csv", [("deletion", next(spare)) for _ in range(2)]))],
                    "status": ["status"],
                    "cancel": ["cancel", "dsr_00000000000000_00000000"],
                }
                for name, args in beside.items():
                    proc = spawn(args, env, tmp)
                    pids[proc.pid] = f"{name} (beside a worker)"
                    finish(proc)
            finally:
                worker.terminate()
                worker.wait(60)
        rows += s.rows("worker and commands beside it", pids)
        alone = {
            "access": ["access", "--user-id", next(spare), "--out", str(tmp / "out")],
            "batch": ["batch", str(csv(tmp / "b2.csv", [("access", next(spare)), ("deletion", next(spare))]))],
            "test-connection": ["test-connection"],
            "worker --until-idle": ["worker", "--until-idle"],
        }
        for name, args in alone.items():
            print(f"{name} with no worker running", flush=True)
            with Sampler(database) as s:
                proc = spawn(args, env, tmp)
                finish(proc)
            rows += s.rows(f"{name}, no worker", {proc.pid: f"{name} (no worker)"})
        with sa.create_engine(normalize_database_url(common.PG_URL), poolclass=sa.NullPool).connect() as conn:
            max_connections = int(conn.execute(sa.text("SHOW max_connections")).scalar() or 0)
    return {
        "deletions": deletions,
        "access": access,
        "max_connections": max_connections,
        "load_seconds": round(load_seconds, 1),
        "load_statuses": load_statuses,
        "footprints": {
            role: {"dbos": f.dbos, "store": f.store.most, "budget": f.budget.most, "lock": f.lock, "most": f.most}
            for role, f in FOOTPRINTS.items()
        },
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deletions", type=int, default=40)
    parser.add_argument("--access", type=int, default=10)
    args = parser.parse_args(argv)
    data = run(args.deletions, args.access)
    common.print_table(
        ["command", "role", "peak", "bound", "parts"],
        [[r["command"], r["role"], r["peak"], r["bound"], json.dumps(r["parts"])] for r in data["rows"]],
    )
    path = common.write_result("connections", data)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
