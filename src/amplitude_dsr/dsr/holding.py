"""Putting a request that already started on hold, and releasing it (the console, admin only).

What a hold can truthfully stop depends on where the request is:

* **Not started yet** (``received``, its workflow still ``ENQUEUED`` on its shared queue), access
  or deletion: its workflow moves onto :data:`hold.HOLD_QUEUE`, which no executor reads, in the
  same transaction as the status ``held`` and the ``put_on_hold`` audit entry. The move is one
  conditional statement on DBOS's own row (``status = 'ENQUEUED'`` on the shared queue), so an
  executor dequeuing it at the same moment wins or loses as a whole: a workflow that has just
  started is never marked held.
* **A deletion whose IDs wait in our queue** (``queued``, every ID still ``queued``, none in a
  POST or at Amplitude): its items and user IDs move to the item state ``held`` (the flusher claims
  only ``queued`` ones, ``store/repo.py claim_batch``), the request to ``held``. A flusher that
  claimed one of them meanwhile makes the hold refuse, changing nothing.
* Anything else is refused with the reason: resolving (its workflow is spending the user pool
  right now; hold it once it is queued), collecting (an access request's collection cannot be
  paused half-way), IDs already posted (Amplitude's deletion job cannot be paused; cancel while it
  is ``staging``), or finished.

:func:`release` undoes exactly what the hold did: the workflow back onto its shared queue (it
starts from the beginning, as it never ran), or the items back to ``queued`` and the request to
``queued`` with its projects' flushers started through ``DBOSClient``. Both are audited
(``put_on_hold``, ``released``: who and why).
"""

from __future__ import annotations

import contextlib
import secrets

import sqlalchemy as sa
from dbos._error import DBOSQueueDeduplicatedError

from amplitude_dsr.dsr.hold import HOLD_QUEUE
from amplitude_dsr.dsr.runtime import DELETION_QUEUE, JOBS_QUEUE, QUEUE, Runtime
from amplitude_dsr.errors import DomainError
from amplitude_dsr.states import RequestStatus, is_final
from amplitude_dsr.store import audit, repo
from amplitude_dsr.store.tables import deletion_items, deletion_names

S = RequestStatus
HELD_ITEM = "held"  # an item or user ID of a deletion on hold: never claimed into a batch
PUT_ON_HOLD = "put_on_hold"
RELEASED = "released"
SHARED_QUEUE = {"access": QUEUE, "deletion": DELETION_QUEUE}


def workflow_table(engine: sa.Engine) -> str:
    """DBOS's workflow table (its own schema on PostgreSQL, the same file on SQLite)."""
    return "dbos.workflow_status" if engine.dialect.name == "postgresql" else "workflow_status"


def move_enqueued(conn: sa.Connection, workflow_id: str, *, from_queue: str, to_queue: str) -> bool:
    """Move a workflow that is still ``ENQUEUED`` on ``from_queue`` onto ``to_queue``, in the
    caller's transaction; False when it is not (an executor dequeued it, or it is elsewhere)."""
    sql = sa.text(
        f"UPDATE {workflow_table(conn.engine)} SET queue_name = :to_queue "
        "WHERE workflow_uuid = :wid AND status = 'ENQUEUED' AND queue_name = :from_queue"
    )
    res = conn.execute(sql, {"to_queue": to_queue, "wid": workflow_id, "from_queue": from_queue})
    return res.rowcount == 1


def refusal(row: repo.RequestRow, items: list[repo.Item]) -> str | None:
    """Why a request cannot be put on hold now (``None``: it can). Pure."""
    if is_final(row.kind, row.status):
        return f"the request is already {row.status!r}: nothing is left to hold"
    if row.status == S.HELD:
        return "the request is already on hold"
    if row.status in (S.RESOLVING, S.RESOLVED):
        return f"it is {row.status} right now (its workflow is searching Amplitude); " + (
            "hold it once its IDs are queued" if row.kind == "deletion" else "it cannot be paused half-way"
        )
    if row.status == S.COLLECTING:
        return "its data is being collected from Amplitude; an access request can be held only before collection"
    if row.status == S.RECEIVED:
        return None
    if row.kind == "deletion" and row.status == S.QUEUED:
        posted = [i for i in items if i.state != "queued"]
        if posted:
            return (
                f"{len(posted)} of its IDs are already in a POST or at Amplitude; "
                "Amplitude's deletion job cannot be paused (cancel it while the job is 'staging')"
            )
        return None
    return (
        f"its IDs are already at Amplitude (the request is {row.status!r}): Amplitude's deletion job "
        "cannot be paused; a job can be cancelled while it is 'staging'"
    )


