"""The budget holds across PROCESSES sharing one database (DBOS queue limits do not on SQLite,
docs/architecture.md#durable-execution). Two worker processes hammer user search on one emulator
project; the emulator's request log is the judge. Runs on PostgreSQL when ``AMPLITUDE_DSR_TEST_DATABASE_URL`` is set."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("amp_budget_worker.py")
RATE_SCALE = 720.0  # the 360/hour window lasts 5 s: more than a window of work in seconds
THREADS = 3


@pytest.fixture(scope="module")
def scaled_emulator() -> Iterator[Any]:
    server_mod = pytest.importorskip("amplitude_dsr.emulator.server")
    with server_mod.EmulatorServer(seed=1, rate_scale=RATE_SCALE) as server:
        yield server


def run_workers(
    server: Any, database_url: str, table_prefix: str, calls: int, processes: int = 2
) -> list[dict[str, Any]]:
    web = next(p for p in server.admin.state()["projects"] if p["name"] == "web")
    config = {
        "database_url": database_url,
        "table_prefix": table_prefix,
        "rate_scale": RATE_SCALE,
        "base_url": web["base_url"],
        "api_key": web["api_key"],
        "secret_key": web["secret_key"],
        "threads": THREADS,
        "calls": calls,
        "kind": "user",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    return results


def user_pool_statuses(server: Any) -> list[int | None]:
    return [e["status"] for e in server.admin.request_log() if e["path"] == "/api/2/usersearch"]


def test_two_processes_never_trip_the_user_pool(scaled_emulator: Any, database_url: str, table_prefix: str) -> None:
    server = scaled_emulator
    server.admin.set_limits(reset=True)
    server.admin.clear_log()
    calls = 70  # 2 processes x 3 threads x 70 = 420 calls: more than one window's 360
    results = run_workers(server, database_url, table_prefix, calls)
    assert all(r["errors"] == [] for r in results)
    assert sum(r["done"] for r in results) == 2 * THREADS * calls
    statuses = user_pool_statuses(server)
    assert len(statuses) == 2 * THREADS * calls
    assert statuses.count(429) == 0
    assert set(statuses) == {200}


def test_an_external_consumer_causes_backoff_but_no_lost_call(
    scaled_emulator: Any, database_url: str, table_prefix: str
) -> None:
    server = scaled_emulator
    server.admin.set_limits(reset=True)
    server.admin.clear_log()
    server.admin.external_load("usersearch", 0.5, project="web")
    try:
        calls = 40
        results = run_workers(server, database_url, table_prefix, calls)
    finally:
        server.admin.external_load("usersearch", 0.0, project="web")
    assert all(r["errors"] == [] for r in results)
    requested = 2 * THREADS * calls
    assert sum(r["done"] for r in results) == requested
    statuses = user_pool_statuses(server)
    assert statuses.count(200) == requested  # every call eventually got through, once
    assert set(statuses) <= {200, 429}
    assert statuses.count(429) >= 1  # the outside consumer really squeezed us
