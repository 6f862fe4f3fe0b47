"""``access`` when the user-pool budget is exhausted for longer than ``--max-wait``: exit 1 with
one line naming the pool, when it resumes and how to follow the request; no report; the request
stays queued (not failed); Amplitude sees no user-pool call during the pause; and a ``worker``
later finishes the same request, paying for each call once.

The CLI runs as real processes: the workflow it leaves in a durable sleep must outlive it, as it
does for a user."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from amplitude_dsr.amplitude import Budget
from amplitude_dsr.amplitude.hosts import scope_key
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store.db import make_engine

from . import proc
from .conftest import RATE_SCALE, api_calls, env_for, settings_for

SUBJECT = "alice@example.com"
PAUSE = 3600.0  # seconds: far longer than any --max-wait below, so no test depends on speed


def pause_user_pool(emulator: EmulatorServer, db_url: str) -> None:
    """Exhaust the web project's user pool for an hour, as a 429 storm would."""
    budget = Budget(db_url, rate_scale=RATE_SCALE)
    try:
        budget.create_tables()
        scope = scope_key(settings_for(emulator, db_url).project("web"))
        budget.pause("user", scope, time.time() + PAUSE, slow_down=False)
    finally:
        budget.close()


def let_the_hour_pass(db_url: str, request_id: str) -> None:
    """Lift the pause and end the workflow's durable sleep now, as if the hour had passed: the
    budget row's ``paused_until`` and the wake-up time DBOS checkpointed for the sleep (a JSON
    number in ``operation_outputs``; ``worker.is_idle`` reads the same record)."""
    engine = make_engine(db_url)
    table = "operation_outputs" if engine.dialect.name == "sqlite" else "dbos.operation_outputs"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE amplitude_budget_bucket SET paused_until = 0 WHERE pool = 'user'"))
            woken = conn.execute(
                sa.text(f"UPDATE {table} SET output = :past WHERE workflow_uuid = :id AND function_name = :sleep"),
                {"past": json.dumps(time.time() - 1), "id": request_id, "sleep": "DBOS.sleep"},
            )
            assert woken.rowcount == 1
    finally:
        engine.dispose()


def wait_until_running(worker: subprocess.Popen[str]) -> None:
    """Block until the worker says it runs (it holds the executor lock by then)."""
    assert worker.stderr is not None
    for line in worker.stderr:
        if "running" in line:
            return
    raise AssertionError(f"the worker stopped before running (exit {worker.wait()})")


def user_pool_calls(emulator: EmulatorServer) -> int:
    return len(api_calls(emulator, "/usersearch")) + len(api_calls(emulator, "/useractivity"))


def test_exhausted_budget_exits_1_then_a_worker_finishes_the_same_request(
    emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    pause_user_pool(emulator, db_url)
    env = env_for(emulator, db_url)
    out = tmp_path / "out"

    done = proc.run(["access", "--user-id", SUBJECT, "--out", str(out), "--max-wait", "60", "--json"], env, tmp_path)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    doc = json.loads(done.stdout)  # --json: the request document, not final, and the wait
    request_id = doc["request_id"]
    assert doc["status"] not in ("completed", "failed") and doc["error"] is None
    assert doc["budget_wait"]["pool"] == "user" and doc["budget_wait"]["resume_at"] > doc["created_at"]
    assert line.startswith("error: the user rate budget (User Search and User Activity) is exhausted, resume at ")
    assert " UTC; " in line and request_id in line
    assert "`amplitude-dsr worker`" in line and f"`amplitude-dsr status {request_id}`" in line
    assert SUBJECT not in done.stdout + done.stderr
    assert not out.exists() or list(out.rglob("*")) == []  # no partial report
    assert user_pool_calls(emulator) == 0  # the pause was honoured: nothing was sent
    assert proc.status(request_id, env, tmp_path)["status"] == "resolving"

    # A worker recovers the request and keeps it asleep until the budget has room.
    idle = proc.run(["worker", "--until-idle", "--json"], env, tmp_path)
    assert idle.returncode == 0, idle.stderr
    assert proc.status(request_id, env, tmp_path)["status"] == "resolving"
    assert user_pool_calls(emulator) == 0

    let_the_hour_pass(db_url, request_id)
    finished = proc.run(["worker", "--until-idle", "--json"], env, tmp_path)
    assert finished.returncode == 0, finished.stderr

    final = proc.status(request_id, env, tmp_path)
    assert final["status"] == "completed", final
    assert {Path(f).name for f in final["files"]} == {"export.json", "report.html", "events.csv", "manifest.json"}
    assert [p.name for p in out.iterdir()] == [request_id]
    listing = json.loads(proc.run(["status", "--json"], env, tmp_path).stdout)
    assert [r["request_id"] for r in listing["requests"]] == [request_id]  # no second request
    # Each user-pool call once: the search and the activity page, nothing repeated.
    assert len(api_calls(emulator, "/usersearch")) == 1 and len(api_calls(emulator, "/useractivity")) == 1


@pytest.mark.parametrize("command", [["access"], ["delete", "--wait"]], ids=["access", "delete-wait"])
def test_beside_a_worker_the_command_also_gives_up_and_the_worker_keeps_the_request(
    command: list[str], emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    """With a worker running, the command only submits and waits; the worker's workflow
    publishes the budget wait just the same."""
    pause_user_pool(emulator, db_url)
    env = env_for(emulator, db_url)
    out = tmp_path / "out"
    worker = proc.start_worker(env, tmp_path)
    try:
        wait_until_running(worker)
        done = proc.run([*command, "--user-id", SUBJECT, "--out", str(out), "--max-wait", "5"], env, tmp_path)
        assert done.returncode == 1, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: the user rate budget") and "`amplitude-dsr status dsr_" in line
        assert "Traceback" not in done.stderr and SUBJECT not in done.stdout + done.stderr
        request_id = line.rsplit("`amplitude-dsr status ", 1)[1].rstrip("`")
        assert worker.poll() is None  # the worker is still running it
        assert proc.status(request_id, env, tmp_path)["status"] == "resolving"
    finally:
        proc.stop(worker)
    assert not out.exists() or list(out.rglob("*")) == []
    assert user_pool_calls(emulator) == 0
