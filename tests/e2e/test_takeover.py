"""Several workers on one database: when one is killed (SIGKILL) while its deletions wait on their
jobs (its workflow then is the project's tracker), another worker notices that its executor lock
is free and takes its workflows over, and every request still ends verified with each ID posted
once and verified once (the emulator's log is the judge). Runs on SQLite and, with
``AMPLITUDE_DSR_TEST_DATABASE_URL``, on PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from amplitude_dsr.dsr.takeover import WATCH_INTERVAL
from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import api_calls, env_for
from .proc import CLI, cli_env, eventually, run, stop
from .test_deletion_cli import FINAL, workflows

SUBJECTS = 12


def spawn_worker(env: dict[str, str], cwd: Path, executor_id: str) -> tuple[subprocess.Popen[str], Path]:
    """A worker whose stderr goes to a file (a pipe nobody reads could block it)."""
    log = cwd / f"worker-{executor_id}.err"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*CLI, "worker", "--executor-id", executor_id], env=cli_env(env), cwd=cwd,
            stdout=subprocess.DEVNULL, stderr=err, text=True,
        )  # fmt: skip
    return proc, log


def listed(env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    done = run(["status", "--json"], env, cwd)
    assert done.returncode == 0, done.stderr
    requests: list[dict[str, Any]] = json.loads(done.stdout)["requests"]
    return requests


def test_a_killed_workers_deletions_are_finished_by_another_worker(
    emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    emulator.admin.set_speed(1)  # jobs stay in staging until the clock is moved on
    users = [emulator.admin.add_user("web", user_id=f"takeover-{i}", events=3) for i in range(SUBJECTS)]
    csv_file = tmp_path / "requests.csv"
    csv_file.write_text(
        "request,kind,value\n" + "".join(f"deletion,user_id,{u['user_id']}\n" for u in users), encoding="utf-8"
    )
    env = env_for(emulator, db_url, AMPLITUDE_DSR_MAX_LINGER="1")
    first, first_log = spawn_worker(env, tmp_path, "worker-a")
    second = None
    try:
        eventually(lambda: "running" in first_log.read_text(), "the first worker to start")
        submitted = run(["batch", str(csv_file), "--json"], env, tmp_path, timeout=300)
        assert submitted.returncode == 0, submitted.stderr
        eventually(
            lambda: (r := listed(env, tmp_path)) and all(d["status"] == "staging" for d in r) and len(r) == SUBJECTS,
            "every deletion to wait on its job",
        )
        second, second_log = spawn_worker(env, tmp_path, "worker-b")
        eventually(lambda: "running" in second_log.read_text(), "the second worker to start")
        time.sleep(WATCH_INTERVAL + 2)  # at least one check of the second worker while the first lives
        assert "is gone" not in second_log.read_text()  # a live worker is never taken over
        [tracker] = [w for w in workflows(db_url) if w["name"].endswith("track_workflow") and w["status"] == "PENDING"]
        assert tracker["executor"] == "worker-a"  # the jobs of every request are followed by worker-a
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        killed_at = time.monotonic()
        eventually(lambda: "executor worker-a is gone" in second_log.read_text(), "the takeover", timeout=60)
        taken_after = time.monotonic() - killed_at
        searches_before = len(api_calls(emulator, "/usersearch"))
        emulator.admin.set_speed(86400.0 * 4)  # the jobs run to done; verification follows
        done = eventually(
            lambda: (r := listed(env, tmp_path)) and all(d["status"] in FINAL for d in r) and r,
            "every request to end",
            timeout=180,
        )
    finally:
        stop(first)
        if second is not None:
            stop(second)
    assert Counter(d["status"] for d in done) == {"verified": SUBJECTS}
    after = {w["id"]: w for w in workflows(db_url)}
    assert after[tracker["id"]]["executor"] == "worker-b"  # the survivor took the tracker over
    assert {after[f"verify-{d['request_id']}"]["executor"] for d in done} == {"worker-b"}  # and verified them
    posted = [i for p in api_calls(emulator, "/deletions/users", "POST") for i in p["body"]["amplitude_ids"]]
    assert sorted(posted) == sorted(u["amplitude_id"] for u in users)  # each ID posted once
    # each request verified once: one verification search per subject, not two
    assert len(api_calls(emulator, "/usersearch")) - searches_before == SUBJECTS
    # One workflow (the project's tracker) held all twelve waiting requests: one was taken over.
    assert "1 workflow(s) put back" in second_log.read_text()
    assert taken_after < 60
