"""``batch`` at scale: chunked, transactional submission; concurrent runs of one file; a database
error between chunks. Every assertion on "ran once" is checked against what the emulator received."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from amplitude_dsr.cli import batch as batch_cli
from amplitude_dsr.config import normalize_database_url
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit

from .conftest import CONTRACT_ENV, Invoke, api_calls, assert_clean, env_for


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def stored(db_url: str) -> dict[str, Any]:
    """What the database holds: request IDs, request workflow IDs (with repeats; the flushers,
    trackers and verifications that serve them are not counted), ``received`` entries per
    request, and whether the audit chain verifies."""
    engine = sa.create_engine(normalize_database_url(db_url))
    workflow_table = "dbos.workflow_status" if engine.dialect.name == "postgresql" else "workflow_status"
    try:
        with engine.connect() as conn:
            requests = [r[0] for r in conn.exec_driver_sql("SELECT id FROM dsr_requests")]
            workflows = [
                r[0]
                for r in conn.execute(sa.text(f"SELECT workflow_uuid, name FROM {workflow_table}"))
                if r[1].endswith(("access_workflow", "deletion_workflow"))
            ]
            received = Counter(e.request_id for e in audit.entries(conn) if e.kind == "received")
            audit.verify(conn)  # raises on a forked or broken chain
    finally:
        engine.dispose()
    return {"requests": requests, "workflows": workflows, "received": received}


def searched(emulator: EmulatorServer) -> Counter[str]:
    """How many times Amplitude was asked to search for each user."""
    return Counter(str(call["query"].get("user")) for call in api_calls(emulator, "/api/2/usersearch"))


def test_four_concurrent_runs_of_one_file_create_each_request_once(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, tmp_path: Path
) -> None:
    """Four ``batch`` processes started together on the same file: all exit 0 and agree on the
    request IDs; the database holds one request, one workflow and one ``received`` entry per
    row; Amplitude was searched once per access row and got each deletion's ID once. (Kept small:
    on PostgreSQL the four processes together open about 70 connections, near the server's
    default limit of 100.)"""
    emails = [f"nobody-{n}@example.org" for n in range(16)]
    victims = catalog["web"]["ordinary"][:2]
    csv_file = _write(
        tmp_path / "same.csv",
        "request,kind,value",
        *(f"access,email,{e}" for e in emails),
        *(f"deletion,user_id,{v['user_id']}" for v in victims),
    )
    env = {k: v for k, v in os.environ.items() if k not in CONTRACT_ENV} | env_for(emulator, db_url)
    cmd = [sys.executable, "-c", "from amplitude_dsr.cli.main import run; run()", "batch", str(csv_file), "--json"]
    logs = [(tmp_path / f"run{i}.out", tmp_path / f"run{i}.err") for i in range(4)]
    procs = []
    for out, err in logs:  # files, not pipes: nothing blocks on a full pipe while the others run
        with out.open("w") as stdout, err.open("w") as stderr:
            procs.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=stdout, stderr=stderr, text=True))
    try:
        for proc in procs:
            proc.wait(timeout=240)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outputs = [(out.read_text(), err.read_text()) for out, err in logs]
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stdout + stderr
    docs = [json.loads(stdout) for stdout, _ in outputs]
    ids = [[r["request_id"] for r in d["requests"]] for d in docs]
    assert all(i == ids[0] for i in ids)  # every run reports the same requests
    assert sum(sum(r["created"] for r in d["requests"]) for d in docs) == len(emails) + len(victims)

    db = stored(db_url)
    assert sorted(db["requests"]) == sorted(ids[0])
    assert sorted(db["workflows"]) == sorted(ids[0])  # one workflow per request, under its ID
    assert db["received"] == Counter(ids[0])
    assert searched(emulator) >= Counter(emails)
    assert all(searched(emulator)[e] == 1 for e in emails)
    posted = [
        a for call in api_calls(emulator, "/api/2/deletions/users", "POST") for a in call["body"]["amplitude_ids"]
    ]
    assert sorted(posted) == sorted(v["amplitude_id"] for v in victims)


def test_a_database_error_between_chunks_leaves_no_half_written_chunk_and_a_rerun_completes(
    emulator: EmulatorServer, db_url: str, tmp_path: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 5; the second chunk's ``received`` entries (appended together, after its
    requests and workflows were written) fail as a database error would. The first chunk is
    complete, the second left nothing behind, the third was never tried; the run says so in one
    line. A re-run stores only the 7 missing requests, and every request ran exactly once."""
    monkeypatch.setattr(batch_cli, "SUBMIT_CHUNK", 5)
    emails = [f"row-{n}@example.org" for n in range(12)]
    csv_file = _write(tmp_path / "flaky.csv", "request,kind,value", *(f"access,email,{e}" for e in emails))
    env = env_for(emulator, db_url)
    real_append_many = audit.append_many
    appended = {"chunks": 0}

    def flaky_append_many(*args: Any, **kwargs: Any) -> Any:
        appended["chunks"] += 1
        if appended["chunks"] == 2:
            raise sa.exc.OperationalError("INSERT INTO dsr_audit ...", {}, Exception("database is locked"))
        return real_append_many(*args, **kwargs)

    monkeypatch.setattr(audit, "append_many", flaky_append_many)
    first = invoke(["batch", str(csv_file)], env)
    assert_clean(first)
    assert first.exit_code == 1, first.output
    [message] = first.stderr.strip().splitlines()[-1:]
    assert "database error while submitting (OperationalError)" in message
    assert "the first 5 of 12 requests are stored" in message and "from line 7" in message
    assert "re-run the same file" in message
    assert not any(e in first.output for e in emails)
    db = stored(db_url)
    assert len(db["requests"]) == 5
    assert sorted(db["workflows"]) == sorted(db["requests"])
    assert db["received"] == Counter(db["requests"])
    first_ids = set(db["requests"])

    monkeypatch.setattr(audit, "append_many", real_append_many)
    again = invoke(["batch", str(csv_file), "--json"], env)
    assert_clean(again)
    assert again.exit_code == 0, again.output
    doc = json.loads(again.stdout)
    assert doc["summary"]["created"] == 7 and doc["summary"]["already_known"] == 5
    assert {r["request_id"] for r in doc["requests"] if not r["created"]} == first_ids
    assert all(r["status"] == "completed" for r in doc["requests"])
    db = stored(db_url)
    assert len(db["requests"]) == 12
    assert sorted(db["workflows"]) == sorted(db["requests"])
    assert db["received"] == Counter(db["requests"])
    assert all(searched(emulator)[e] == 1 for e in emails)  # the first 5 ran once, not again
