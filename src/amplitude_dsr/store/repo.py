"""Reads and writes of our own tables. Every function takes a connection (or engine) and plain
values; transactions are chosen by the caller except where atomicity is the point (claims)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.errors import RequestNotFound
from amplitude_dsr.store import names, retention
from amplitude_dsr.store.audit import AUDIT_METADATA
from amplitude_dsr.store.audit import add_missing_columns as audit_columns
from amplitude_dsr.store.tables import METADATA, deletion_batches, deletion_items, deletion_names, requests

status_log = logging.getLogger("amplitude_dsr.status")  # one line per state change (the worker shows it)
MAX_IDS_PER_POST = 100  # User Privacy v1: at most 100 IDs per request (docs/amplitude.md#creating-deletions)
SCHEMA_ATTEMPTS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A sortable, unguessable ID: prefix, UTC timestamp, random suffix."""
    return f"{prefix}_{utcnow():%Y%m%d%H%M%S}_{secrets.token_hex(4)}"


def create_tables(engine: sa.Engine) -> None:
    """Create our tables and the audit trail's if missing (idempotent). Two processes starting at
    once on a new database (a worker and a CLI command) may both see a table missing and both
    create it: the loser of that race tries again and finds it."""
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            METADATA.create_all(engine)
            AUDIT_METADATA.create_all(engine)
            retention.add_missing_columns(engine)
            audit_columns(engine)
            return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def write_tx(engine: sa.Engine) -> Any:
    """A write transaction that takes the write lock up front on SQLite (``BEGIN IMMEDIATE``),
    so read-then-write sequences (claims) cannot interleave across processes."""
    if engine.dialect.name == "sqlite":
        return _SqliteImmediate(engine)
    return engine.begin()


