"""The services of one process, and the DBOS role it plays.

:class:`Runtime` is the plain services object (settings, database, budgets, Amplitude clients,
data directory) built once at the edge by the composition root (``dsr/executor.py``) and passed
to every workflow and step explicitly (through the DBOS configured instance of
``dsr/workflows.py``). Nothing here is module-global.

Roles (see ``docs/operations.md``):

* an **executor** (``worker``, and the service with its embedded worker) runs workflows. It holds
  an exclusive executor lock for its executor ID (an OS file lock beside a SQLite database; a
  PostgreSQL advisory lock otherwise), so two processes never recover or run the same workflows.
  On PostgreSQL the lock is watched and taken again when its connection drops; an executor that
  lost it to another process stops (:attr:`Runtime.lock_lost`).
* a **foreground** executor (``access --wait``, ``delete --wait``, ``batch``, ``demo`` when no
  worker runs) is an in-process executor that drains its own requests and exits: it holds the same
  lock, launches DBOS under a private executor ID (so DBOS recovers nothing at launch) and listens
  to a private queue only. When it closes, every request of its own that is not finished is
  handed back to the shared queue, from its last checkpoint, for the next ``worker``.
* a **submitter** never launches DBOS: it enqueues and reads through a ``DBOSClient``.

Each role has a bounded number of database connections (``connections.FOOTPRINTS``).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, EnqueueOptions, SetEnqueueOptions, SetWorkflowID
from dbos._error import (
    DBOSAwaitedWorkflowCancelledError,
    DBOSQueueDeduplicatedError,
    DBOSWorkflowCancelledError,
)

from amplitude_dsr import __version__
from amplitude_dsr.amplitude import AmplitudeClient, Budget, DsarClient
from amplitude_dsr.config import ProjectConfig, Settings, default_data_home
from amplitude_dsr.dsr.connections import ExecutorLock
from amplitude_dsr.dsr.sealing import SealedSerializer
from amplitude_dsr.errors import ShuttingDown
from amplitude_dsr.states import WORKFLOW_ACTIVE
from amplitude_dsr.store.audit import ChainWatch
from amplitude_dsr.store.db import private_dir, sqlite_path

QUEUE = "amplitude-dsr"
# Deletion request workflows: they resolve and queue their IDs, then end (dsr/deletion.py), so a
# small bound per worker suffices; requests not started yet count as "resolving" for the batching
# rule, which keeps waiting for a full batch.
DELETION_QUEUE = "amplitude-dsr-deletion"
DELETION_WORKER_CONCURRENCY = 32
# The per-project flushers and trackers (one of each per project at a time, by deduplication).
JOBS_QUEUE = "amplitude-dsr-jobs"
JOBS_WORKER_CONCURRENCY = 64
# Verifications of requests whose jobs are done: short, bounded (they spend the user pool).
VERIFY_QUEUE = "amplitude-dsr-verify"
VERIFY_WORKER_CONCURRENCY = 16
SHARED_QUEUES = {
    QUEUE: 64, DELETION_QUEUE: DELETION_WORKER_CONCURRENCY, JOBS_QUEUE: JOBS_WORKER_CONCURRENCY,
    VERIFY_QUEUE: VERIFY_WORKER_CONCURRENCY,
}  # fmt: skip
# Workflows a foreground command runs at once (its requests, and the flushers, trackers and
# verifications serving them): a `batch` of 10,000 rows does not start 10,000 threads.
FOREGROUND_CONCURRENCY = 64
# Deletion workflows resolving their identifiers at once, per process: resolution spends the user
# pool (8 concurrent calls at most), so a few more than that keep it busy.
RESOLVE_CONCURRENCY = 16
DEFAULT_EXECUTOR_ID = "amplitude-dsr"
APP_NAME = "amplitude-dsr"
FOREGROUND_PREFIX = "cli-"  # DBOS executor IDs and queue names of foreground commands
SUBMITTER_PREFIX = "submitter-"  # DBOS executor IDs of submitters before they used DBOSClient only
ACTIVE_WORKFLOW = WORKFLOW_ACTIVE  # DBOS statuses of a workflow that is not finished
APP_VERSION = f"amplitude-dsr-{__version__}"  # DBOS application version: executors and clients alike
WORKFLOW_CLASS = "amplitude_dsr.Workflows"  # the DBOS class and instance of dsr/workflows.py
WORKFLOW_INSTANCE = "amplitude-dsr"
# Our workflows by their stored DBOS name -> the method of dsr/workflows.py that runs them.
WORKFLOW_METHODS = {
    "access_workflow": "access", "deletion_workflow": "deletion", "flush_workflow": "flush",
    "track_workflow": "track", "verify_workflow": "verify",
}  # fmt: skip

_log = logging.getLogger(__name__)
# What DBOS raises in a workflow thread that outlived it (torn down in Runtime.close).
_AFTER_TEARDOWN = ("No DBOS was created yet", "accessed before DBOS was launched")


class _ShutdownNoise(logging.Filter):
    """Drops DBOS's error line (with a traceback) for a workflow thread that ended because this
    process shut down (``ShuttingDown``, or DBOS already torn down) or because the workflow was
    cancelled on purpose (a command handing back its flusher, ``cancel``): nothing failed, and the
    workflow resumes from its last checkpoint in the next executor, or was meant to stop."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if isinstance(exc, ShuttingDown | DBOSWorkflowCancelledError | DBOSAwaitedWorkflowCancelledError):
            return False
        return not torn_down(exc)


