"""What operators watch, for any process (the service's ``/readyz`` and ``/metrics``): live
workers, the depth of the workflow queues, the room left in each Amplitude budget. Reads only.

Nothing here names a person: queues are ours (a foreground command's private queue counts as
``foreground``), and a budget scope (a short hash of an API key) is shown as the name of the
configured project it belongs to, ``org`` for the organisation's keys, else ``other``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from amplitude_dsr.amplitude import PoolRoom
from amplitude_dsr.amplitude.hosts import scope_key
from amplitude_dsr.dsr import liveness
from amplitude_dsr.dsr.runtime import FOREGROUND_PREFIX, SHARED_QUEUES, Runtime
from amplitude_dsr.store.db import sqlite_path

# DBOS statuses of a queued workflow: waiting for a worker, or being run by one.
QUEUED_STATUSES = ("ENQUEUED", "PENDING")
DBOS_SCHEMA = "dbos"  # where DBOS keeps its tables on PostgreSQL (on SQLite: the same file, no schema)


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    status: str
    count: int


def live_workers(rt: Runtime) -> int:
    """Worker processes holding their executor lock on this database now (``dsr/liveness.py``)."""
    return liveness.live_workers(rt.engine, rt.settings.database_url)


def queue_depth(rt: Runtime) -> list[QueueDepth]:
    """Workflows per queue that are enqueued (waiting) or pending (running), from DBOS's
    ``workflow_status`` table: every shared queue appears, with 0 when empty."""
    table = "workflow_status" if sqlite_path(rt.settings.database_url) else f"{DBOS_SCHEMA}.workflow_status"
    query = sa.text(
        f"SELECT queue_name, status, count(*) FROM {table} "
        "WHERE queue_name IS NOT NULL AND status IN ('ENQUEUED', 'PENDING') GROUP BY queue_name, status"
    )
    counts = {(q, s): 0 for q in SHARED_QUEUES for s in QUEUED_STATUSES}
    with rt.engine.connect() as conn:
        for queue, status, count in conn.execute(query):
            name = "foreground" if str(queue).startswith(FOREGROUND_PREFIX) else str(queue)
            if name in SHARED_QUEUES or name == "foreground":
                counts[(name, str(status))] = counts.get((name, str(status)), 0) + int(count)
    return [QueueDepth(q, s, n) for (q, s), n in sorted(counts.items())]


@dataclass(frozen=True)
class BudgetRoom:
    """A pool's room for one configured project (or ``org``), as :class:`PoolRoom` says."""

    project: str
    room: PoolRoom


def budget_room(rt: Runtime) -> list[BudgetRoom]:
    """Every budget pool used so far on this database (shared by every process), by project."""
    names = {scope_key(p): p.name for p in rt.settings.projects}
    if rt.settings.org is not None:
        names[scope_key(rt.settings.org)] = "org"
    return sorted(
        (BudgetRoom(names.get(r.scope, "other"), r) for r in rt.budget.snapshot()),
        key=lambda b: (b.project, b.room.pool, b.room.scope),
    )