class _SqliteImmediate:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def __enter__(self) -> sa.Connection:
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.conn.exec_driver_sql("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            self.conn.exec_driver_sql("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.conn.close()


@dataclass(frozen=True)
class RequestRow:
    id: str
    kind: str
    status: str
    regulation: str
    created_at: datetime
    updated_at: datetime
    deadline: datetime
    completed_at: datetime | None
    identifiers: list[dict[str, str]]
    options: dict[str, Any]
    result: dict[str, Any] | None
    out_dir: str | None
    error: str | None
    idempotency_key: str | None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _row(r: sa.Row[Any]) -> RequestRow:
    m = r._mapping
    return RequestRow(
        id=m["id"], kind=m["kind"], status=m["status"], regulation=m["regulation"],
        created_at=_aware(m["created_at"]) or utcnow(), updated_at=_aware(m["updated_at"]) or utcnow(),
        deadline=_aware(m["deadline"]) or utcnow(), completed_at=_aware(m["completed_at"]),
        identifiers=m["identifiers"], options=m["options"], result=m["result"],
        out_dir=m["out_dir"], error=m["error"], idempotency_key=m["idempotency_key"],
    )  # fmt: skip


def insert_request(
    engine: sa.Engine,
    *,
    kind: str,
    identifiers: list[dict[str, str]],
    options: dict[str, Any],
    regulation: str,
    deadline_days: int,
    idempotency_key: str | None = None,
    request_id: str | None = None,
) -> tuple[RequestRow, bool]:
    """Insert a request (status ``received``). With an ``idempotency_key`` already present, return
    the existing request instead; the boolean says whether a new one was created. Race-free:
    see :func:`insert_requests`."""
    new = NewRequest(kind, identifiers, options, regulation, deadline_days, idempotency_key, request_id or "")
    with write_tx(engine) as conn:
        [(rid, created)] = insert_requests(conn, [new])
    return get_request(engine, rid), created


@dataclass(frozen=True)
class NewRequest:
    """A request to insert with :func:`insert_requests` (``request_id`` empty: a new one)."""

    kind: str
    identifiers: list[dict[str, str]]
    options: dict[str, Any]
    regulation: str
    deadline_days: int
    idempotency_key: str | None = None
    request_id: str = ""


def insert_requests(conn: sa.Connection, new: Sequence[NewRequest]) -> list[tuple[str, bool]]:
    """Insert many requests (status ``received``) in the caller's transaction; per request, in
    order: (request ID, created). A request whose ``idempotency_key`` is already taken, by an
    earlier request, by one committed by another process meanwhile, or by one earlier in ``new``,
    is not inserted and returns the holder's ID with ``created`` False.

    Race-free on both dialects: ``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING``, then the
    holders are read back. On PostgreSQL the insert waits for another transaction inserting the
    same key and then yields to it; keys are inserted in sorted order, so two bulk inserts of the
    same keys never wait on each other in a cycle."""
    if not new:
        return []
    now = utcnow()
    ids = [n.request_id or new_id("dsr") for n in new]
    values: list[dict[str, Any]] = [
        {
            "id": rid, "kind": n.kind, "status": "received", "regulation": n.regulation, "created_at": now,
            "updated_at": now, "deadline": now + timedelta(days=n.deadline_days), "identifiers": n.identifiers,
            "options": n.options, "idempotency_key": n.idempotency_key,
        }
        for rid, n in zip(ids, new, strict=True)
    ]  # fmt: skip
    unique: dict[str, dict[str, Any]] = {}
    unkeyed = []
    for v in values:
        key = v["idempotency_key"]
        if key is None:
            unkeyed.append(v)
        else:
            unique.setdefault(key, v)
    rows = [unique[k] for k in sorted(unique)] + unkeyed
    conn.execute(_insert_ignoring_taken_keys(conn), rows)
    holders: dict[str, str] = {}
    keys = sorted(unique)
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        found = conn.execute(
            sa.select(requests.c.idempotency_key, requests.c.id).where(requests.c.idempotency_key.in_(part))
        )
        holders.update({str(k): str(i) for k, i in found})
    out: list[tuple[str, bool]] = []
    for rid, v in zip(ids, values, strict=True):
        key = v["idempotency_key"]
        holder = rid if key is None else holders[key]
        out.append((holder, holder == rid))
    return out


def _insert_ignoring_taken_keys(conn: sa.Connection) -> Any:
    """``INSERT INTO dsr_requests ... ON CONFLICT (idempotency_key) DO NOTHING`` for the dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(requests).on_conflict_do_nothing(index_elements=[requests.c.idempotency_key])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(requests).on_conflict_do_nothing(index_elements=[requests.c.idempotency_key])


def get_request(engine: sa.Engine, request_id: str) -> RequestRow:
    """The request, or :class:`RequestNotFound`."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(requests).where(requests.c.id == request_id)).first()
    if row is None:
        raise RequestNotFound(f"no request {request_id!r}")
    return _row(row)


def get_requests(engine: sa.Engine, request_ids: Sequence[str]) -> dict[str, RequestRow]:
    """The requests of ``request_ids`` that exist, by ID (read in chunks of 500)."""
    found: dict[str, RequestRow] = {}
    with engine.connect() as conn:
        for start in range(0, len(request_ids), 500):
            part = list(request_ids[start : start + 500])
            for r in conn.execute(sa.select(requests).where(requests.c.id.in_(part))):
                row = _row(r)
                found[row.id] = row
    return found


def list_requests(engine: sa.Engine, *, limit: int = 200) -> list[RequestRow]:
    """Newest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(requests).order_by(requests.c.created_at.desc()).limit(limit)).all()
    return [_row(r) for r in rows]


def update_request(engine: sa.Engine, request_id: str, **fields: Any) -> None:
    """Set ``fields`` (and ``updated_at``)."""
    with engine.begin() as conn:
        before = _status_of(conn, request_id) if "status" in fields else None
        conn.execute(requests.update().where(requests.c.id == request_id).values(updated_at=utcnow(), **fields))
    _log_change(request_id, before, fields.get("status"))


def advance_request(
    engine: sa.Engine, request_id: str, status: str, *, unless: Sequence[str] = ("cancelled",), **fields: Any
) -> bool:
    """Set ``status`` (and ``fields``) unless the request is already in one of ``unless``: a
    workflow's progress never overwrites a cancel that happened beside it. False if it was."""
    with engine.begin() as conn:
        change = advance_in(conn, request_id, status, unless=unless, **fields)
    return log_change(change)


@dataclass(frozen=True)
class Change:
    """A status change made in a caller's transaction, logged once it committed."""

    request_id: str
    before: tuple[str, str] | None
    status: str | None
    done: bool


def advance_in(
    conn: sa.Connection, request_id: str, status: str, *, unless: Sequence[str] = ("cancelled",), **fields: Any
) -> Change:
    """:func:`advance_request` inside the caller's transaction (log it with :func:`log_change`
    after the commit)."""
    before = _status_of(conn, request_id)
    res = conn.execute(
        requests.update()
        .where(requests.c.id == request_id, requests.c.status.not_in(list(unless)))
        .values(status=status, updated_at=utcnow(), **fields)
    )
    return Change(request_id, before, status, res.rowcount == 1)


def move_from(conn: sa.Connection, request_id: str, before: str, status: str, **fields: Any) -> bool:
    """Compare and set, in the caller's transaction: move the request from ``before`` to
    ``status`` (with ``fields``); False when it is no longer in ``before`` (moved meanwhile)."""
    res = conn.execute(
        requests.update()
        .where(requests.c.id == request_id, requests.c.status == before)
        .values(status=status, updated_at=utcnow(), **fields)
    )
    return res.rowcount == 1


def log_change(change: Change) -> bool:
    """Log a committed :class:`Change`; returns whether it happened."""
    if change.done:
        _log_change(change.request_id, change.before, change.status)
    return change.done


def status_in(conn: sa.Connection, request_id: str) -> str | None:
    """The request's status, read in the caller's transaction (None: no such request)."""
    found = _status_of(conn, request_id)
    return found[1] if found else None


def _status_of(conn: sa.Connection, request_id: str) -> tuple[str, str] | None:
    row = conn.execute(sa.select(requests.c.kind, requests.c.status).where(requests.c.id == request_id)).first()
    return (row[0], row[1]) if row else None


def _log_change(request_id: str, before: tuple[str, str] | None, status: str | None) -> None:
    """``request <id> (<kind>): <old> -> <new>``: no identifier, only the request's own ID."""
    if before is not None and status is not None and before[1] != status:
        status_log.info("request %s (%s): %s -> %s", request_id, before[0], before[1], status)


def count_requests_in(engine: sa.Engine, kind: str, statuses: Sequence[str]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(requests)
                .where(requests.c.kind == kind, requests.c.status.in_(list(statuses)))
            ).scalar_one()
        )


