"""Recovering a dead worker's workflows in the live ones (several workers, one database).

DBOS recovers the workflows of an executor ID only when a process with that ID launches again, and
without DBOS Conductor nothing tells the others that a worker died. Every worker therefore runs a
:class:`DeadExecutorWatch`: every few seconds it lists the workflows DBOS marks as running
(``PENDING``) under *other* executor IDs and probes each such executor's lock
(:class:`~amplitude_dsr.dsr.connections.ExecutorLock`: an OS file lock beside a SQLite database, a
PostgreSQL advisory lock on a session of its own). Those locks live exactly as long as their
process, so a lock that can be taken belongs to a dead worker. Holding it (so the dead worker
cannot come back meanwhile and no other watch acts at the same moment), the watch asks DBOS to
recover that executor's workflows: DBOS puts each back on its queue from its last checkpoint, and
exactly one live worker dequeues it. Recovery is idempotent in DBOS (it matches the dead executor
ID only, which the first dequeue replaces), so two watches racing do no harm either.

Not probed: foreground commands (``cli-…`` executor IDs hold the default executor's lock, not
their own; the default worker adopts what a killed one left, ``runtime.adopt_orphans``) and this
worker's own ID. Lock liveness is the heartbeat: on PostgreSQL the lock's session sets TCP
keepalives so the server notices a vanished machine in about a minute (docs/operations.md,
"Several workers").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dbos import DBOS

from amplitude_dsr.dsr.connections import ExecutorLock
from amplitude_dsr.dsr.periodic import PeriodicCheck
from amplitude_dsr.dsr.runtime import FOREGROUND_PREFIX, SUBMITTER_PREFIX, Runtime

log = logging.getLogger(__name__)
WATCH_INTERVAL = 5.0  # seconds between checks: a dead worker's workflows resume within about this


class DeadExecutorWatch(PeriodicCheck):
    """Run :meth:`tick` from a worker's main loop; ``notice`` gets one line per takeover."""

    name = "dead executor check"

    def __init__(self, rt: Runtime, notice: Callable[[str], None], interval: float = WATCH_INTERVAL) -> None:
        super().__init__(interval)
        self.rt = rt
        self.notice = notice

    def check(self) -> dict[str, int]:
        """One check; returns, per dead executor ID, how many workflows went back to their queues."""
        recovered: dict[str, int] = {}
        for executor_id in sorted(self.candidates()):
            lock = ExecutorLock(self.rt.settings.database_url, executor_id, self.rt.data_dir, role="worker")
            if not lock.try_acquire():
                continue  # its process holds it: alive
            try:
                handles: list[Any] = DBOS._recover_pending_workflows([executor_id])
            finally:
                lock.release()
            if handles:
                recovered[executor_id] = len(handles)
                self.notice(
                    f"executor {executor_id} is gone (its lock was free): {len(handles)} workflow(s) "
                    "put back on their queues, resumed from their checkpoints"
                )
        return recovered

    def candidates(self) -> set[str]:
        """Executor IDs other than ours with workflows DBOS believes they are running."""
        pending: list[Any] = DBOS.list_workflows(status="PENDING", load_input=False, load_output=False)
        ids = {str(wf.executor_id or "") for wf in pending}
        return {
            e for e in ids if e and e != self.rt.executor_id and not e.startswith((FOREGROUND_PREFIX, SUBMITTER_PREFIX))
        }
