"""The process-wide runtime: settings, database, budgets, Amplitude clients and DBOS.

Built once at the edge (a CLI command, the demo, a test) with :func:`open_runtime` and torn
down with :meth:`Runtime.close`. Workflows, which DBOS calls by name, reach it through
:func:`current`.

Roles (see ``docs/operations.md``):

* an **executor** (``worker``) runs workflows. It holds an exclusive executor lock for its
  executor ID (an OS file lock beside a SQLite database; a PostgreSQL advisory lock otherwise),
  so two processes never recover or run the same workflows: a CLI command next to a running
  ``worker`` does not execute anything, it submits. On PostgreSQL the lock is watched and taken
  again when its connection drops; an executor that lost it to another process exits
  (:func:`exit_on_lost_lock`).
* a **foreground** executor (a command that runs its own requests when no worker runs: ``access``,
  ``delete --wait``, ``batch``, ``demo``) holds the same lock but runs *only the requests it
  submits*: it launches DBOS under a private executor ID (so DBOS recovers nothing at launch) and
  listens to a private queue only (so it never dequeues anyone else's workflow). When it closes,
  every request of its own that is not finished is handed back to the shared queue, from its last
  checkpoint, for the next ``worker``.
* a **submitter** launches DBOS listening to no queue, enqueues workflows and may wait for them.

Each role has a bounded number of database connections (``connections.FOOTPRINTS``).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetEnqueueOptions, SetWorkflowID
from dbos._error import DBOSQueueDeduplicatedError

from amplitude_dsr import __version__
from amplitude_dsr.amplitude import AmplitudeClient, Budget, DsarClient
from amplitude_dsr.amplitude import budget as budget_module
from amplitude_dsr.config import ProjectConfig, Settings, dbos_database_url, default_data_home
from amplitude_dsr.dsr import sealing
from amplitude_dsr.dsr.connections import FOOTPRINTS, ExecutorLock, application_name, bound_dbos_pool
from amplitude_dsr.dsr.sealing import SealedSerializer
from amplitude_dsr.errors import ConfigError
from amplitude_dsr.states import WORKFLOW_ACTIVE
from amplitude_dsr.store import repo
from amplitude_dsr.store.audit import create_audit_tables
from amplitude_dsr.store.db import make_engine, pg_engine_options, private_dir, sqlite_path

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
SUBMITTER_PREFIX = "submitter-"  # DBOS executor IDs of processes that run no workflow
ACTIVE_WORKFLOW = WORKFLOW_ACTIVE  # DBOS statuses of a workflow that is not finished

_log = logging.getLogger(__name__)
_current: Runtime | None = None


@dataclass
class Runtime:
    """Everything a workflow step needs, as plain values."""

    settings: Settings
    engine: sa.Engine
    budget: Budget
    data_dir: Path
    executor: bool
    executor_id: str
    dbos: bool = True
    foreground_queue: str | None = None  # a foreground command's private queue (see the module doc)
    serializer: SealedSerializer | None = None  # DBOS's, for a DBOSClient of this process (dsr/sealing.py)
    boot_id: str = field(default_factory=lambda: secrets.token_hex(6))
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

    def close(self, *, teardown: bool = True) -> None:
        """Release everything. A foreground command first hands its unfinished requests back to
        the shared queues. ``teardown=False`` (a CLI process that ends right after) leaves DBOS
        running: destroying it under a handed-off workflow thread would make that thread fail
        noisily against a closed database before the process ends."""
        global _current
        if self._sweep is not None:
            self._sweep.stop()
        if self.dbos:
            if self.foreground_queue is not None:
                self._hand_off()
            if teardown:
                try:
                    DBOS.destroy(destroy_registry=False)
                except Exception:  # pragma: no cover - shutting down anyway
                    _log.debug("DBOS destroy failed", exc_info=True)
        for c in self._clients.values():
            c.close()
        if self._dsar is not None:
            self._dsar.close()
        self.budget.close()
        self.engine.dispose()
        if self._lock is not None:
            self._lock.release()
        if _current is self:
            _current = None

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


class RuntimeClosed(BaseException):
    """Raised in a workflow thread that outlived its runtime (DBOS leaves durable sleeps running
    when it is destroyed). Deliberately a ``BaseException``: DBOS records ordinary exceptions as
    the workflow's ERROR outcome, while this one leaves the workflow PENDING, exactly as if the
    process had died, so the next executor recovers it."""


def current() -> Runtime:
    """The runtime of this process (set by :func:`open_runtime`)."""
    if _current is None:
        raise RuntimeClosed("amplitude-dsr runtime is not open in this process")
    return _current


def default_data_dir(settings: Settings) -> Path:
    """Beside a SQLite database; the per-user data directory for PostgreSQL."""
    path = sqlite_path(settings.database_url)
    return (path.parent if path is not None else default_data_home()).resolve()


def exit_on_lost_lock(message: str) -> None:
    """What an executor does when another process took its executor lock: say so in one line and
    end at once, as a crash would (every workflow resumes from its checkpoint elsewhere). Anything
    slower would let two processes run as the same executor."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    os._exit(1)


def _role_kind(role: str, executor: bool) -> str:
    """The connection footprint of a process (``connections.FOOTPRINTS``)."""
    if role == "offline":
        return "offline"
    if executor:
        return "worker" if role == "executor" else "foreground"
    return "submitter"