# ---- deletion items and batches -----------------------------------------------------------


def queue_items(
    engine: sa.Engine, request_id: str, project: str, amplitude_ids: Iterable[int], *, org_wide: bool
) -> int:
    """Queue Amplitude IDs for deletion (idempotent per request, project and ID)."""
    with write_tx(engine) as conn:
        return queue_items_in(conn, request_id, project, amplitude_ids, org_wide=org_wide)


def queue_items_in(
    conn: sa.Connection, request_id: str, project: str, amplitude_ids: Iterable[int], *, org_wide: bool
) -> int:
    """:func:`queue_items` inside the caller's transaction; returns how many were added."""
    now = utcnow()
    have = {
        r[0]
        for r in conn.execute(
            sa.select(deletion_items.c.amplitude_id).where(
                deletion_items.c.request_id == request_id, deletion_items.c.project == project
            )
        )
    }
    rows = [
        {"request_id": request_id, "project": project, "amplitude_id": aid, "org_wide": org_wide,
         "state": "queued", "created_at": now}
        for aid in dict.fromkeys(amplitude_ids) if aid not in have
    ]  # fmt: skip
    if rows:
        conn.execute(deletion_items.insert(), rows)
    return len(rows)


@dataclass(frozen=True)
class Batch:
    id: str
    project: str
    org_wide: bool
    state: str
    amplitude_ids: list[int]
    created_at: datetime
    posted_at: datetime | None
    receipt: list[dict[str, Any]] | None
    posted_by: str | None = None


