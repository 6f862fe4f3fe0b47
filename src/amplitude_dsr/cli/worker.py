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
from amplitude_dsr.dsr.connections import DisconnectNotices
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.periodic import PeriodicCheck
from amplitude_dsr.dsr.retention import RetentionWatch
from amplitude_dsr.dsr.runtime import DEFAULT_EXECUTOR_ID, Runtime, adopt_orphans, shared_queue
from amplitude_dsr.dsr.takeover import DeadExecutorWatch
from amplitude_dsr.errors import DsrError
from amplitude_dsr.states import WORKFLOW_ACTIVE, is_final
from amplitude_dsr.store import jobs as jobs_store
from amplitude_dsr.store import repo


class ExecutorStopped(DsrError):
    """The worker stopped because another process took its executor lock (exit 1)."""


IDLE_HORIZON = 5.0  # seconds: a workflow sleeping longer than this is "not due"
ACTIVE_STATUSES = sorted(WORKFLOW_ACTIVE)
STALL_CHECK_INTERVAL = 5.0  # seconds between checks for workflows no thread of ours runs


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
        rt = open_runtime(settings, role="executor", executor_id=executor_id, on_notice=_notice)
    changes = StatusChanges()
    disconnects = DisconnectNotices(_notice)
    started = time.monotonic()
    try:
        if executor_id == DEFAULT_EXECUTOR_ID:  # we hold the lock every foreground command holds
            adopt_orphans(rt)
        if not json_out:
            common.err.print(f"worker {executor_id} running; Ctrl-C to stop")
        stalls = StallWatch(executor_id)
        takeovers = DeadExecutorWatch(rt, _notice)
        retention = RetentionWatch(rt, _notice)
        while not stop.wait(0.5) and not rt.stop_requested.is_set():
            stalls.tick()
            takeovers.tick()
            retention.tick()
            if until_idle and time.monotonic() - started > 1.0 and is_idle(rt):
                break
    finally:
        disconnects.close()
        rt.close()
        changes.detach()
        common.err.print(f"worker {executor_id} stopped: {changes.summary()}", markup=False)
    if rt.lock_lost is not None:
        # Another process runs as this executor now: this one stopped (DBOS torn down, so
        # nothing it still ran could record an outcome); every workflow resumes there.
        raise ExecutorStopped(rt.lock_lost)
    if json_out:
        # A signal may stop an --until-idle worker before it is idle: say which it was.
        common.emit_json({"executor_id": executor_id, "stopped": "signal" if stop.is_set() else "idle"})


def _notice(message: str) -> None:
    """One line on stderr about the worker itself (a database fault it recovered from)."""
    common.err.print(message, markup=False)


class StallWatch(PeriodicCheck):
    """The safety net after a database fault: a workflow DBOS marks as running here (PENDING under
    this executor ID) while no thread of this process runs it would otherwise wait for the next
    restart. Seen so at two checks in a row, it goes back to its shared queue (from its last
    checkpoint; DBOS fences out any late thread), and one line says how many."""

    name = "stall check"

    def __init__(self, executor_id: str, interval: float = STALL_CHECK_INTERVAL) -> None:
        super().__init__(interval)
        self.executor_id = executor_id
        self._suspects: set[str] = set()

    def check(self) -> int:
        """One check; returns how many stalled workflows were put back on their queue."""
        running = _running_here()
        if running is None:
            return 0
        pending: list[Any] = DBOS.list_workflows(
            status="PENDING", executor_id=self.executor_id, load_input=False, load_output=False
        )
        idle = {wf.workflow_id: wf for wf in pending if wf.workflow_id not in running}
        stalled = [idle[w] for w in idle if w in self._suspects]
        self._suspects = set(idle) - {wf.workflow_id for wf in stalled}
        for wf in stalled:
            DBOS.resume_workflow(wf.workflow_id, queue_name=shared_queue(wf))
        if stalled:
            _notice(f"{len(stalled)} workflow(s) had stopped after a database fault; resumed from their checkpoints")
        return len(stalled)


def _running_here() -> set[str] | None:
    """IDs of the workflows a thread of this process runs (DBOS's own bookkeeping), or ``None``
    when this DBOS version does not expose it (the check is then skipped)."""
    from dbos import _dbos

    instance = getattr(_dbos, "_dbos_global_instance", None)
    active = getattr(instance, "_active_workflows_set", None)
    ids = getattr(active, "activeList", None)
    return set(ids()) if callable(ids) else None


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
        if is_final(str(kind), str(new)):
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
    """Nothing due: no enqueued workflow, every pending one is in a durable sleep that ends
    later than the idle horizon, no deletion waits to start, and no deletion work waits for a
    flusher or a verification the sweep has yet to start."""
    workflows: list[Any] = DBOS.list_workflows(status=list(ACTIVE_STATUSES))
    now_ms = datetime.now(UTC).timestamp() * 1000
    flushing = any("flush_workflow" in str(wf.name or "") for wf in workflows)
    if not flushing and jobs_store.projects_to_flush(rt.engine):
        return False
    if jobs_store.ready_requests(rt.engine, limit=1):
        return False
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
