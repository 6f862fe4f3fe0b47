"""Storing requests: each request's row, its ``received`` audit entry and its workflow's enqueue
are written in one database transaction, so none of the three exists without the others.

DBOS keeps its queue in the same database as our tables (SQLite: the same file; PostgreSQL: the
``dbos`` schema of the same database), so :meth:`DBOSClient.enqueue_in_transaction` can put the
workflow's ENQUEUED row into our own transaction. Many requests share one transaction (a chunk):
a chunk is stored whole or not at all.

Audit chain: the ``received`` entries are appended last in the transaction, after the requests and
the enqueues, because the first append takes the audit writer lock (PostgreSQL) until commit;
appending inside the chunk's transaction keeps the chain in commit order on both dialects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.dsr.hold import HOLD_QUEUE
from amplitude_dsr.dsr.runtime import ACTIVE_WORKFLOW, DELETION_QUEUE, QUEUE, Runtime, enqueue
from amplitude_dsr.states import RequestStatus
from amplitude_dsr.store import audit, digests, repo
from amplitude_dsr.store.tables import requests

CHUNK_SIZE = 500  # requests per transaction
# More rows a caller writes in a chunk's transaction (dsr/api.py ``submit_prepared``): called with
# the transaction's connection and the chunk's (request ID, created) pairs, after the requests and
# their enqueues, before the audit entries.
Also = Callable[[sa.Connection, list[tuple[str, bool]]], None]


@dataclass(frozen=True)
class Prepared:
    """A validated request ready to store: its row and its audit digests."""

    row: repo.NewRequest
    digests: list[str]  # identifier_digest of each identifier (the audit entry never holds them in clear)
    held: bool = False  # stored ``held``, its workflow on the hold queue until approved (dsr/hold.py)


def workflow_of(kind: str) -> tuple[str, str]:
    """The workflow (its DBOS name) of a request kind and its shared queue."""
    return ("access_workflow", QUEUE) if kind == "access" else ("deletion_workflow", DELETION_QUEUE)


def store(
    rt: Runtime,
    prepared: Sequence[Prepared],
    *,
    chunk_size: int = CHUNK_SIZE,
    also: Also | None = None,
    engine: sa.Engine | None = None,
) -> list[tuple[str, bool]]:
    """Store ``prepared`` in transactions of ``chunk_size`` requests; per request, in order:
    (request ID, created). Requests already known (same idempotency key) are not stored again;
    their workflow is only looked after (:func:`reattach`). An exception leaves the chunk it hit
    unwritten and the earlier chunks committed: calling again with the same requests completes
    what is missing. ``also`` writes the caller's own rows in each chunk's transaction; ``engine``
    (default ``rt.engine``): another engine on the same database, carrying the same data key (the
    service's own pool, ``dsr.executor.api_engine``)."""
    results: list[tuple[str, bool]] = []
    for start in range(0, len(prepared), chunk_size):
        results += store_chunk(rt, prepared[start : start + chunk_size], also=also, engine=engine)
    return results


def store_chunk(
    rt: Runtime, chunk: Sequence[Prepared], *, also: Also | None = None, engine: sa.Engine | None = None
) -> list[tuple[str, bool]]:
    """One transaction: insert the requests, enqueue the new ones' workflows, write the caller's
    rows (``also``), append the new ones' ``received`` entries; commit. Then look after the
    already-known ones' workflows."""
    foreground = rt.foreground_queue
    client = rt.dbos_client()
    with repo.write_tx(engine or rt.engine) as conn:
        results = repo.insert_requests(conn, [p.row for p in chunk])
        new = [(rid, p) for (rid, created), p in zip(results, chunk, strict=True) if created]
        for rid, p in new:
            name, shared = workflow_of(p.row.kind)
            queue = HOLD_QUEUE if p.held else foreground or shared
            client.enqueue_in_transaction(conn, rt.enqueue_options(name, queue, rid), rid)
        held = [rid for rid, p in new if p.held]
        if held:
            conn.execute(requests.update().where(requests.c.id.in_(held)).values(status=RequestStatus.HELD))
        if also is not None:
            also(conn, results)
        entries: list[tuple[str, str, dict[str, Any]]] = []
        for rid, p in new:
            entries.append(
                (rid, "received", {"kind": p.row.kind, "identifiers": p.digests, "regulation": p.row.regulation})
            )
            if p.held:
                entries.append((rid, "held", {"until": "approved before erasure"}))
        audit.append_many(conn, entries)
        digests.record(conn, [(rid, p.digests) for rid, p in new])  # the console's search (store/digests.py)
    if foreground is not None:
        for rid, p in new:
            if p.held:
                continue
            # Remember it as this command's own, so closing the command hands it back unfinished.
            rt._own[rid] = workflow_of(p.row.kind)[1]
    known = {rid: p.row.kind for (rid, created), p in zip(results, chunk, strict=True) if not created}
    reattach(rt, known)
    return results


def reattach(rt: Runtime, known: dict[str, str]) -> None:
    """Workflows of already-known requests (request ID -> kind): one stored before workflows were
    enqueued in the same transaction may have none (enqueue it); in a foreground command, an
    unfinished one with no live executor is taken over here (:meth:`Runtime.run_here`). Finished
    ones, and those a worker runs, are left alone. One status query per chunk, not per request."""
    if not known:
        return
    found: list[Any] = rt.dbos_client().list_workflows(workflow_ids=list(known), load_input=False, load_output=False)
    statuses = {str(w.workflow_id): str(w.status) for w in found}
    for rid, kind in known.items():
        if rt.foreground_queue is not None:
            # This command waits for it: its deletion's verification may run here (Runtime.runs_here).
            rt._own.setdefault(rid, workflow_of(kind)[1])
        status = statuses.get(rid)
        if status is None or (rt.foreground_queue is not None and status in ACTIVE_WORKFLOW):
            name, queue = workflow_of(kind)
            enqueue(rt, name, rid, rid, queue=queue)