def _batch(r: sa.Row[Any]) -> Batch:
    m = r._mapping
    return Batch(
        id=m["id"], project=m["project"], org_wide=bool(m["org_wide"]), state=m["state"],
        amplitude_ids=[int(i) for i in m["amplitude_ids"]], created_at=_aware(m["created_at"]) or utcnow(),
        posted_at=_aware(m["posted_at"]), receipt=m["receipt"], posted_by=m["posted_by"],
    )  # fmt: skip


def queued_summary(engine: sa.Engine, project: str | None = None) -> list[tuple[str, bool, int, datetime]]:
    """Per (project, org_wide): how many IDs (Amplitude IDs and user IDs) are queued and when the
    oldest was queued."""
    where: list[sa.ColumnElement[bool]] = [deletion_items.c.state == "queued"]
    if project is not None:
        where.append(deletion_items.c.project == project)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                deletion_items.c.project, deletion_items.c.org_wide,
                sa.func.count(sa.distinct(deletion_items.c.amplitude_id)),
                sa.func.min(deletion_items.c.created_at),
            ).where(*where)
            .group_by(deletion_items.c.project, deletion_items.c.org_wide)
        ).all()  # fmt: skip
        named = names.queued_counts(conn, project)
    summary: dict[tuple[str, bool], tuple[int, datetime]] = {}
    for r in rows:
        summary[(r[0], bool(r[1]))] = (int(r[2]), _aware(r[3]) or utcnow())
    for key, (count, oldest) in named.items():
        have, since = summary.get(key, (0, _aware(oldest) or utcnow()))
        summary[key] = (have + count, min(since, _aware(oldest) or utcnow()))
    return [(p, o, n, t) for (p, o), (n, t) in sorted(summary.items())]


def pick_batch(rows: Sequence[tuple[int, int]], min_ids: int = 1) -> tuple[list[int], list[int]]:
    """From queued ``(item id, Amplitude ID)`` rows in queue order: the first
    :data:`MAX_IDS_PER_POST` distinct Amplitude IDs and every item holding one of them. Nothing
    (two empty lists) when fewer than ``min_ids`` distinct IDs are queued."""
    ids: dict[int, None] = {}
    item_ids: list[int] = []
    for item_id, aid in rows:
        if aid not in ids:
            if len(ids) >= MAX_IDS_PER_POST:
                continue
            ids[int(aid)] = None
        item_ids.append(item_id)
    if not ids or len(ids) < min_ids:
        return [], []
    return list(ids), item_ids


CLAIM_PAGE = 1000  # queued items read at a time while picking a batch


def _claimable_rows(conn: sa.Connection, project: str, org_wide: bool) -> list[tuple[int, int]]:
    """The queued ``(item id, Amplitude ID)`` rows :func:`pick_batch` needs, in queue order: pages
    of :data:`CLAIM_PAGE` until :data:`MAX_IDS_PER_POST` distinct IDs are seen, then the later
    items holding one of them. The same pick as from every queued row, without reading (or, on
    PostgreSQL, locking) a hundred thousand of them for each POST."""
    queued = [
        deletion_items.c.state == "queued",
        deletion_items.c.project == project,
        deletion_items.c.org_wide == org_wide,
    ]
    select = sa.select(deletion_items.c.id, deletion_items.c.amplitude_id).order_by(deletion_items.c.id)
    rows: list[tuple[int, int]] = []
    distinct: set[int] = set()
    while len(distinct) < MAX_IDS_PER_POST:
        after = [deletion_items.c.id > rows[-1][0]] if rows else []
        page = [(int(r[0]), int(r[1])) for r in conn.execute(
            select.where(*queued, *after).limit(CLAIM_PAGE).with_for_update(skip_locked=True)
        )]  # fmt: skip
        rows += page
        distinct.update(aid for _, aid in page)
        if len(page) < CLAIM_PAGE:
            return rows
    picked = pick_batch(rows)[0]
    rows += [(int(r[0]), int(r[1])) for r in conn.execute(
        select.where(*queued, deletion_items.c.id > rows[-1][0], deletion_items.c.amplitude_id.in_(picked))
        .with_for_update(skip_locked=True)
    )]  # fmt: skip
    return rows


