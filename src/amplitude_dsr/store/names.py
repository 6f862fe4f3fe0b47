"""User IDs submitted as they are (the direct deletion path, ``docs/deletion.md``).

A name waits ``queued`` like an Amplitude ID, goes into a batch beside the Amplitude IDs
(``batched``; one entry per distinct user ID in a POST), and is settled by the receipt: Amplitude
answers with the Amplitude ID it resolved the user ID to (``include_mapped_user_ids``), which
becomes an ordinary deletion item of the request with the receipt's job (``mapped``), or lists it
in ``invalid_ids`` (``invalid``). A name the receipt does not settle (an uncertain POST, or a
receipt without the mapping) waits in ``lookup`` for a User Search that finds its Amplitude ID
(``dsr/direct.py``). The user ID is sealed while it waits and cleared once the name is settled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.store.audit import identifier_digest
from amplitude_dsr.store.tables import deletion_batches, deletion_items, deletion_names

PENDING_NAME_STATES = ("queued", "batched", "lookup")  # not settled by Amplitude yet


def _now() -> datetime:
    return datetime.now(UTC)


def queue_names(conn: sa.Connection, request_id: str, project: str, user_ids: Iterable[str], *, org_wide: bool) -> int:
    """Queue user IDs for deletion as they are (idempotent per request, project and user ID)."""
    have = set(
        conn.execute(
            sa.select(deletion_names.c.digest).where(
                deletion_names.c.request_id == request_id, deletion_names.c.project == project
            )
        ).scalars()
    )
    added = 0
    for user_id in dict.fromkeys(user_ids):
        digest = identifier_digest("user_id", user_id)
        if digest in have:
            continue
        conn.execute(
            deletion_names.insert().values(
                request_id=request_id, project=project, user_id=user_id, digest=digest, org_wide=org_wide,
                state="queued", created_at=_now(),
            )
        )  # fmt: skip
        have.add(digest)
        added += 1
    return added


def queued_counts(conn: sa.Connection, project: str | None = None) -> dict[tuple[str, bool], tuple[int, Any]]:
    """Per (project, org_wide): distinct user IDs queued and when the oldest was queued."""
    where: list[sa.ColumnElement[bool]] = [deletion_names.c.state == "queued"]
    if project is not None:
        where.append(deletion_names.c.project == project)
    rows = conn.execute(
        sa.select(
            deletion_names.c.project, deletion_names.c.org_wide, sa.func.count(sa.distinct(deletion_names.c.digest)),
            sa.func.min(deletion_names.c.created_at),
        ).where(*where).group_by(deletion_names.c.project, deletion_names.c.org_wide)
    ).all()  # fmt: skip
    return {(r[0], bool(r[1])): (int(r[2]), r[3]) for r in rows}


def claim(conn: sa.Connection, project: str, org_wide: bool, room: int) -> tuple[int, list[int]]:
    """Inside a claim's transaction: up to ``room`` distinct queued user IDs of ``project``;
    returns how many and the rows holding them (the caller puts them in its batch)."""
    if room <= 0:
        return 0, []
    rows = conn.execute(
        sa.select(deletion_names.c.id, deletion_names.c.digest)
        .where(
            deletion_names.c.state == "queued",
            deletion_names.c.project == project,
            deletion_names.c.org_wide == org_wide,
        )
        .order_by(deletion_names.c.id)
        .with_for_update(skip_locked=True)
    ).all()
    digests: dict[str, None] = {}
    row_ids: list[int] = []
    for row_id, digest in rows:
        if digest not in digests:
            if len(digests) >= room:
                continue
            digests[digest] = None
        row_ids.append(int(row_id))
    return len(digests), row_ids


def attach_to_batch(conn: sa.Connection, row_ids: Sequence[int], batch_id: str) -> None:
    if row_ids:
        conn.execute(
            deletion_names.update()
            .where(deletion_names.c.id.in_(list(row_ids)))
            .values(state="batched", batch_id=batch_id)
        )


def user_ids_of_batch(engine: sa.Engine, batch_id: str) -> list[str]:
    """The distinct user IDs a batch submits (in queue order)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deletion_names.c.user_id)
            .where(deletion_names.c.batch_id == batch_id)
            .order_by(deletion_names.c.id)
        ).scalars()
        return list(dict.fromkeys(str(u) for u in rows if u is not None))


def settle(
    conn: sa.Connection,
    batch_id: str,
    mapped: Mapping[str, Sequence[int]],
    id_days: Mapping[int, tuple[str, str]],
    invalid: Iterable[str],
    *,
    failed: bool = False,
) -> None:
    """Inside a receipt's transaction: settle the batch's names. A mapped user ID becomes one
    deletion item per Amplitude ID the receipt gives it (with that ID's job); an invalid one is
    ``invalid``; a refused batch's are ``failed``; any other waits in ``lookup``."""
    invalid_ids = set(invalid)
    rows = conn.execute(
        sa.select(deletion_names).where(deletion_names.c.batch_id == batch_id, deletion_names.c.state == "batched")
    ).all()
    for row in rows:
        user_id = str(row.user_id)
        ids = [i for i in mapped.get(user_id, ()) if i in id_days]
        if failed:
            values: dict[str, Any] = {"state": "failed", "user_id": None}
        elif ids:
            add_items(conn, row, ids, id_days, batch_id)
            values = {"state": "mapped", "user_id": None}
        elif user_id in invalid_ids:
            values = {"state": "invalid", "user_id": None}
        else:
            values = {"state": "lookup"}
        conn.execute(deletion_names.update().where(deletion_names.c.id == row.id).values(**values))


