"""End-to-end fixtures: a private emulator per test (its clock, jobs and budgets are its own),
a private database per test (SQLite file, or a fresh PostgreSQL database when
``AMPLITUDE_DSR_TEST_DATABASE_URL`` is set), settings pointing at both, and an in-process
executor runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from amplitude_dsr.config import OrgConfig, ProjectConfig, Settings, normalize_database_url
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.admin_client import EmulatorAdmin
from amplitude_dsr.emulator.server import EmulatorServer

TEST_DB_ENV = "AMPLITUDE_DSR_TEST_DATABASE_URL"
RATE_SCALE = 1000.0  # emulator and client agree: every documented limit x1000
# The data key every process of a PostgreSQL test database shares, as a deployment with workers on
# several machines must (docs/operations.md, "Personal data at rest"); on SQLite the generated key
# file beside the database is used.
PG_DATA_KEY = "6tds_erggcjaGWqNLqq3RiIQVXSLiAbD-zLuWe_Y5HI="
FAST_CLOCK = 86400.0 * 4  # four emulated days per real second: a deletion is done in ~5 s


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """A fresh emulator (seed 1) with scaled limits and a fast clock."""
    with EmulatorServer(seed=1, rate_scale=RATE_SCALE, clock_speed=FAST_CLOCK) as server:
        yield server


class EmulatorProcess:
    """The emulator in a child process (``python -m amplitude_dsr.emulator``): for tests whose
    own process is busy enough that an in-process emulator would share its interpreter lock.
    Offers what tests use of :class:`EmulatorServer`: ``admin`` and ``base_url``."""

    def __init__(self, *, seed: int = 1, rate_scale: float = RATE_SCALE, clock_speed: float = FAST_CLOCK) -> None:
        self._args = ["--seed", str(seed), "--rate-scale", repr(rate_scale), "--clock-speed", repr(clock_speed)]
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "amplitude_dsr.emulator", "--port", "0", "--json", *self._args]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self._proc.stdout is not None
        self.base_url = str(json.loads(self._proc.stdout.readline())["base_url"])
        deadline = time.monotonic() + 30
        while True:
            try:
                self.admin.state()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()

    @property
    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.base_url, timeout=120.0)


@pytest.fixture
def catalog(emulator: EmulatorServer) -> dict[str, Any]:
    return emulator.admin.catalog()


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """A database of this test's own."""
    base = os.environ.get(TEST_DB_ENV)
    if not base:
        yield f"sqlite:///{tmp_path / 'dsr.sqlite'}"
        return
    base = normalize_database_url(base)
    name = f"dsr_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + "/" + name
    # WITH (FORCE) ends the sessions still connected (a closing runtime's pool may reconnect
    # between a separate terminate and the drop); tried again in case one slips in meanwhile.
    for attempt in range(3):
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            break
        except sa.exc.OperationalError:
            if attempt == 2:
                raise
            time.sleep(1)
    admin.dispose()


def settings_for(
    emulator: EmulatorServer | EmulatorProcess,
    db_url: str,
    *,
    org: bool = False,
    projects: tuple[str, ...] = ("web",),
    **extra: Any,
) -> Settings:
    """Settings with the emulator's project keys (and org keys when ``org``)."""
    state = emulator.admin.state()
    configured = tuple(
        ProjectConfig(
            name=p["name"], api_key=p["api_key"], secret_key=p["secret_key"], region=p["region"], base_url=p["base_url"]
        )
        for p in state["projects"]
        if p["name"] in projects
    )
    org_config = None
    if org:
        o = state["org"]
        org_config = OrgConfig(api_key=o["api_key"], secret_key=o["secret_key"], base_url=o["us_base_url"])
    values: dict[str, Any] = {
        "projects": configured,
        "org": org_config,
        "database_url": db_url,
        "poll_interval": 0.2,
        "rate_scale": RATE_SCALE,
        "max_linger": 30.0,
    }
    if not db_url.startswith("sqlite"):
        values["data_key"] = SecretStr(PG_DATA_KEY)
    values.update(extra)
    return Settings(**values)


def env_for(emulator: EmulatorServer, db_url: str, project: str = "web", **extra: str) -> dict[str, str]:
    """Environment variables for a CLI run against the emulator (one project)."""
    p = next(p for p in emulator.admin.state()["projects"] if p["name"] == project)
    env = {
        "AMPLITUDE_API_KEY": p["api_key"],
        "AMPLITUDE_SECRET_KEY": p["secret_key"],
        "AMPLITUDE_BASE_URL": p["base_url"],
        "AMPLITUDE_REGION": p["region"],
        "AMPLITUDE_DSR_DATABASE_URL": db_url,
        "AMPLITUDE_DSR_RATE_SCALE": str(RATE_SCALE),
        "AMPLITUDE_DSR_POLL_INTERVAL": "0.2",
        "AMPLITUDE_DSR_MAX_LINGER": "30",
    }
    if not db_url.startswith("sqlite"):
        env["AMPLITUDE_DSR_DATA_KEY"] = PG_DATA_KEY
    env.update(extra)
    return env


@pytest.fixture
def make_runtime(emulator: EmulatorServer, db_url: str, tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """Open an in-process executor runtime on this test's emulator and database."""
    opened: list[Runtime] = []

    def make(**kwargs: Any) -> Runtime:
        role = kwargs.pop("role", "executor")
        rt = open_runtime(settings_for(emulator, db_url, **kwargs), role=role, data_dir=tmp_path / "data")
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.close()


def api_calls(emulator: EmulatorServer | EmulatorProcess, path: str, method: str = "GET") -> list[dict[str, Any]]:
    """The emulator's log entries for one endpoint."""
    return [e for e in emulator.admin.request_log() if e["path"].endswith(path) and e["method"] == method]