def torn_down(exc: BaseException) -> bool:
    """Whether ``exc`` is DBOS refusing a workflow thread that outlived it (this process is
    shutting down): nothing failed, and the workflow resumes from its last checkpoint."""
    return any(text in str(exc) for text in _AFTER_TEARDOWN)


_SHUTDOWN_NOISE = _ShutdownNoise()
logging.getLogger("dbos").addFilter(_SHUTDOWN_NOISE)


@dataclass
class Runtime:
    """Everything a workflow step needs, as plain values."""

    settings: Settings
    engine: sa.Engine
    budget: Budget
    data_dir: Path
    executor: bool
    executor_id: str
    dbos: bool = True  # DBOS launched in this process (an executor, foreground or not)
    foreground_queue: str | None = None  # a foreground command's private queue (see the module doc)
    serializer: SealedSerializer | None = None  # DBOS's, for a DBOSClient of this process (dsr/sealing.py)
    workflows: Any = None  # the DBOS configured instance serving this runtime (dsr/workflows.py)
    boot_id: str = field(default_factory=lambda: secrets.token_hex(6))
    # Set once DBOS is torn down (after close): a workflow thread still running here ends at its
    # next step or pause (steps.ShuttingDown), leaving the workflow pending for another executor.
    stopping: threading.Event = field(default_factory=threading.Event)
    lock_lost: str | None = None  # why this executor must stop: another process took its lock
    stop_requested: threading.Event = field(default_factory=threading.Event)
    _client: DBOSClient | None = None
    _own: dict[str, str] = field(default_factory=dict)  # workflow ID -> its shared queue
    _lock: ExecutorLock | None = None
    _clients: dict[str, AmplitudeClient] = field(default_factory=dict)
    _dsar: DsarClient | None = None
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _sweep: Any = None  # the executor's deletion sweep thread (dsr/jobwatch.py)
    # Deletion batches threads of this process are posting right now, with how many threads are
    # in post_batch for each (dsr/submission.py): a batch this process left 'posting' and no thread
    # of it holds any more lost its receipt to a fault, and is reconciled at once.
    posting_now: Counter[str] = field(default_factory=Counter)
    # The audit chain as far as this process has verified it (certificates: store/audit.py).
    chain: ChainWatch = field(default_factory=ChainWatch)
    resolve_gate: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(RESOLVE_CONCURRENCY)
    )

    def project_config(self, name: str) -> ProjectConfig:
        return self.settings.project(name)

    def client(self, project: str) -> AmplitudeClient:
        """The (shared, thread-safe) client of a configured project."""
        with self._mutex:
            if project not in self._clients:
                self._clients[project] = AmplitudeClient(self.settings.project(project), self.budget)
            return self._clients[project]

    def dsar(self) -> DsarClient | None:
        """The DSAR client when org keys are configured."""
        if self.settings.org is None:
            return None
        with self._mutex:
            if self._dsar is None:
                self._dsar = DsarClient(self.settings.org, self.budget)
            return self._dsar

    @property
    def poster_tag(self) -> str:
        """Who posts a deletion batch: this executor ID and this process's boot."""
        return f"{self.executor_id}:{self.boot_id}"

    def work_dir(self, request_id: str) -> Path:
        return private_dir(self.data_dir / "work" / request_id)

    @property
    def closed(self) -> bool:
        return self.stopping.is_set()

    def lose_lock(self, message: str) -> None:
        """Another process took this executor's lock: stop as soon as the owner of the runtime
        (the worker loop, a waiting command) looks, and say why."""
        self.lock_lost = message
        self.stop_requested.set()

    def dbos_client(self) -> DBOSClient:
        """A ``DBOSClient`` on this database (any role): how a process reads workflows, and how a
        submitter enqueues them without launching DBOS."""
        with self._mutex:
            if self._client is None:
                sealed: dict[str, Any] = {"serializer": self.serializer} if self.serializer is not None else {}
                self._client = DBOSClient(
                    system_database_engine=self.engine, application_name=APP_NAME, lazy=True, **sealed
                )
            return self._client

    def close(self) -> None:
        """Release everything. A foreground command first hands its unfinished requests back to
        the shared queues. DBOS is torn down before the runtime says it is stopping: a workflow
        thread that wakes afterwards can no longer record anything, it only ends
        (``steps.pause``), and its workflow stays pending from its last checkpoint."""
        if self._sweep is not None:
            self._sweep.stop()
        if self.dbos:
            if self.foreground_queue is not None:
                self._hand_off()
            try:
                DBOS.destroy(destroy_registry=False)
            except Exception:  # pragma: no cover - shutting down anyway
                _log.debug("DBOS destroy failed", exc_info=True)
        self.stopping.set()
        if self._client is not None:
            self._client.destroy()
        for c in self._clients.values():
            c.close()
        if self._dsar is not None:
            self._dsar.close()
        self.budget.close()
        self.engine.dispose()
        if self._lock is not None:
            self._lock.release()

    def workflow(self, name: str) -> Callable[..., Any]:
        """The method of this process's configured instance that runs workflow ``name``."""
        if self.workflows is None:
            raise RuntimeError("this process runs no workflows (a submitter)")
        method: Callable[..., Any] = getattr(self.workflows, WORKFLOW_METHODS[name])
        return method

    def enqueue_options(self, name: str, queue: str, workflow_id: str) -> EnqueueOptions:
        """What a ``DBOSClient`` needs to enqueue one of our workflows by name."""
        return {
            "workflow_name": name, "queue_name": queue, "workflow_id": workflow_id, "app_version": APP_VERSION,
            "class_name": WORKFLOW_CLASS, "instance_name": WORKFLOW_INSTANCE,
        }  # fmt: skip

    def run_here(self, func: Callable[..., Any], workflow_id: str, args: tuple[Any, ...], queue: str) -> Any:
        """A foreground command's own workflow: enqueue it on the private queue, or take over
        the same request's unfinished workflow (a re-run resumes it from its last checkpoint)
        when no live executor owns it. Remembered, so :meth:`close` hands it back."""
        assert self.foreground_queue is not None
        self._own[workflow_id] = queue  # its verification runs here too (:meth:`runs_here`)
        status: Any = DBOS.get_workflow_status(workflow_id)
        if status is None:
            with SetWorkflowID(workflow_id):
                handle = DBOS.enqueue_workflow(self.foreground_queue, func, *args)
        elif status.status in ACTIVE_WORKFLOW and _orphaned(status, self.executor_id):
            handle = DBOS.resume_workflow(workflow_id, queue_name=self.foreground_queue)
        else:  # finished, or running in a worker: only wait for it
            return DBOS.retrieve_workflow(workflow_id)
        return handle

    def _hand_off(self) -> None:
        """Put this command's unfinished workflows (its requests and their verifications) back on
        their shared queues (ENQUEUED, owner cleared): the next worker continues each from its last
        checkpoint, and the thread still running it here stops quietly at its next step (DBOS
        fences it out). Its flushers and trackers are cancelled instead: any worker's sweep starts
        one per project again."""
        try:
            mine: list[Any] = DBOS.list_workflows(
                queue_name=self.foreground_queue, status=list(ACTIVE_WORKFLOW), load_input=False, load_output=False
            )
        except Exception:  # pragma: no cover - the worker's orphan adoption covers it
            _log.warning("could not list this command's unfinished workflows", exc_info=True)
            mine = []
        for wf in mine:
            try:
                if shared_queue(wf) == JOBS_QUEUE:
                    # A flusher or tracker holds no state of its own (its work is in our tables):
                    # cancelled here, so a worker's sweep starts exactly one again.
                    DBOS.cancel_workflow(wf.workflow_id)
                    continue
                DBOS.resume_workflow(wf.workflow_id, queue_name=self._own.get(wf.workflow_id) or shared_queue(wf))
            except Exception:  # pragma: no cover - the worker's orphan adoption covers it
                _log.warning("could not hand workflow %s back to the queue", wf.workflow_id, exc_info=True)
        try:
            DBOS.delete_queue(self.foreground_queue or "")
        except Exception:  # pragma: no cover - an unused queue row is harmless
            _log.debug("could not delete queue %s", self.foreground_queue, exc_info=True)

    def own_requests(self) -> list[str]:
        """The requests this foreground command submitted or waits for."""
        return sorted(self._own)

    def owns(self, request_id: str) -> bool:
        """Whether this foreground command submitted (and runs) the request."""
        return request_id in self._own

    def runs_here(self, queue: str, args: tuple[Any, ...]) -> bool:
        """Whether a foreground command runs a workflow meant for ``queue`` itself: a project's
        flusher or tracker (they serve its requests too), a verification only of its own request."""
        if self.foreground_queue is None:
            return False
        return queue != VERIFY_QUEUE or (bool(args) and self.owns(str(args[0])))


