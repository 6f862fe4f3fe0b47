"""Fixtures for the Amplitude client tests: budgets on SQLite or PostgreSQL, a fake clock, and
the emulator served over real HTTP (``amplitude_dsr.emulator.server.EmulatorServer``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from amp_helpers import EMULATOR_RATE_SCALE, FakeClock

from amplitude_dsr.amplitude import Budget, normalize_database_url
from amplitude_dsr.config import OrgConfig, ProjectConfig

TEST_DB_ENV = "AMPLITUDE_DSR_TEST_DATABASE_URL"


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    """``AMPLITUDE_DSR_TEST_DATABASE_URL`` when set (PostgreSQL runs), else a fresh SQLite file."""
    return os.environ.get(TEST_DB_ENV) or f"sqlite:///{tmp_path / 'budget.sqlite'}"


@pytest.fixture
def table_prefix(database_url: str) -> Iterator[str]:
    """Budget tables unique to this test; dropped afterwards (shared PostgreSQL stays clean)."""
    prefix = f"t{uuid.uuid4().hex[:10]}_budget"
    yield prefix
    engine = sa.create_engine(normalize_database_url(database_url))
    with engine.begin() as conn:
        for suffix in ("slot", "bucket"):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{prefix}_{suffix}"')
    engine.dispose()


@pytest.fixture
def make_budget(database_url: str, table_prefix: str) -> Iterator[Callable[..., Budget]]:
    """Build budgets on this test's tables; all are closed afterwards."""
    made: list[Budget] = []

    def make(**kwargs: Any) -> Budget:
        budget = Budget(database_url, table_prefix=table_prefix, **kwargs)
        made.append(budget)
        return budget

    yield make
    for budget in made:
        budget.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def project() -> ProjectConfig:
    return ProjectConfig(name="web", api_key="proj-key-123", secret_key="proj-SECRET-456", region="us")


@pytest.fixture
def org() -> OrgConfig:
    return OrgConfig(api_key="org-key-123", secret_key="org-SECRET-456", region="us")


# --- the emulator -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """One emulator per test module, limits scaled by :data:`EMULATOR_RATE_SCALE`."""
    server_mod = pytest.importorskip("amplitude_dsr.emulator.server")
    with server_mod.EmulatorServer(seed=0, rate_scale=EMULATOR_RATE_SCALE) as server:
        yield server


@pytest.fixture
def emu(emulator: Any) -> Iterator[Any]:
    """The module's emulator with faults cleared, the log emptied and spending forgotten."""
    emulator.admin.clear_faults()
    emulator.admin.set_limits(rate_scale=EMULATOR_RATE_SCALE, enforce=True, reset=True)
    emulator.admin.clear_log()
    yield emulator
    emulator.admin.clear_faults()


def _emulator_project(server: Any, name: str = "web", *, base_url: str | None = None) -> ProjectConfig:
    """The emulator's project ``name`` as client configuration."""
    for item in server.admin.state()["projects"]:
        if item["name"] == name:
            return ProjectConfig(
                name=item["name"],
                api_key=item["api_key"],
                secret_key=item["secret_key"],
                region=item["region"],
                base_url=base_url or item["base_url"],
            )
    raise LookupError(name)


def _emulator_org(server: Any, region: str = "us") -> OrgConfig:
    """The emulator's org keys as client configuration."""
    org = server.admin.state()["org"]
    return OrgConfig(
        api_key=org["api_key"],
        secret_key=org["secret_key"],
        region=region,
        base_url=org[f"{region}_base_url"],
    )


def _api_calls(server: Any, path: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
    """The emulator's request log, optionally filtered by path prefix and method."""
    return [
        entry
        for entry in server.admin.request_log()
        if (path is None or entry["path"].startswith(path)) and (method is None or entry["method"] == method)
    ]


@pytest.fixture
def project_of(emu: Any) -> Callable[..., ProjectConfig]:
    """``project_of("web", base_url=None)``: an emulator project as client configuration."""
    return lambda name="web", base_url=None: _emulator_project(emu, name, base_url=base_url)


@pytest.fixture
def emu_org(emu: Any) -> OrgConfig:
    """The emulator's org keys (US path) as client configuration."""
    return _emulator_org(emu)


@pytest.fixture
def calls(emu: Any) -> Callable[..., list[dict[str, Any]]]:
    """``calls(path=None, method=None)``: the emulator request log, filtered."""
    return lambda path=None, method=None: _api_calls(emu, path, method)
