"""``amplitude-dsr batch``: validation first, idempotent submission, progress to a summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.config import normalize_database_url
from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import CONTRACT_ENV, Invoke, api_calls, assert_clean, env_for


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _request_count(db_url: str) -> int:
    """Rows in our requests table (0 when the table was never created)."""
    engine = sa.create_engine(normalize_database_url(db_url))
    try:
        if not sa.inspect(engine).has_table("dsr_requests"):
            return 0
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM dsr_requests").scalar_one())
    finally:
        engine.dispose()


def _posted_ids(emulator: EmulatorServer) -> list[int]:
    return [
        int(a) for call in api_calls(emulator, "/api/2/deletions/users", "POST") for a in call["body"]["amplitude_ids"]
    ]


def test_batch_runs_mixed_requests_and_a_rerun_changes_nothing(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, tmp_path: Path, invoke: Invoke
) -> None:
    web = catalog["web"]["ordinary"]
    alice, carol, dave = web[0], web[1], web[2]
    csv_file = _write(
        tmp_path / "requests.csv",
        "request,kind,value,subject",
        f"access,user_id,{alice['user_id']},ticket-1",
        f"access,device_id,{alice['device_ids'][0]},ticket-1",
        f"deletion,user_id,{carol['user_id']},",
        f"deletion,amplitude_id,{dave['amplitude_id']}",
        "access,email,nobody-here@example.org",
    )
    env = env_for(emulator, db_url)
    out_dir = tmp_path / "out"

    first = invoke(["batch", str(csv_file), "--json", "--wait", "--out", str(out_dir)], env)
    assert_clean(first)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    requests = doc["requests"]
    assert [r["kind"] for r in requests] == ["access", "deletion", "deletion", "access"]
    assert [r["lines"] for r in requests] == [[2, 3], [4], [5], [6]]
    assert requests[0]["subject"] == "ticket-1"
    assert requests[0]["identifier_kinds"] == ["device_id", "user_id"]
    assert all(r["created"] for r in requests)
    assert doc["summary"] == {"total": 4, "created": 4, "already_known": 0, "failed": 0, "waited": True}
    assert [r["status"] for r in requests] == ["completed", "verified", "verified", "completed"]
    assert (Path(requests[0]["out_dir"]) / "report.html").is_file()
    assert Path(requests[0]["out_dir"]).parent == out_dir.resolve()
    assert first.stderr == ""  # --json: no progress bar
    # Amplitude received each Amplitude ID exactly once.
    posted = _posted_ids(emulator)
    assert sorted(posted) == sorted([carol["amplitude_id"], dave["amplitude_id"]])
    assert _request_count(db_url) == 4

    log_size = len(emulator.admin.request_log())
    again = invoke(["batch", str(csv_file), "--json", "--out", str(out_dir)], env)
    assert_clean(again)
    assert again.exit_code == 0, again.output
    doc2 = json.loads(again.stdout)
    assert [r["request_id"] for r in doc2["requests"]] == [r["request_id"] for r in requests]
    assert not any(r["created"] for r in doc2["requests"])
    assert doc2["summary"]["already_known"] == 4
    assert _request_count(db_url) == 4
    assert emulator.admin.request_log()[log_size:] == []  # not one more Amplitude call


def test_batch_direct_submits_deletion_rows_as_given(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, tmp_path: Path, invoke: Invoke
) -> None:
    web = catalog["web"]["ordinary"]
    erin, frank = web[3], web[4]
    csv_file = _write(
        tmp_path / "direct.csv",
        "request,kind,value,subject",
        f"deletion,user_id,{erin['user_id']},",
        f"deletion,amplitude_id,{frank['amplitude_id']}",
    )
    done = invoke(["batch", str(csv_file), "--json", "--wait", "--direct"], env_for(emulator, db_url))
    assert_clean(done)
    assert done.exit_code == 0, done.output
    assert [r["status"] for r in json.loads(done.stdout)["requests"]] == ["verified", "verified"]
    posts = api_calls(emulator, "/api/2/deletions/users", "POST")
    assert [u for p in posts for u in p["body"].get("user_ids", [])] == [erin["user_id"]]
    assert [a for p in posts for a in p["body"].get("amplitude_ids", [])] == [frank["amplitude_id"]]
    # No user-pool call before the POSTs: the direct path searches only to verify.
    first_post = min(p["seq"] for p in posts)
    assert not [e for e in emulator.admin.request_log() if e["path"].endswith("/usersearch") and e["seq"] < first_post]
    refused = invoke(["batch", str(csv_file), "--direct", "--org-wide"], env_for(emulator, db_url))
    assert refused.exit_code == 2 and "resolves its identifiers first" in refused.output


def test_batch_stops_at_the_receipt_and_a_later_run_resumes(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, tmp_path: Path, invoke: Invoke
) -> None:
    """Without --wait the command returns once Amplitude has receipted the deletion; the real
    process exits at once (no traceback from the workflow left in a durable sleep), and the next
    executor, here a re-run with --wait, resumes it without posting again."""
    victim, reader = catalog["web"]["ordinary"][3], catalog["web"]["ordinary"][4]
    csv_file = _write(
        tmp_path / "wait.csv",
        "request,kind,value",
        f"delete,user_id,{victim['user_id']}",
        f"access,user_id,{reader['user_id']}",
    )
    env = env_for(emulator, db_url, AMPLITUDE_DSR_POLL_INTERVAL="3")
    full_env = {k: v for k, v in os.environ.items() if k not in CONTRACT_ENV} | env
    proc = subprocess.run(
        [sys.executable, "-c", "from amplitude_dsr.cli.main import run; run()", "batch", str(csv_file)],
        env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "receipted by Amplitude" in proc.stdout and "amplitude-dsr worker" in proc.stdout
    assert "completed" in proc.stdout
    assert len(api_calls(emulator, "/api/2/deletions/users", "POST")) == 1

    result = invoke(["batch", str(csv_file), "--wait"], env)
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert "verified" in result.stdout and "completed" in result.stdout
    assert "2 of 2 requests were already known" in result.stdout
    assert "all requests final" in result.stderr  # the progress bar's last state
    assert len(api_calls(emulator, "/api/2/deletions/users", "POST")) == 1


def test_batch_reports_every_bad_row_and_submits_nothing(
    emulator: EmulatorServer, db_url: str, tmp_path: Path, invoke: Invoke
) -> None:
    secret_email = "not-an-email-but-private"
    csv_file = _write(
        tmp_path / "bad.csv",
        "request,kind,value,subject",
        "access,user_id,fine-user@example.com,a",
        f"access,email,{secret_email},a",
        "",
        "erase,user_id,someone@example.com",
        "access,phone,+44 20 7946 0000",
        "deletion,amplitude_id,12ab",
        "deletion,user_id",
        "deletion,device_id,   ",
        "access,email,ok@example.com",
    )
    for args in (["batch", str(csv_file)], ["batch", str(csv_file), "--json"]):
        result = invoke(args, env_for(emulator, db_url))
        assert_clean(result)
        assert result.exit_code == 2, result.output
        assert secret_email not in result.output and "7946" not in result.output and "12ab" not in result.output
        if "--json" in args:
            errors = json.loads(result.stdout)["errors"]
            assert [e["line"] for e in errors] == [3, 5, 6, 7, 8, 9]
            assert errors[0]["message"] == "malformed email address"
        else:
            lines = result.stderr.splitlines()
            assert "line 3: malformed email address" in lines
            assert "line 5: unknown request type (expected access or deletion)" in lines
            assert any(line.startswith("line 6: unknown identifier kind") for line in lines)
            assert "line 7: an Amplitude ID must be a positive integer" in lines
            assert any(line.startswith("line 8: expected 3 or 4 columns") for line in lines)
            assert "line 9: empty device_id" in lines
            assert lines[-1].startswith("error: 6 bad rows in") and "nothing was submitted" in lines[-1]
    assert _request_count(db_url) == 0
    assert emulator.admin.request_log() == []


def test_batch_header_and_empty_file(tmp_path: Path, invoke: Invoke, db_url: str) -> None:
    env = {"AMPLITUDE_API_KEY": "k", "AMPLITUDE_SECRET_KEY": "s", "AMPLITUDE_DSR_DATABASE_URL": db_url}
    no_header = _write(tmp_path / "noheader.csv", "access,user_id,someone@example.com")
    result = invoke(["batch", str(no_header)], env)
    assert result.exit_code == 2
    assert "line 1: the first row must be a header" in result.stderr
    empty = _write(tmp_path / "empty.csv", "request,kind,value")
    result = invoke(["batch", str(empty)], env)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: no requests in")
    assert _request_count(db_url) == 0


def test_batch_beside_a_worker_submits_and_the_worker_runs_them(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, tmp_path: Path, invoke: Invoke
) -> None:
    """A worker holds the executor lock: batch only submits (role "auto" becomes a submitter)
    and waits while the worker executes."""
    web = catalog["web"]["ordinary"]
    csv_file = _write(
        tmp_path / "beside.csv",
        "request,kind,value",
        f"access,user_id,{web[5]['user_id']}",
        f"deletion,user_id,{web[6]['user_id']}",
    )
    env = env_for(emulator, db_url)
    full_env = {k: v for k, v in os.environ.items() if k not in CONTRACT_ENV} | env
    worker = subprocess.Popen(
        [sys.executable, "-c", "from amplitude_dsr.cli.main import run; run()", "worker"],
        env=full_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stderr is not None
        assert "running" in worker.stderr.readline()  # the worker holds the executor lock now
        result = invoke(["batch", str(csv_file)], env)
        assert_clean(result)
        assert result.exit_code == 0, result.output
        assert "completed" in result.stdout
        assert "the running worker follows them" in result.stdout
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0
    assert "Traceback" not in stderr
    assert len(api_calls(emulator, "/api/2/deletions/users", "POST")) == 1