def _orphaned(status: Any, lock_id: str) -> bool:
    """Whether an unfinished workflow has no live executor, seen by the holder of the lock
    ``lock_id``: enqueued, or pending under a foreground command (every live one holds the lock
    we hold) or under the executor whose lock we hold."""
    if status.status == "ENQUEUED":
        return True
    executor = str(status.executor_id or "")
    return executor.startswith(FOREGROUND_PREFIX) or executor == lock_id


def shared_queue(wf: Any) -> str:
    """The shared queue a workflow (a DBOS status) belongs on, by its function's name."""
    name = str(wf.name or "")
    markers = (("flush_workflow", JOBS_QUEUE), ("track_workflow", JOBS_QUEUE), ("verify_workflow", VERIFY_QUEUE))
    for marker, queue in markers:
        if marker in name:
            return queue
    return DELETION_QUEUE if "deletion" in name else QUEUE


def adopt_orphans(rt: Runtime) -> int:
    """Hand back to the shared queues the workflows a foreground command left behind when it was
    killed before it could (SIGKILL, power loss). Only safe while no foreground command is alive:
    call it holding the default executor lock. Returns how many were handed back."""
    adopted = 0
    workflows: list[Any] = DBOS.list_workflows(status=list(ACTIVE_WORKFLOW))
    for wf in workflows:
        executor, queue = str(wf.executor_id or ""), str(wf.queue_name or "")
        stranded_queue = queue.startswith(FOREGROUND_PREFIX)
        if not (stranded_queue or (wf.status == "PENDING" and executor.startswith(FOREGROUND_PREFIX))):
            continue
        DBOS.resume_workflow(wf.workflow_id, queue_name=shared_queue(wf))
        adopted += 1
    return adopted


