"""The worker's safety net after a database fault: a workflow left PENDING under the worker's
executor ID with no thread running it is put back on its queue and finishes from its checkpoints
(no Amplitude call repeated: the emulator's request log is the judge)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from amplitude_dsr.cli.worker import StallWatch
from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.server import EmulatorServer

from .proc import eventually


def test_a_workflow_no_thread_runs_is_resumed_from_its_checkpoints(
    emulator: EmulatorServer, make_runtime: Callable[..., Runtime], catalog: dict[str, Any], tmp_path: Path
) -> None:
    rt = make_runtime()
    user = catalog["web"]["ordinary"][3]
    identifiers = [Identifier.parse("user_id", user["user_id"])]
    rid, _ = api.submit(rt, "access", identifiers, options={"out_dir": str(tmp_path)})
    assert api.wait(rt, rid) == "completed"
    calls = len(emulator.admin.request_log())
    # What a database fault can leave behind: DBOS's row says a thread here runs it; none does.
    table = "workflow_status" if rt.engine.dialect.name == "sqlite" else "dbos.workflow_status"
    with rt.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET status = 'PENDING' WHERE workflow_uuid = :w"), {"w": rid})
    watch = StallWatch(rt.executor_id)
    assert watch.check() == 0  # seen once: perhaps just being dispatched
    assert watch.check() == 1  # seen twice: stalled, back on its queue
    eventually(lambda: DBOS.get_workflow_status(rid).status == "SUCCESS", "the resumed workflow to finish")
    assert watch.check() == 0
    assert len(emulator.admin.request_log()) == calls  # replayed from checkpoints, nothing re-sent
