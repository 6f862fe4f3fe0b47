"""Deletion work seen by Amplitude's unit, the job (a project and a job ``day``), rather than by
request: what a project's flusher still has to send, the jobs its tracker follows, and the
requests whose every job is done (ready to verify).

Every function is one or two queries over ``dsr_deletion_items`` joined with ``dsr_requests``;
a request that is final (or cancelled) no longer holds a job open.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.states import DELETION_FINAL, JOB_STATUS_ORDER, JobStatus, RequestStatus
from amplitude_dsr.store import names
from amplitude_dsr.store.repo import status_log, write_tx
from amplitude_dsr.store.tables import deletion_batches, deletion_items, deletion_names, requests

S = RequestStatus
PENDING_ITEM_STATES = ("queued", "batched")  # not settled by Amplitude yet
OPEN_BATCH_STATES = ("intent", "posting", "uncertain")  # a POST to send or to reconcile
# Statuses of a request waiting on its jobs (the tracker moves it along them).
WAITING: tuple[str, ...] = (S.QUEUED, S.STAGING, S.SUBMITTED, S.DONE)
STATUS_ORDER = JOB_STATUS_ORDER
DONE = JobStatus.DONE


@dataclass
class Job:
    """One deletion job as our items know it: its project, day, least advanced known status, how
    many of our IDs it holds, and when its first request was made. Its IDs and requests are read
    per job, when needed (:func:`job_sample`, :func:`requests_in_job`): a job may hold a hundred
    thousand of them, and a round touches only the jobs that changed."""

    project: str
    day: str
    status: str
    items: int = 0
    first_requested: datetime | None = None


SAMPLE_IDS = 1000  # our IDs per job used to recognise it in a listing (any of them identifies it)


def _live_requests() -> Any:
    return sa.select(requests.c.id).where(requests.c.status.not_in(sorted(DELETION_FINAL)))


def projects_to_flush(engine: sa.Engine) -> list[str]:
    """Projects with IDs (or user IDs) queued or batched, user IDs to look up, or a batch to send or
    to reconcile."""
    with engine.connect() as conn:
        queued = conn.execute(
            sa.select(deletion_items.c.project).where(deletion_items.c.state.in_(PENDING_ITEM_STATES)).distinct()
        ).scalars()
        open_batches = conn.execute(
            sa.select(deletion_batches.c.project).where(deletion_batches.c.state.in_(OPEN_BATCH_STATES)).distinct()
        ).scalars()
        named = conn.execute(
            sa.select(deletion_names.c.project).where(deletion_names.c.state.in_(names.PENDING_NAME_STATES)).distinct()
        ).scalars()
        return sorted(set(queued) | set(open_batches) | set(named))


def projects_of(engine: sa.Engine, request_ids: Sequence[str]) -> list[str]:
    """The projects holding deletion items of ``request_ids``."""
    found: set[str] = set()
    ids = list(request_ids)
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            found.update(
                conn.execute(
                    sa.select(deletion_items.c.project)
                    .where(deletion_items.c.request_id.in_(ids[start : start + 500]))
                    .distinct()
                ).scalars()
            )
    return sorted(found)


def has_submission_work(engine: sa.Engine, project: str) -> bool:
    """Whether ``project``'s flusher has anything left: queued IDs or an open batch."""
    with engine.connect() as conn:
        item = conn.execute(
            sa.select(deletion_items.c.id)
            .where(deletion_items.c.project == project, deletion_items.c.state.in_(PENDING_ITEM_STATES))
            .limit(1)
        ).first()
        if item is not None:
            return True
        name = conn.execute(
            sa.select(deletion_names.c.id)
            .where(deletion_names.c.project == project, deletion_names.c.state.in_(names.PENDING_NAME_STATES))
            .limit(1)
        ).first()
        if name is not None:
            return True
        batch = conn.execute(
            sa.select(deletion_batches.c.id)
            .where(deletion_batches.c.project == project, deletion_batches.c.state.in_(OPEN_BATCH_STATES))
            .limit(1)
        ).first()
        return batch is not None


def _open_conditions(project: str | None = None) -> list[Any]:
    """Receipted items whose job is not done yet, of requests that are not final (joined)."""
    conditions = [
        deletion_items.c.state == "receipted",
        deletion_items.c.job_day.is_not(None),
        sa.or_(deletion_items.c.job_status.is_(None), deletion_items.c.job_status != DONE),
        requests.c.status.not_in(sorted(DELETION_FINAL)),
    ]
    return conditions if project is None else [*conditions, deletion_items.c.project == project]


def _open_items(project: str | None = None) -> Any:
    """The open items' projects (see :func:`_open_conditions`)."""
    return (
        sa.select(deletion_items.c.project)
        .join(requests, requests.c.id == deletion_items.c.request_id)
        .where(*_open_conditions(project))
    )