def add_items(
    conn: sa.Connection, row: Any, ids: Iterable[int], id_days: Mapping[int, tuple[str, str]], batch_id: str
) -> None:
    """Deletion items of ``row``'s request for ``ids``, receipted in their jobs (an ID the request
    already holds is left as it is)."""
    have = set(
        conn.execute(
            sa.select(deletion_items.c.amplitude_id).where(
                deletion_items.c.request_id == row.request_id, deletion_items.c.project == row.project
            )
        ).scalars()
    )
    for aid in dict.fromkeys(ids):
        if aid in have:
            continue
        day, status = id_days[aid]
        conn.execute(
            deletion_items.insert().values(
                request_id=row.request_id, project=row.project, amplitude_id=aid, org_wide=row.org_wide,
                state="receipted", batch_id=batch_id, job_day=day, job_status=status, created_at=_now(),
            )
        )  # fmt: skip


@dataclass(frozen=True)
class Lookup:
    """Names of one user ID in one batch whose outcome the receipt did not tell."""

    user_id: str
    batch_id: str
    row_ids: list[int]


def lookups(engine: sa.Engine, project: str) -> list[Lookup]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deletion_names.c.id, deletion_names.c.user_id, deletion_names.c.batch_id)
            .where(deletion_names.c.project == project, deletion_names.c.state == "lookup")
            .order_by(deletion_names.c.id)
        ).all()
    grouped: dict[tuple[str, str], list[int]] = {}
    for row_id, user_id, batch_id in rows:
        grouped.setdefault((str(user_id), str(batch_id)), []).append(int(row_id))
    return [Lookup(u, b, ids) for (u, b), ids in grouped.items()]


def finish_lookup(
    conn: sa.Connection,
    lookup: Lookup,
    outcome: str,
    *,
    ids: Sequence[int] = (),
    id_days: Mapping[int, tuple[str, str]] | None = None,
    receipt_jobs: Sequence[dict[str, Any]] = (),
) -> list[str]:
    """Settle a lookup: ``mapped`` (with the Amplitude IDs found in a job, whose listing is added to
    the batch's receipt), ``invalid`` (User Search knows no such user), or ``queued`` (Amplitude
    holds no job for it: submit it again). Only rows still in ``lookup`` change; returns their
    requests."""
    changed: list[str] = []
    rows = conn.execute(
        sa.select(deletion_names).where(deletion_names.c.id.in_(lookup.row_ids), deletion_names.c.state == "lookup")
    ).all()
    for row in rows:
        if outcome == "mapped":
            add_items(conn, row, ids, id_days or {}, lookup.batch_id)
            values: dict[str, Any] = {"state": "mapped", "user_id": None}
        elif outcome == "invalid":
            values = {"state": "invalid", "user_id": None}
        else:
            values = {"state": "queued", "batch_id": None}
        conn.execute(deletion_names.update().where(deletion_names.c.id == row.id).values(**values))
        changed.append(str(row.request_id))
    if changed and receipt_jobs:
        kept = conn.execute(
            sa.select(deletion_batches.c.receipt).where(deletion_batches.c.id == lookup.batch_id)
        ).scalar()
        jobs = list(kept or [])
        jobs += [j for j in receipt_jobs if j not in jobs]
        conn.execute(deletion_batches.update().where(deletion_batches.c.id == lookup.batch_id).values(receipt=jobs))
    return sorted(set(changed))


def busy(conn: sa.Connection, request_id: str) -> bool:
    """Whether one of the request's user IDs is in a POST right now or its outcome is unknown."""
    found = conn.execute(
        sa.select(deletion_names.c.id)
        .where(deletion_names.c.request_id == request_id, deletion_names.c.state.in_(["batched", "lookup"]))
        .limit(1)
    ).first()
    return found is not None


def cancel(conn: sa.Connection, request_id: str) -> int:
    """Drop the request's still-queued (or held) user IDs (and forget them)."""
    res = conn.execute(
        deletion_names.update()
        .where(deletion_names.c.request_id == request_id, deletion_names.c.state.in_(["queued", "held"]))
        .values(state="cancelled", user_id=None)
    )
    return int(res.rowcount)


def pending_exists(request_id_column: Any) -> Any:
    """An EXISTS over the request's names not yet settled (for correlated queries)."""
    return (
        sa.select(deletion_names.c.id)
        .where(deletion_names.c.request_id == request_id_column, deletion_names.c.state.in_(PENDING_NAME_STATES))
        .exists()
    )


def any_exists(request_id_column: Any) -> Any:
    return sa.select(deletion_names.c.id).where(deletion_names.c.request_id == request_id_column).exists()
