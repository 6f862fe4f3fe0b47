"""Shared plumbing for the benchmarks: an emulator in its own process, a fresh database per run,
settings for both, the request log, and the results files that ``report.py`` renders.

Benchmarks measure; they never assert. Every bench writes ``bench/results/<name>.json``;
``bench/report.py`` turns those into ``bench/RESULTS.md`` and the PNG plots.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from amplitude_dsr.config import OrgConfig, ProjectConfig, Settings, normalize_database_url
from amplitude_dsr.emulator.admin_client import EmulatorAdmin

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO = BENCH_DIR.parent
PYTHON = sys.executable
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://127.0.0.1:5432/test")
USER_POOL_PATHS = ("/api/2/usersearch", "/api/2/useractivity")


@dataclass
class Emulator:
    """An emulator served by ``python -m amplitude_dsr.emulator`` in a child process, so its CPU
    does not share the benchmark's interpreter lock (the machine has two cores)."""

    process: subprocess.Popen[str]
    doc: dict[str, Any]

    @property
    def base_url(self) -> str:
        return str(self.doc["base_url"])

    @property
    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.base_url, timeout=120.0)

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def emulator(rate_scale: float = 1.0, clock_speed: float = 1.0, seed: int = 1) -> Iterator[Emulator]:
    """Start an emulator process on a free port; stop it (SIGINT, then SIGKILL) afterwards."""
    cmd = [
        PYTHON,
        "-m",
        "amplitude_dsr.emulator",
        "--port",
        "0",
        "--json",
        "--seed",
        str(seed),
        "--rate-scale",
        repr(float(rate_scale)),
        "--clock-speed",
        repr(float(clock_speed)),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("emulator did not start")
        emu = Emulator(proc, json.loads(line))
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(emu.base_url + "/_admin/state", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield emu
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """A database URL of this run's own: a SQLite file under ``workdir``, or a PostgreSQL
    database created with ``CREATE DATABASE`` on :data:`PG_URL` and dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    if kind != "postgres":
        raise ValueError(kind)
    base = normalize_database_url(PG_URL)
    name = f"dsr_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A work directory on disk, deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"amplitude-dsr-bench-{prefix}-") as tmp:
        yield Path(tmp)


def project_config(doc: dict[str, Any], name: str = "web") -> ProjectConfig:
    p = next(p for p in doc["projects"] if p["name"] == name)
    return ProjectConfig(
        name=p["name"], api_key=p["api_key"], secret_key=p["secret_key"], region=p["region"], base_url=p["base_url"]
    )


def org_config(doc: dict[str, Any]) -> OrgConfig:
    o = doc["org"]
    return OrgConfig(api_key=o["api_key"], secret_key=o["secret_key"], base_url=doc["base_url"])


DATA_KEY_ENV = "AMPLITUDE_DSR_DATA_KEY"


def settings_for(
    doc: dict[str, Any], db_url: str, *, org: bool = False, projects: Sequence[str] = ("web",), **extra: Any
) -> Settings:
    """Settings with the emulator's project keys (and org keys when ``org``), like the E2E
    fixture ``tests/e2e/conftest.py::settings_for``."""
    values: dict[str, Any] = {
        "projects": tuple(project_config(doc, p) for p in projects),
        "org": org_config(doc) if org else None,
        "database_url": db_url,
        "poll_interval": 0.2,
        "max_linger": 30.0,
    }
    if os.environ.get(DATA_KEY_ENV):  # one key for every process of a bench (PostgreSQL: no key file beside it)
        values["data_key"] = os.environ[DATA_KEY_ENV]
    values.update(extra)
    return Settings(**values)


def log_since(admin: EmulatorAdmin, since: int = 0) -> list[dict[str, Any]]:
    return admin.request_log(since)


def last_seq(admin: EmulatorAdmin) -> int:
    """The sequence number of the newest logged call (0 when empty)."""
    entries = admin.request_log(0)
    return int(entries[-1]["seq"]) if entries else 0


def count(
    entries: Sequence[dict[str, Any]],
    *,
    paths: Sequence[str] = (),
    method: str | None = None,
    status: int | None = None,
) -> int:
    return sum(
        1
        for e in entries
        if (not paths or any(e["path"].endswith(p) for p in paths))
        and (method is None or e["method"] == method)
        and (status is None or e["status"] == status)
    )


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "platform": platform.platform()}


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Store one bench's figures (with when and where they were measured)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"bench": name, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def load_result(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if n == 0 or i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