def projects_to_track(engine: sa.Engine) -> list[str]:
    """Projects holding at least one job that is not done for a live request."""
    inner = _open_items().subquery()
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(inner.c.project).distinct()).scalars())


def open_jobs(engine: sa.Engine, project: str) -> list[Job]:
    """The jobs of ``project`` not done yet, one per job day, ordered by day: one grouped query,
    whatever the number of items (memory does not grow with the requests in flight)."""
    query = (
        sa.select(
            deletion_items.c.job_day,
            deletion_items.c.job_status,
            sa.func.count(deletion_items.c.id),
            sa.func.min(requests.c.created_at),
        )
        .join(requests, requests.c.id == deletion_items.c.request_id)
        .where(*_open_conditions(project))
        .group_by(deletion_items.c.job_day, deletion_items.c.job_status)
    )
    found: dict[str, Job] = {}
    with engine.connect() as conn:
        for day, status, count, created in conn.execute(query):
            job = found.setdefault(day, Job(project, day, status or "staging"))
            job.status = min(job.status, status or "staging", key=lambda s: STATUS_ORDER.get(s, 0))
            job.items += int(count)
            if created is not None and (job.first_requested is None or created < job.first_requested):
                job.first_requested = created
    return [found[d] for d in sorted(found)]


def job_sample(engine: sa.Engine, project: str, day: str, limit: int = SAMPLE_IDS) -> list[int]:
    """Up to ``limit`` of our open Amplitude IDs in the job of ``project`` at ``day``."""
    query = (
        sa.select(deletion_items.c.amplitude_id)
        .join(requests, requests.c.id == deletion_items.c.request_id)
        .where(*_open_conditions(project), deletion_items.c.job_day == day)
        .order_by(deletion_items.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [int(a) for a in conn.execute(query).scalars()]


PAGE = 1000  # requests of one job read at a time (a job may hold a hundred thousand)


def requests_in_job(
    conn: sa.Connection, project: str, day: str, *, after: str = "", limit: int | None = None
) -> list[str]:
    """The open requests with an item in the job of ``project`` at ``day``: up to ``limit``
    (:data:`PAGE`, read at call time) of them, in ID order, after ``after`` (a page; the next
    page starts after its last ID)."""
    query = (
        sa.select(deletion_items.c.request_id)
        .join(requests, requests.c.id == deletion_items.c.request_id)
        .where(*_open_conditions(project), deletion_items.c.job_day == day, deletion_items.c.request_id > after)
        .distinct()
        .order_by(deletion_items.c.request_id)
        .limit(limit or PAGE)
    )
    return list(conn.execute(query).scalars())


def waiting_in_job(
    engine: sa.Engine, project: str, day: str, *, after: str = "", limit: int | None = None
) -> list[str]:
    """The requests still waiting on their jobs (:data:`WAITING`) with a receipted item in the job
    of ``project`` at ``day``, whatever its status: up to ``limit`` (:data:`PAGE`), in ID order, after ``after``."""
    query = (
        sa.select(deletion_items.c.request_id)
        .join(requests, requests.c.id == deletion_items.c.request_id)
        .where(
            deletion_items.c.project == project,
            deletion_items.c.job_day == day,
            deletion_items.c.state == "receipted",
            requests.c.status.in_(list(WAITING)),
            deletion_items.c.request_id > after,
        )
        .distinct()
        .order_by(deletion_items.c.request_id)
        .limit(limit or PAGE)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def update_job(conn: sa.Connection, project: str, day: str, **values: str) -> int:
    """Set ``values`` (``job_status``; ``job_day`` when Amplitude moved the job) on every open
    receipted item in the job of ``project`` at ``day``, in one statement; returns the items set."""
    open_requests = sa.select(requests.c.id).where(requests.c.status.not_in(sorted(DELETION_FINAL)))
    result = conn.execute(
        deletion_items.update()
        .where(
            deletion_items.c.project == project,
            deletion_items.c.job_day == day,
            deletion_items.c.state == "receipted",
            deletion_items.c.request_id.in_(open_requests),
        )
        .values(**values)
    )
    return int(result.rowcount or 0)


def aggregate_statuses(engine: sa.Engine, request_ids: Sequence[str]) -> dict[str, str]:
    """Per request, the least advanced status among its receipted items' jobs (``staging`` when
    a job's status is unknown); requests with no receipted item are left out."""
    result: dict[str, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(request_ids), 500):
            chunk = list(request_ids[start : start + 500])
            rows = conn.execute(
                sa.select(deletion_items.c.request_id, deletion_items.c.job_status).where(
                    deletion_items.c.request_id.in_(chunk), deletion_items.c.state == "receipted"
                )
            )
            for request_id, status in rows:
                value = status or "staging"
                known = result.get(request_id)
                if known is None or STATUS_ORDER.get(value, 0) < STATUS_ORDER.get(known, 0):
                    result[request_id] = value
    return result


def advance_waiting(engine: sa.Engine, statuses: dict[str, str]) -> list[tuple[str, str, str]]:
    """Move each request still waiting on its jobs to its aggregate status, in one transaction
    (a statement per kind of move and 500 requests); returns (request ID, old status, new
    status) for those that changed. A request that is verifying, final or cancelled is never
    touched."""
    changed: list[tuple[str, str, str]] = []
    if not statuses:
        return changed
    with write_tx(engine) as conn:
        ids = sorted(statuses)
        current: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                sa.select(requests.c.id, requests.c.status).where(
                    requests.c.id.in_(ids[start : start + 500]), requests.c.status.in_(list(WAITING))
                )
            )
            current.update({r[0]: r[1] for r in rows})
        now = datetime.now().astimezone()
        moves: dict[tuple[str, str], list[str]] = defaultdict(list)
        for request_id, old in current.items():
            if statuses[request_id] != old:
                moves[(old, statuses[request_id])].append(request_id)
        # One statement per move and 500 requests (a job turning done moves them all alike), not
        # one per request: 100,000 round trips per job cost minutes on PostgreSQL (bench P-8).
        for (old, new), moving in moves.items():
            for start in range(0, len(moving), 500):
                moved = conn.execute(
                    requests.update()
                    .where(requests.c.id.in_(moving[start : start + 500]), requests.c.status == old)
                    .values(status=new, updated_at=now)
                    .returning(requests.c.id)
                ).scalars()
                changed += [(request_id, old, new) for request_id in sorted(moved)]
    for request_id, old, new in changed:
        status_log.info("request %s (%s): %s -> %s", request_id, "deletion", old, new)
    return changed


def unsettled_requests(engine: sa.Engine, project: str, *, limit: int = 1000) -> list[str]:
    """Requests of ``project`` still ``queued`` although Amplitude settled every one of their
    IDs: the round that stored the receipt did not get to move them (our database failed in
    between). The next flusher or tracker round moves them."""
    pending = (
        sa.select(deletion_items.c.id)
        .where(deletion_items.c.request_id == requests.c.id, deletion_items.c.state.in_(PENDING_ITEM_STATES))
        .exists()
    )
    in_project = (
        sa.select(deletion_items.c.id)
        .where(deletion_items.c.request_id == requests.c.id, deletion_items.c.project == project)
        .exists()
    )
    named_in_project = (
        sa.select(deletion_names.c.id)
        .where(deletion_names.c.request_id == requests.c.id, deletion_names.c.project == project)
        .exists()
    )
    query = (
        sa.select(requests.c.id)
        .where(
            requests.c.kind == "deletion",
            requests.c.status == S.QUEUED,
            sa.or_(in_project, named_in_project),
            ~pending,
            ~names.pending_exists(requests.c.id),
        )
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def ready_requests(engine: sa.Engine, request_ids: Sequence[str] | None = None, *, limit: int = 1000) -> list[str]:
    """Deletion requests waiting on jobs that have nothing left to wait for: no ID queued or in a
    POST, and every receipted ID in a job that is ``done`` (or none receipted at all: every ID was
    invalid or failed). Their verification (or final answer) is due."""
    blocking = (
        sa.select(deletion_items.c.id)
        .where(
            deletion_items.c.request_id == requests.c.id,
            sa.or_(
                deletion_items.c.state.in_(PENDING_ITEM_STATES),
                sa.and_(
                    deletion_items.c.state == "receipted",
                    sa.or_(deletion_items.c.job_status.is_(None), deletion_items.c.job_status != DONE),
                ),
            ),
        )
        .exists()
    )
    has_items = sa.select(deletion_items.c.id).where(deletion_items.c.request_id == requests.c.id).exists()
    query = (
        sa.select(requests.c.id)
        .where(
            requests.c.kind == "deletion",
            requests.c.status.in_(list(WAITING)),
            sa.or_(has_items, names.any_exists(requests.c.id)),
            ~blocking,
            ~names.pending_exists(requests.c.id),
        )
        .order_by(requests.c.created_at)
        .limit(limit)
    )
    with engine.connect() as conn:
        if request_ids is None:
            return list(conn.execute(query).scalars())
        found: list[str] = []
        ids = list(request_ids)
        for start in range(0, len(ids), 500):
            found += conn.execute(query.where(requests.c.id.in_(ids[start : start + 500]))).scalars()
        return found
