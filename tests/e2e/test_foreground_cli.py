"""Commands run while other requests are pending and no worker runs (real processes against the
emulator): a command that executes (``access``, ``batch``) runs only its own requests and leaves
the others untouched and quiet; commands that only read or submit execute nothing; a ``worker``
started later runs the pending ones exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import api_calls, env_for
from .proc import run, status
from .test_deletion_cli import executors


def searched_users(emulator: EmulatorServer) -> list[str]:
    return [e["query"].get("user") for e in api_calls(emulator, "/api/2/usersearch")]


def assert_quiet(done: Any) -> None:
    text = done.stdout + done.stderr
    assert "Traceback" not in text and "DBOSException" not in text, text[-3000:]
    assert "failed" not in done.stderr, done.stderr[-3000:]


def test_commands_leave_other_pending_requests_alone(
    emulator: EmulatorServer, db_url: str, catalog: dict[str, Any], tmp_path: Path
) -> None:
    env = env_for(emulator, db_url)
    ordinary = catalog["web"]["ordinary"]
    victims = [ordinary[14]["user_id"], ordinary[15]["user_id"]]
    pending = []
    for user in victims:
        done = run(["delete", "--user-id", user, "--json"], env, tmp_path)
        assert done.returncode == 0, done.stderr
        assert_quiet(done)
        pending.append(json.loads(done.stdout)["request_id"])

    reader = ordinary[16]["user_id"]
    for args in (["status"], ["status", pending[0]], ["access", "--user-id", reader], ["status"]):
        done = run(args, {**env, "COLUMNS": "200"}, tmp_path)
        assert done.returncode == 0, done.stderr
        assert_quiet(done)
    csv_file = tmp_path / "one.csv"
    csv_file.write_text(f"request,kind,value\naccess,user_id,{ordinary[17]['user_id']}\n")
    done = run(["batch", str(csv_file)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert_quiet(done)

    # Nothing of the pending deletions ran: no search for their users, no deletion call at all.
    assert set(searched_users(emulator)) == {reader, ordinary[17]["user_id"]}
    assert api_calls(emulator, "/api/2/deletions/users", "POST") == []
    for rid in pending:
        assert status(rid, env, tmp_path)["status"] == "received"

    idle = run(["worker", "--until-idle", "--json"], env, tmp_path, timeout=300)
    assert idle.returncode == 0, idle.stderr
    assert_quiet(idle)
    # The worker's log: one line per state change of each request, then a summary; no identifier.
    lines = idle.stderr.strip().splitlines()
    for rid in pending:
        moves = [line for line in lines if line.startswith(f"request {rid} (deletion): ")]
        assert moves[0].endswith("received -> resolving") and moves[-1].endswith("-> verified"), lines
        assert len(moves) == len(set(moves)) >= 5
    assert lines[-1] == "worker amplitude-dsr stopped: 2 requests moved, 2 reached a final state"
    assert not any(user in idle.stderr for user in victims)
    for rid in pending:
        assert status(rid, env, tmp_path)["status"] == "verified"
    ran_by = executors(db_url)
    assert {ran_by[rid] for rid in pending} == {"amplitude-dsr"}  # the worker ran them
    posted = [aid for p in api_calls(emulator, "/deletions/users", "POST") for aid in p["body"]["amplitude_ids"]]
    assert sorted(posted) == sorted(ordinary[i]["amplitude_id"] for i in (14, 15))
