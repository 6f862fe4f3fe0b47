"""``delete``, ``status``, ``cancel`` and ``worker`` as real processes against the emulator: a
CLI command beside a running worker only submits; ``worker --until-idle`` exits; the JSON
documents; cancel rules through the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store.db import make_engine

from .conftest import api_calls, env_for
from .proc import eventually, run, start_worker, status, stop

FINAL = ("verified", "recollected", "still_present", "nothing_found", "cancelled", "failed")


def workflows(db_url: str) -> list[dict[str, str]]:
    """Every DBOS workflow (from DBOS's own table): ID, function name, status and executor."""
    engine = make_engine(db_url)
    table = "workflow_status" if engine.dialect.name == "sqlite" else "dbos.workflow_status"
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT workflow_uuid, name, status, executor_id FROM {table}")).all()
    finally:
        engine.dispose()
    return [{"id": r[0], "name": r[1], "status": r[2], "executor": r[3]} for r in rows]


def executors(db_url: str) -> dict[str, str]:
    """Workflow ID -> the DBOS executor that ran it."""
    return {w["id"]: w["executor"] for w in workflows(db_url)}


def final(request_id: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    doc: dict[str, Any] = eventually(
        lambda: (d := status(request_id, env, cwd))["status"] in FINAL and d, "a final state", timeout=120
    )
    return doc


def test_delete_beside_a_running_worker_only_submits(
    emulator: EmulatorServer, db_url: str, catalog: dict[str, Any], tmp_path: Path
) -> None:
    env = env_for(emulator, db_url)
    worker = start_worker(env, tmp_path)
    try:
        ordinary = catalog["web"]["ordinary"]
        quick = run(["delete", "--user-id", ordinary[9]["user_id"], "--json"], env, tmp_path)
        waited = run(["delete", "--user-id", ordinary[10]["user_id"], "--wait", "--json"], env, tmp_path)
        assert quick.returncode == 0, quick.stderr
        assert waited.returncode == 0, waited.stderr
        quick_doc, waited_doc = json.loads(quick.stdout), json.loads(waited.stdout)
        assert quick_doc["status"] not in FINAL  # returned at once, a request ID to follow
        assert waited_doc["status"] == "verified"
        assert final(quick_doc["request_id"], env, tmp_path)["status"] == "verified"
    finally:
        stop(worker)
    ran_by = executors(db_url)
    # Both workflows ran in the worker (the default executor ID), none in a CLI process.
    assert ran_by[quick_doc["request_id"]] == ran_by[waited_doc["request_id"]] == "amplitude-dsr"
    posted = [aid for p in api_calls(emulator, "/deletions/users", "POST") for aid in p["body"]["amplitude_ids"]]
    assert sorted(posted) == sorted(catalog["web"]["ordinary"][i]["amplitude_id"] for i in (9, 10))


def test_worker_until_idle_exits_and_status_json(
    emulator: EmulatorServer, db_url: str, catalog: dict[str, Any], tmp_path: Path
) -> None:
    env = env_for(emulator, db_url)
    user = catalog["web"]["ordinary"][11]
    submitted = run(["delete", "--user-id", user["user_id"], "--json"], env, tmp_path)
    request_id = json.loads(submitted.stdout)["request_id"]
    before = status(request_id, env, tmp_path)
    assert before["status"] == "received" and before["kind"] == "deletion"
    assert before["identifier_kinds"] == ["user_id"] and user["user_id"] not in submitted.stdout
    idle = run(["worker", "--until-idle", "--json"], env, tmp_path, timeout=300)
    assert idle.returncode == 0, idle.stderr
    assert json.loads(idle.stdout) == {"executor_id": "amplitude-dsr", "stopped": "idle"}
    doc = status(request_id, env, tmp_path)
    assert doc["status"] == "verified" and doc["overdue"] is False
    assert doc["jobs"] == [{"project": "default", "day": doc["jobs"][0]["day"], "status": "done", "amplitude_ids": 1}]
    assert any(f.endswith("certificate.json") for f in doc["files"])
    listing = run(["status", "--json"], env, tmp_path)
    assert [r["request_id"] for r in json.loads(listing.stdout)["requests"]] == [request_id]
    table = run(["status"], {**env, "COLUMNS": "200"}, tmp_path)
    assert request_id in table.stdout and "verified" in table.stdout


def test_cancel_from_the_command_line(
    emulator: EmulatorServer, db_url: str, catalog: dict[str, Any], tmp_path: Path
) -> None:
    emulator.admin.set_speed(1)
    env = env_for(emulator, db_url)
    worker = start_worker(env, tmp_path)
    try:
        ids = []
        for index in (12, 13):
            done = run(["delete", "--user-id", catalog["web"]["ordinary"][index]["user_id"], "--json"], env, tmp_path)
            ids.append(json.loads(done.stdout)["request_id"])
        for rid in ids:
            eventually(lambda rid=rid: status(rid, env, tmp_path).get("amplitude_ids") == {"receipted": 1}, "receipt")
        cancelled = run(["cancel", ids[0], "--json"], env, tmp_path)
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout) == {"request_id": ids[0], "status": "cancelled"}
        assert final(ids[0], env, tmp_path)["status"] == "cancelled"
        emulator.admin.advance(days=11)  # the job is running now
        eventually(lambda: status(ids[1], env, tmp_path)["status"] == "submitted", "submitted")
        refused = run(["cancel", ids[1]], env, tmp_path)
        assert refused.returncode == 1
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith("error:") and "already 'submitted'" in line and "Traceback" not in refused.stderr
        emulator.admin.advance(days=8)
        assert final(ids[1], env, tmp_path)["status"] == "verified"
    finally:
        stop(worker)
    removals = [e for e in emulator.admin.request_log() if e["method"] == "DELETE"]
    assert [e["status"] for e in removals] == [200]  # the refused cancel never called Amplitude
    unknown = run(["cancel", "dsr_nope"], env, tmp_path)
    assert unknown.returncode == 1 and "no request" in unknown.stderr
