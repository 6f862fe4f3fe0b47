"""A worker killed with SIGKILL after Amplitude took a deletion POST but before the receipt was
stored: the next worker reconciles by listing jobs and never sends the POST again."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit
from amplitude_dsr.store.db import make_engine

from .conftest import api_calls, env_for
from .proc import eventually, run, start_worker, status, stop

FINAL = ("verified", "recollected", "still_present", "nothing_found", "cancelled", "failed")


def test_sigkill_between_post_and_receipt_sends_no_duplicate_post(
    emulator: EmulatorServer, db_url: str, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][8]
    env = env_for(emulator, db_url)
    submitted = run(["delete", "--user-id", user["user_id"], "--json"], env, tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    request_id = json.loads(submitted.stdout)["request_id"]
    # Amplitude applies the POST, then holds its answer back: the worker dies waiting for it.
    emulator.admin.inject_fault("delay_after", path="/api/2/deletions/users", method="POST", delay=120)
    first = start_worker(env, tmp_path)
    try:
        eventually(lambda: api_calls(emulator, "/deletions/users", "POST"), "the POST to reach Amplitude")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        stop(first)
    assert status(request_id, env, tmp_path)["status"] == "queued"  # no receipt was stored
    emulator.admin.clear_faults()
    second = start_worker(env, tmp_path)
    try:
        doc = eventually(
            lambda: (d := status(request_id, env, tmp_path))["status"] in FINAL and d, "a final state", timeout=120
        )
    finally:
        stop(second)
    assert doc["status"] == "verified"
    [post] = api_calls(emulator, "/deletions/users", "POST")  # exactly one POST, ever
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]
    assert doc["jobs"] and doc["jobs"][0]["status"] == "done"
    assert doc["amplitude_ids"] == {"receipted": 1}
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            kinds = [e.kind for e in audit.entries(conn, request_id)]
            audit.verify(conn)
    finally:
        engine.dispose()
    assert "deletion_reconciled" in kinds and "deletion_receipt" not in kinds
