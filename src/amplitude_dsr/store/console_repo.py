"""Reads for the console (``service/console``): the request list with keyset paging, lookups by
request ID, platform ID or identifier digest, and what the database knows of DBOS's queues and
executors. Each function is one query (two for the look-ups that need them), never one per row.

The list is ordered by ``(created_at, id)`` descending and paged by that key, not by OFFSET, so
the tenth thousandth page costs what the first does; :func:`ensure_indexes` gives the order its
indexes on databases made before the console existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.states import ACCESS_FINAL, DELETION_FINAL
from amplitude_dsr.store import digests as digest_index
from amplitude_dsr.store.service_tables import service_requests
from amplitude_dsr.store.tables import requests

PAGE_SIZE = 50
FINAL_STATUSES = sorted(ACCESS_FINAL | DELETION_FINAL)
INDEXES = {
    "ix_dsr_requests_created_id": "(created_at, id)",
    "ix_dsr_requests_status_created_id": "(status, created_at, id)",
}


def ensure_indexes(engine: sa.Engine) -> None:
    """Create the list's indexes if missing (idempotent, safe from several processes)."""
    with engine.begin() as conn:
        for name, columns in INDEXES.items():
            conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{requests.name}" {columns}')


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class Filters:
    """What the list shows: every field ``None``/False means no restriction."""

    state: str | None = None
    kind: str | None = None
    regulation: str | None = None
    overdue: bool = False


@dataclass(frozen=True)
class Listed:
    """One row of the list: the request and, when a platform sent it, its channel and ID."""

    id: str
    kind: str
    status: str
    regulation: str
    created_at: datetime
    deadline: datetime
    completed_at: datetime | None
    channel: str | None
    subject_request_id: str | None


@dataclass(frozen=True)
class Page:
    rows: list[Listed]
    next_key: tuple[datetime, str] | None  # the key to pass as ``after`` for the next page


def list_page(
    engine: sa.Engine,
    filters: Filters,
    *,
    now: datetime,
    after: tuple[datetime, str] | None = None,
    only_ids: Sequence[str] | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    """One page of requests, newest first, in one query (``only_ids``: restrict to those)."""
    r, s = requests.c, service_requests.c
    query = sa.select(
        r.id, r.kind, r.status, r.regulation, r.created_at, r.deadline, r.completed_at, s.channel,
        s.subject_request_id,
    ).select_from(requests.outerjoin(service_requests, s.request_id == r.id))  # fmt: skip
    if filters.state:
        query = query.where(r.status == filters.state)
    if filters.kind:
        query = query.where(r.kind == filters.kind)
    if filters.regulation:
        query = query.where(r.regulation == filters.regulation)
    if filters.overdue:
        query = query.where(r.deadline < now, r.status.not_in(FINAL_STATUSES))
    if only_ids is not None:
        query = query.where(r.id.in_(list(only_ids)))
    if after is not None:
        key = sa.tuple_(sa.literal(after[0], r.created_at.type), sa.literal(after[1]))
        query = query.where(sa.tuple_(r.created_at, r.id) < key)
    query = query.order_by(r.created_at.desc(), r.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        found = [_listed(row) for row in conn.execute(query)]
    more = len(found) > limit
    rows = found[:limit]
    return Page(rows, (rows[-1].created_at, rows[-1].id) if more and rows else None)


def _listed(row: Any) -> Listed:
    m = row._mapping
    return Listed(
        id=m["id"], kind=m["kind"], status=m["status"], regulation=m["regulation"],
        created_at=_aware(m["created_at"]) or datetime.now(UTC), deadline=_aware(m["deadline"]) or datetime.now(UTC),
        completed_at=_aware(m["completed_at"]), channel=m["channel"], subject_request_id=m["subject_request_id"],
    )  # fmt: skip


def find_by_reference(engine: sa.Engine, reference: str) -> str | None:
    """Our request ID for ``reference``: one of our IDs, or a platform's request ID."""
    query = sa.union(
        sa.select(requests.c.id).where(requests.c.id == reference),
        sa.select(service_requests.c.request_id).where(service_requests.c.subject_request_id == reference),
    )
    with engine.connect() as conn:
        found = conn.execute(query).scalars().first()
    return str(found) if found is not None else None


def requests_with_digests(engine: sa.Engine, digests: Sequence[str], *, limit: int = 200) -> list[str]:
    """The requests holding one of ``digests`` (``audit.identifier_digest``), from the indexed
    ``dsr_identifier_digests`` (``store/digests.py``): how an identifier is found without storing
    it in clear, in one index search."""
    with engine.connect() as conn:
        return digest_index.requests_with(conn, digests, limit=limit)


def subject_request_of(engine: sa.Engine, request_id: str) -> str | None:
    """The platform ID (OpenDSR ``subject_request_id``, DataGrail request) mapped to a request."""
    query = sa.select(service_requests.c.subject_request_id).where(service_requests.c.request_id == request_id)
    with engine.connect() as conn:
        found = conn.execute(query).scalars().first()
    return str(found) if found is not None else None


# --- DBOS, read from its own table -----------------------------------------------------------


def _workflow_table(engine: sa.Engine) -> str:
    return "dbos.workflow_status" if engine.dialect.name == "postgresql" else "workflow_status"


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    status: str
    workflows: int


def queue_depths(engine: sa.Engine) -> list[QueueDepth]:
    """Unfinished workflows (``ENQUEUED``, ``PENDING``) per queue and status."""
    sql = (
        f"SELECT COALESCE(queue_name, ''), status, COUNT(*) FROM {_workflow_table(engine)} "
        "WHERE status IN ('ENQUEUED', 'PENDING') GROUP BY queue_name, status ORDER BY 1, 2"
    )
    with engine.connect() as conn:
        return [QueueDepth(str(q), str(s), int(n)) for q, s, n in conn.exec_driver_sql(sql)]


@dataclass(frozen=True)
class ExecutorSeen:
    executor_id: str
    running: int  # workflows DBOS marks PENDING under this executor
    last_update: datetime | None  # the latest change DBOS recorded of one of them


def executors(engine: sa.Engine) -> list[ExecutorSeen]:
    """Executors that DBOS says run workflows now, with the latest recorded progress."""
    sql = (
        f"SELECT executor_id, COUNT(*), MAX(updated_at) FROM {_workflow_table(engine)} "
        "WHERE status = 'PENDING' GROUP BY executor_id ORDER BY executor_id"
    )
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(sql).all()
    return [
        ExecutorSeen(str(e or ""), int(n), datetime.fromtimestamp(int(u) / 1000, UTC) if u is not None else None)
        for e, n, u in rows
    ]


def stuck(engine: sa.Engine, older_than: dict[str, datetime], *, limit: int = 50) -> list[Listed]:
    """Requests still in one of ``older_than``'s states since before its time (the oldest
    first), in one query; each row's ``created_at`` holds when the request last changed."""
    if not older_than:
        return []
    r, s = requests.c, service_requests.c
    query = (
        sa.select(
            r.id, r.kind, r.status, r.regulation, r.updated_at.label("created_at"), r.deadline, r.completed_at,
            s.channel, s.subject_request_id,
        )
        .select_from(requests.outerjoin(service_requests, s.request_id == r.id))
        .where(sa.or_(*[sa.and_(r.status == state, r.updated_at < since) for state, since in older_than.items()]))
        .order_by(r.updated_at)
        .limit(limit)
    )  # fmt: skip
    with engine.connect() as conn:
        return [_listed(row) for row in conn.execute(query)]