def claim_batch(engine: sa.Engine, project: str, org_wide: bool, *, min_ids: int = 1) -> Batch | None:
    """Atomically move up to 100 distinct queued IDs of ``project`` (Amplitude IDs first, then
    user IDs of the direct path, ``store/names.py``) into a new batch (``intent``),
    or nothing when fewer than ``min_ids`` are queued (so two flushers reading the same count
    cannot turn one full batch into a full one and a stray partial one).

    The same Amplitude ID queued by several requests goes into the batch once and all its items
    point at the batch.
    """
    with write_tx(engine) as conn:
        ids, item_ids = pick_batch(_claimable_rows(conn, project, org_wide))
        named, name_rows = names.claim(conn, project, org_wide, MAX_IDS_PER_POST - len(ids))
        if (not ids and not named) or len(ids) + named < min_ids:
            return None
        batch_id = new_id("batch")
        now = utcnow()
        conn.execute(
            deletion_batches.insert().values(
                id=batch_id, project=project, org_wide=org_wide, state="intent",
                amplitude_ids=ids, created_at=now,
            )
        )  # fmt: skip
        conn.execute(
            deletion_items.update().where(deletion_items.c.id.in_(item_ids)).values(state="batched", batch_id=batch_id)
        )
        names.attach_to_batch(conn, name_rows, batch_id)
    return Batch(batch_id, project, org_wide, "intent", ids, now, None, None)


def get_batch(engine: sa.Engine, batch_id: str) -> Batch:
    with engine.connect() as conn:
        row = conn.execute(sa.select(deletion_batches).where(deletion_batches.c.id == batch_id)).one()
    return _batch(row)


def batch_error(engine: sa.Engine, batch_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(deletion_batches.c.error).where(deletion_batches.c.id == batch_id)).scalar()


def batches_in(engine: sa.Engine, states: Sequence[str], project: str | None = None) -> list[Batch]:
    where: list[sa.ColumnElement[bool]] = [deletion_batches.c.state.in_(list(states))]
    if project is not None:
        where.append(deletion_batches.c.project == project)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(deletion_batches).where(*where).order_by(deletion_batches.c.created_at)).all()
    return [_batch(r) for r in rows]


def mark_posting(engine: sa.Engine, batch_id: str, posted_by: str) -> bool:
    """``intent`` -> ``posting`` just before the POST. False if the batch was not in ``intent``
    (another attempt already posted it): then the caller must not POST."""
    with engine.begin() as conn:
        res = conn.execute(
            deletion_batches.update()
            .where(deletion_batches.c.id == batch_id, deletion_batches.c.state == "intent")
            .values(state="posting", posted_at=utcnow(), posted_by=posted_by)
        )
    return res.rowcount == 1


def record_receipt(
    engine: sa.Engine,
    batch_id: str,
    receipt: list[dict[str, Any]],
    id_days: dict[int, tuple[str, str]],
    invalid_ids: Iterable[int],
    *,
    state: str = "receipted",
    requeue_ids: Iterable[int] = (),
    from_state: str = "posting",
    error: str | None = None,
    mapped: dict[str, list[int]] | None = None,
    invalid_names: Iterable[str] = (),
) -> bool:
    """Store Amplitude's receipt; items get their job ``day`` and status. IDs Amplitude called
    invalid are marked ``invalid``; ``requeue_ids`` (absent from every job after reconciliation)
    go back to the queue. User IDs of the batch are settled by ``mapped`` (user ID -> the Amplitude
    IDs the receipt resolved it to) and ``invalid_names`` (:func:`names.settle`).

    Only a batch still in ``from_state`` is settled (False otherwise, and nothing changes): two
    reconcilers of one dead POST, or a late poster and a reconciler, settle it exactly once."""
    requeue = set(requeue_ids)
    with write_tx(engine) as conn:
        res = conn.execute(
            deletion_batches.update()
            .where(deletion_batches.c.id == batch_id, deletion_batches.c.state == from_state)
            .values(state=state, receipt=receipt, error=error)
        )
        if res.rowcount != 1:
            return False
        items = conn.execute(
            sa.select(deletion_items.c.id, deletion_items.c.amplitude_id).where(
                deletion_items.c.batch_id == batch_id, deletion_items.c.state == "batched"
            )
        ).all()
        for item_id, raw_aid in items:
            aid = int(raw_aid)
            if aid in id_days:
                day, status = id_days[aid]
                values: dict[str, Any] = {"state": "receipted", "job_day": day, "job_status": status}
            elif aid in requeue:
                values = {"state": "queued", "batch_id": None}
            elif state == "failed":
                values = {"state": "failed"}
            else:  # listed in invalid_ids, or absent from every job of the receipt
                values = {"state": "invalid"}
            conn.execute(deletion_items.update().where(deletion_items.c.id == item_id).values(**values))
        names.settle(conn, batch_id, mapped or {}, id_days, invalid_names, failed=state == "failed")
    return True