def default_data_dir(settings: Settings) -> Path:
    """Beside a SQLite database; the per-user data directory for PostgreSQL."""
    path = sqlite_path(settings.database_url)
    return (path.parent if path is not None else default_data_home()).resolve()


def start_once(rt: Runtime, name: str, key: str | None, *args: Any, queue: str, workflow_id: str | None = None) -> None:
    """Enqueue workflow ``name`` (``WORKFLOW_METHODS``) with ``args`` on ``queue`` unless a
    workflow holding ``key`` (DBOS deduplication: one per key while enqueued or running) or with
    ``workflow_id`` exists. Called by executors only (workflows, the sweep). In a foreground
    command it runs here when it serves this command (:meth:`Runtime.runs_here`)."""
    if rt.runs_here(queue, args):
        queue = rt.foreground_queue or queue
    try:
        with SetEnqueueOptions(deduplication_id=key), SetWorkflowID(workflow_id) if workflow_id else nullcontext():
            DBOS.enqueue_workflow(queue, rt.workflow(name), *args)
    except DBOSQueueDeduplicatedError:
        pass  # already enqueued or running: it will see what is new at its next round


def enqueue(rt: Runtime, name: str, workflow_id: str, *args: Any, queue: str = QUEUE) -> Any:
    """Enqueue workflow ``name`` on ``queue`` under ``workflow_id`` (the same ID never runs
    twice). In a foreground command the workflow runs here instead, and only it
    (:meth:`Runtime.run_here`); a submitter enqueues through its ``DBOSClient``."""
    if rt.foreground_queue is not None:
        return rt.run_here(rt.workflow(name), workflow_id, args, queue)
    if not rt.dbos:
        return rt.dbos_client().enqueue(rt.enqueue_options(name, queue, workflow_id), *args)
    with SetWorkflowID(workflow_id):
        return DBOS.enqueue_workflow(queue, rt.workflow(name), *args)