def open_runtime(
    settings: Settings,
    *,
    role: str = "auto",
    executor_id: str = DEFAULT_EXECUTOR_ID,
    data_dir: Path | None = None,
    on_lock_lost: Callable[[str], None] = exit_on_lost_lock,
    on_notice: Callable[[str], None] | None = None,
) -> Runtime:
    """Open the database, budgets and DBOS for this process.

    ``role``: ``executor`` (must get the executor lock, else ConfigError: the worker),
    ``submitter`` (never runs workflows), ``auto`` (a foreground executor that runs only its own
    requests if the lock is free, else a submitter) or ``offline`` (no DBOS at all: status,
    cancel and connection checks). An executor on PostgreSQL keeps its lock through dropped
    connections; ``on_lock_lost`` runs when another process took it (default: exit 1), and
    ``on_notice`` receives one line when the lock had to be taken again (default: a warning).
    """
    global _current
    if _current is not None:
        raise RuntimeError("runtime already open in this process")
    # Import the workflows so DBOS registers them before launch.
    from amplitude_dsr.dsr import workflows  # noqa: F401

    data_dir = private_dir(data_dir or default_data_dir(settings))
    lock: ExecutorLock | None = None
    executor = False
    if role in ("executor", "auto"):
        lock = ExecutorLock(
            settings.database_url, executor_id, data_dir, role="worker" if role == "executor" else "foreground"
        )
        executor = lock.try_acquire()
        if not executor:
            lock = None
            if role == "executor":
                raise ConfigError(
                    f"another process is already running workflows as executor {executor_id!r} "
                    "on this database (a worker?); stop it or use --executor-id"
                )
    try:
        _current = _open(settings, role=role, executor=executor, executor_id=executor_id, data_dir=data_dir, lock=lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if lock is not None:
        lock.watch(on_lock_lost, on_notice)
    if executor:
        from amplitude_dsr.dsr.jobwatch import JobsWatch, SweepThread

        _current._sweep = SweepThread(JobsWatch(_current))
    return _current


def _open(
    settings: Settings, *, role: str, executor: bool, executor_id: str, data_dir: Path, lock: ExecutorLock | None
) -> Runtime:
    kind = _role_kind(role, executor)
    footprint = FOOTPRINTS[kind]
    url = settings.database_url
    engine = make_engine(url, pool=footprint.store, application_name=application_name(kind, "store"))
    budget_options = pg_engine_options(
        footprint.budget, application_name(kind, "budget"), timeout=budget_module.POOL_TIMEOUT
    )
    budget = Budget(
        url, fraction=settings.budget_fraction, rate_scale=settings.rate_scale, pg_engine_options=budget_options
    )
    try:
        repo.create_tables(engine)
        create_audit_tables(engine)
        budget.create_tables()
        serializer = None
        if role != "offline":  # every process that reads or writes checkpoints seals them alike
            keys, source = sealing.data_keys(settings)
            sealing.check_keys(engine, keys, source)
            serializer = sealing.SealedSerializer(keys)
    except BaseException:
        engine.dispose()
        budget.close()
        raise
    if role == "offline":
        return Runtime(
            settings=settings, engine=engine, budget=budget, data_dir=data_dir, executor=False,
            executor_id=executor_id, dbos=False,
        )  # fmt: skip
    foreground = kind == "foreground"
    private = f"{FOREGROUND_PREFIX}{repo.new_id('p')}"
    # A foreground command's DBOS executor ID is new, so DBOS recovers nothing when it launches.
    roles = {"worker": executor_id, "foreground": private, "submitter": f"{SUBMITTER_PREFIX}{repo.new_id('p')}"}
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": dbos_database_url(url),
        "executor_id": roles[kind],
        "application_version": f"amplitude-dsr-{__version__}",
        "run_admin_server": False,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.1,
        "serializer": serializer,
    }  # type: ignore[typeddict-unknown-key]
    if sqlite_path(url) is None:  # on SQLite DBOS keeps its defaults: file handles are not server slots
        bound_dbos_pool(config, kind)
    DBOS(config=config)
    DBOS.listen_queues([private] if foreground else list(SHARED_QUEUES) if executor else [])
    DBOS.launch()
    for name, concurrency in SHARED_QUEUES.items():
        DBOS.register_queue(name, worker_concurrency=concurrency, polling_interval_sec=0.2)
    if foreground:
        DBOS.register_queue(private, worker_concurrency=FOREGROUND_CONCURRENCY, polling_interval_sec=0.2)
    return Runtime(
        settings=settings, engine=engine, budget=budget, data_dir=data_dir, executor=executor,
        executor_id=executor_id, foreground_queue=private if foreground else None, _lock=lock,
        serializer=serializer,
    )  # fmt: skip


def start_once(
    func: Callable[..., Any], key: str | None, *args: Any, queue: str, workflow_id: str | None = None
) -> None:
    """Enqueue ``func(*args)`` on ``queue`` unless a workflow holding ``key`` (DBOS
    deduplication: one per key while enqueued or running) or with ``workflow_id`` exists. In a
    foreground command it runs here when it serves this command (:meth:`Runtime.runs_here`)."""
    rt = _current
    if rt is not None and rt.runs_here(queue, args):
        queue = rt.foreground_queue or queue
    try:
        with SetEnqueueOptions(deduplication_id=key), SetWorkflowID(workflow_id) if workflow_id else nullcontext():
            DBOS.enqueue_workflow(queue, func, *args)
    except DBOSQueueDeduplicatedError:
        pass  # already enqueued or running: it will see what is new at its next round


def enqueue(func: Callable[..., Any], workflow_id: str, *args: Any, queue: str = QUEUE) -> Any:
    """Enqueue ``func`` on ``queue`` under ``workflow_id`` (the same ID never runs twice). In a
    foreground command the workflow runs here instead, and only it (:meth:`Runtime.run_here`)."""
    if _current is not None and _current.foreground_queue is not None:
        return _current.run_here(func, workflow_id, args, queue)
    with SetWorkflowID(workflow_id):
        return DBOS.enqueue_workflow(queue, func, *args)
