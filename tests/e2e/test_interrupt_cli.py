"""Ctrl-C during ``access`` (a real SIGINT to a real process): exit 130 with one line naming the
request and how to follow it; the request is not failed; running the same command again resumes
that request instead of creating a second one (and a second DSAR export); a finished request is
not reused."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import api_calls, env_for
from .proc import CLI, cli_env, eventually, run, status


def org_env(emulator: EmulatorServer, db_url: str) -> dict[str, str]:
    org = emulator.admin.state()["org"]
    return env_for(emulator, db_url, AMPLITUDE_ORG_API_KEY=org["api_key"], AMPLITUDE_ORG_SECRET_KEY=org["secret_key"])


def test_ctrl_c_names_the_request_and_a_rerun_resumes_it(
    emulator: EmulatorServer, db_url: str, catalog: dict[str, Any], tmp_path: Path
) -> None:
    emulator.admin.set_speed(1)  # the DSAR export takes an emulated day: the command waits on it
    env = org_env(emulator, db_url)
    user = catalog["web"]["ordinary"][5]["user_id"]
    args = ["access", "--user-id", user, "--out", str(tmp_path / "out")]
    process = subprocess.Popen(
        [*CLI, *args], env=cli_env(env), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        eventually(lambda: api_calls(emulator, "/api/2/dsar/requests", "POST"), "the DSAR export to be created")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    [line] = stderr.strip().splitlines()
    request_id = line.split("request ", 1)[1].split()[0]
    assert request_id.startswith("dsr_")
    assert f"amplitude-dsr status {request_id}" in line and "amplitude-dsr worker" in line
    assert "Traceback" not in stdout + stderr and user not in stdout + stderr
    assert status(request_id, env, tmp_path)["status"] == "collecting"  # not failed

    emulator.admin.advance(days=1, seconds=3600)  # the export is done now; its links last two days
    again = run([*args, "--json"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["request_id"] == request_id and doc["status"] == "completed"
    assert [s["dsar"] for s in doc["subjects"]] == ["done"]
    assert len(api_calls(emulator, "/api/2/dsar/requests", "POST")) == 1  # one export, not two
    listing = json.loads(run(["status", "--json"], env, tmp_path).stdout)["requests"]
    assert [r["request_id"] for r in listing] == [request_id]


def test_a_finished_access_request_is_not_reused(
    emulator: EmulatorServer, db_url: str, catalog: dict[str, Any], tmp_path: Path
) -> None:
    env = env_for(emulator, db_url)
    args = ["access", "--user-id", catalog["web"]["ordinary"][6]["user_id"], "--json"]
    first, second = (json.loads(run(args, env, tmp_path).stdout) for _ in range(2))
    assert first["status"] == second["status"] == "completed"
    assert first["request_id"] != second["request_id"]
    assert len(api_calls(emulator, "/api/2/usersearch")) == 2