def mark_batch(
    engine: sa.Engine, batch_id: str, state: str, error: str | None = None, *, from_state: str = "posting"
) -> bool:
    """Move a batch from ``from_state`` to ``state``; False if it was no longer in ``from_state``."""
    with engine.begin() as conn:
        res = conn.execute(
            deletion_batches.update()
            .where(deletion_batches.c.id == batch_id, deletion_batches.c.state == from_state)
            .values(state=state, error=error)
        )
    return res.rowcount == 1


@dataclass(frozen=True)
class Item:
    project: str
    amplitude_id: int
    state: str
    batch_id: str | None
    job_day: str | None
    job_status: str | None
    org_wide: bool


def items_for(engine: sa.Engine, request_id: str) -> list[Item]:
    with engine.connect() as conn:
        return items_in(conn, request_id)


def items_in(conn: sa.Connection, request_id: str) -> list[Item]:
    rows = conn.execute(
        sa.select(deletion_items).where(deletion_items.c.request_id == request_id).order_by(deletion_items.c.id)
    ).all()
    return [
        Item(r.project, int(r.amplitude_id), r.state, r.batch_id, r.job_day, r.job_status, bool(r.org_wide))
        for r in rows
    ]


def cancel_items(engine: sa.Engine, request_id: str, *, only_queued: bool) -> int | None:
    """Mark a request's items cancelled (only still-queued ones when ``only_queued``). ``None``,
    and nothing changed, when one of its items is in a batch being submitted right now: checked
    in the same transaction, so a flusher cannot claim an item the cancel is about to drop."""
    # "held": a deletion put on hold in the console (dsr/holding.py); its IDs were never posted.
    states = ["queued", "held"] if only_queued else ["queued", "held", "receipted"]
    with write_tx(engine) as conn:
        busy = conn.execute(
            sa.select(sa.func.count())
            .select_from(deletion_items)
            .where(deletion_items.c.request_id == request_id, deletion_items.c.state == "batched")
        ).scalar_one()
        if busy or names.busy(conn, request_id):
            return None
        dropped = names.cancel(conn, request_id)
        res = conn.execute(
            deletion_items.update()
            .where(deletion_items.c.request_id == request_id, deletion_items.c.state.in_(states))
            .values(state="cancelled")
        )
    return int(res.rowcount) + dropped


def requests_of_batch(conn: sa.Connection, batch_id: str) -> list[str]:
    """The requests whose items (or user IDs) went into ``batch_id``."""
    rows = conn.execute(
        sa.select(deletion_items.c.request_id).where(deletion_items.c.batch_id == batch_id).distinct()
    ).all()
    named = conn.execute(
        sa.select(deletion_names.c.request_id).where(deletion_names.c.batch_id == batch_id).distinct()
    ).all()
    return sorted({r[0] for r in rows} | {r[0] for r in named})


def move_job_day(engine: sa.Engine, request_id: str, project: str, old_day: str, *, new_day: str, status: str) -> int:
    """Record that Amplitude moved the job holding the request's IDs from ``old_day`` to
    ``new_day`` (with its current ``status``); returns the items moved."""
    with engine.begin() as conn:
        res = conn.execute(
            deletion_items.update()
            .where(
                deletion_items.c.request_id == request_id,
                deletion_items.c.project == project,
                deletion_items.c.job_day == old_day,
                deletion_items.c.state == "receipted",
            )
            .values(job_day=new_day, job_status=status)
        )
    return int(res.rowcount)
