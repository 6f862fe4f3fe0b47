"""``worker``: run workflows until stopped (or until nothing is due)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

import typer
from dbos import DBOS

from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import JSON_OPT, guarded
from amplitude_dsr.dsr.api import ACCESS_FINAL
from amplitude_dsr.dsr.deletion import FINAL as DELETION_FINAL
from amplitude_dsr.dsr.runtime import DEFAULT_EXECUTOR_ID, Runtime, adopt_orphans, open_runtime
from amplitude_dsr.store import repo

IDLE_HORIZON = 5.0  # seconds: a workflow sleeping longer than this is "not due"
ACTIVE_STATUSES = ("ENQUEUED", "PENDING")


def worker(
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Exit when no workflow is due (all finished or sleeping)."
    ),
    executor_id: str = typer.Option(
        DEFAULT_EXECUTOR_ID,
        "--executor-id",
        metavar="ID",
        callback=common.executor_id,
        help="Executor identity (PostgreSQL scale-out: one per worker).",
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Run deletion tracking, DSAR polling and queued requests until stopped."""
    _worker(until_idle, executor_id, json_out)


@guarded
def _worker(until_idle: bool, executor_id: str, json_out: bool) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    settings = common.settings()
    with common.database_errors(settings.database_url):
        rt = open_runtime(settings, role="executor", executor_id=executor_id)
    changes = StatusChanges()
    started = time.monotonic()
    try:
        if executor_id == DEFAULT_EXECUTOR_ID:  # we hold the lock every foreground command holds
            adopt_orphans(rt)
        if not json_out:
            common.err.print(f"worker {executor_id} running; Ctrl-C to stop")
        while not stop.wait(0.5):
            if until_idle and time.monotonic() - started > 1.0 and is_idle(rt):
                break
    finally:
        rt.close(teardown=not common.State.process_exits)
        changes.detach()
        common.err.print(f"worker {executor_id} stopped: {changes.summary()}", markup=False)
    if json_out:
        common.emit_json({"executor_id": executor_id, "stopped": "idle" if until_idle else "signal"})


class StatusChanges(logging.Handler):
    """Prints each request state change the store logs (request ID, kind, old -> new state; no
    identifier) on stderr, and counts them for the summary on exit."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.moved: set[str] = set()
        self.final: set[str] = set()
        self._logger = repo.status_log
        self._level, self._propagate = self._logger.level, self._logger.propagate
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False  # printed here once, not again by the root handler

    def emit(self, record: logging.LogRecord) -> None:
        request_id, kind, _old, new = record.args if isinstance(record.args, tuple) else ("", "", "", "")
        self.moved.add(str(request_id))
        if new in (ACCESS_FINAL if kind == "access" else DELETION_FINAL):
            self.final.add(str(request_id))
        common.err.print(record.getMessage(), markup=False)

    def detach(self) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
        self._logger.propagate = self._propagate

    def summary(self) -> str:
        moved = len(self.moved)
        return f"{moved} request{'' if moved == 1 else 's'} moved, {len(self.final)} reached a final state"


def is_idle(rt: Runtime) -> bool:
    """Nothing due: no enqueued workflow, and every pending one is in a durable sleep that ends
    later than the idle horizon."""
    workflows: list[Any] = DBOS.list_workflows(status=list(ACTIVE_STATUSES))
    now_ms = datetime.now(UTC).timestamp() * 1000
    for wf in workflows:
        if wf.status == "ENQUEUED":
            return False
        steps = DBOS.list_workflow_steps(wf.workflow_id)
        if not steps:
            return False
        last = steps[-1]
        if last["function_name"] != "DBOS.sleep" or not _sleeps_past(last.get("output"), now_ms):
            return False
    return repo.count_requests_in(rt.engine, "deletion", ("received",)) == 0


def _sleeps_past(output: Any, now_ms: float) -> bool:
    try:
        end_ms = float(output) * (1000 if float(output) < 1e11 else 1)
    except (TypeError, ValueError):
        return False
    return end_ms - now_ms > IDLE_HORIZON * 1000