def put_on_hold(rt: Runtime, request_id: str, *, by: str, reason: str) -> str:
    """Hold a started request (see the module doc); returns what was held (``workflow`` or
    ``queued IDs``). Raises :class:`DomainError` with the reason when it cannot be held."""
    row = repo.get_request(rt.engine, request_id)
    items = repo.items_for(rt.engine, request_id) if row.kind == "deletion" else []
    why = refusal(row, items)
    if why is not None:
        raise DomainError(f"cannot hold: {why}")
    detail = {"by": by, "reason": reason, "was": row.status}
    with repo.write_tx(rt.engine) as conn:
        if row.status == S.RECEIVED:
            if not move_enqueued(conn, request_id, from_queue=SHARED_QUEUE[row.kind], to_queue=HOLD_QUEUE):
                raise DomainError(
                    "cannot hold: its workflow is no longer waiting on its queue (an executor has just started it, "
                    "or a command runs it); reload the page"
                )
            held = "workflow"
        else:
            hold_items(conn, request_id)
            held = "queued IDs"
        if not repo.move_from(conn, request_id, row.status, S.HELD):
            raise DomainError("cannot hold: the request changed meanwhile; reload and try again")
        audit.append(conn, request_id, PUT_ON_HOLD, {**detail, "held": held})
    return held


def hold_items(conn: sa.Connection, request_id: str) -> None:
    """Every queued item and user ID of the request to ``held``; refuses (the caller's transaction
    rolls back) when one of them is no longer queued: a flusher claimed it meanwhile. The update
    comes first, so on PostgreSQL it waits for a claim holding those rows and then sees it."""
    for table in (deletion_items, deletion_names):
        conn.execute(
            table.update().where(table.c.request_id == request_id, table.c.state == "queued").values(state=HELD_ITEM)
        )
        busy = conn.execute(
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c.request_id == request_id, table.c.state.not_in([HELD_ITEM, "queued"]))
        ).scalar_one()
        if busy:
            raise DomainError("cannot hold: a submission to Amplitude has just taken some of its IDs")


def held_by_console(entries: list[audit.AuditEntry]) -> bool:
    """Whether the request's latest hold is the console's (``put_on_hold``), not approval before
    erasure (``held``); the console offers Release for the first and Approve for the second."""
    kinds = [e.kind for e in entries if e.kind in (PUT_ON_HOLD, RELEASED, "held", "approved")]
    return bool(kinds) and kinds[-1] == PUT_ON_HOLD


def release(rt: Runtime, request_id: str, *, by: str, reason: str) -> str:
    """Release a request held by :func:`put_on_hold`, exactly where it was; returns the status it
    goes back to. Raises :class:`DomainError` when it is not on hold."""
    row = repo.get_request(rt.engine, request_id)
    with rt.engine.connect() as conn:
        entries = audit.entries(conn, request_id)
    if row.status != S.HELD:
        raise DomainError(f"cannot release: the request is not on hold (it is {row.status!r})")
    if not held_by_console(entries):
        raise DomainError("cannot release: this deletion waits for approval before erasure; approve it instead")
    back = S.QUEUED if any(i.state == HELD_ITEM for i in repo.items_for(rt.engine, request_id)) else S.RECEIVED
    with repo.write_tx(rt.engine) as conn:
        if back == S.RECEIVED:
            queue = SHARED_QUEUE[row.kind]
            if not move_enqueued(conn, request_id, from_queue=HOLD_QUEUE, to_queue=queue):
                raise DomainError("cannot release: its workflow is not waiting on hold; reload the page")
        else:
            for table in (deletion_items, deletion_names):
                conn.execute(
                    table.update()
                    .where(table.c.request_id == request_id, table.c.state == HELD_ITEM)
                    .values(state="queued")
                )
        if not repo.move_from(conn, request_id, S.HELD, back):
            raise DomainError("cannot release: the request changed meanwhile; reload and try again")
        audit.append(conn, request_id, RELEASED, {"by": by, "reason": reason, "to": str(back)})
    if back == S.QUEUED:
        start_flushers(rt, request_id)
    return str(back)


def start_flushers(rt: Runtime, request_id: str) -> None:
    """Enqueue the flusher of every project the request has IDs queued in, through
    ``DBOSClient`` (deduplicated by project as the executors' own starts are: one runs at a time);
    the executors' sweep would start them within seconds anyway."""
    projects = sorted({i.project for i in repo.items_for(rt.engine, request_id) if i.state == "queued"})
    with rt.engine.connect() as conn:
        named = conn.execute(
            sa.select(deletion_names.c.project)
            .where(deletion_names.c.request_id == request_id, deletion_names.c.state == "queued")
            .distinct()
        ).scalars()
        projects = sorted(set(projects) | {str(p) for p in named})
    client = rt.dbos_client()
    for project in projects:
        options = rt.enqueue_options("flush_workflow", JOBS_QUEUE, f"flush-{project}-{secrets.token_hex(6)}")
        options["deduplication_id"] = f"flush:{project}"
        with contextlib.suppress(DBOSQueueDeduplicatedError):  # one runs already: it sees them next round
            client.enqueue(options, project)


def drop_held(rt: Runtime, request_id: str) -> int:
    """After a cancel: the held items and user IDs of a cancelled request are ``cancelled`` too
    (user IDs forgotten). Returns how many."""
    with repo.write_tx(rt.engine) as conn:
        if repo.status_in(conn, request_id) != S.CANCELLED:
            return 0
        done = conn.execute(
            deletion_items.update()
            .where(deletion_items.c.request_id == request_id, deletion_items.c.state == HELD_ITEM)
            .values(state="cancelled")
        ).rowcount
        done += conn.execute(
            deletion_names.update()
            .where(deletion_names.c.request_id == request_id, deletion_names.c.state == HELD_ITEM)
            .values(state="cancelled", user_id=None)
        ).rowcount
    return int(done)
