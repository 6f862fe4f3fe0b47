"""What is left of a final request once its retention period is over (``dsr_requests.purged_at``).

The request keeps its row (status, dates, counts, where its files are) and its audit trail; its
identifiers are replaced by their digests (``audit.identifier_digest``, which the audit trail and
certificate already use) and the full resolution leaves its result. ``dsr/retention.py`` decides
when and also deletes the request's DBOS checkpoints and operator record.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.store import audit
from amplitude_dsr.store.tables import deletion_names, requests

PURGED_COLUMNS = ("purged_at",)  # added to an older dsr_requests table on start


def add_missing_columns(engine: sa.Engine) -> None:
    """Give a ``dsr_requests`` table made by an older version the columns it lacks (idempotent;
    two processes doing it at once agree)."""
    present = {c["name"] for c in sa.inspect(engine).get_columns(requests.name)}
    for name in PURGED_COLUMNS:
        if name in present:
            continue
        kind = requests.c[name].type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'ALTER TABLE "{requests.name}" ADD COLUMN "{name}" {kind}')
        except sa.exc.DBAPIError:
            if name not in {c["name"] for c in sa.inspect(engine).get_columns(requests.name)}:
                raise


def due(engine: sa.Engine, final: Mapping[str, Collection[str]], cutoff: datetime, limit: int) -> list[str]:
    """IDs of requests final (``final``: statuses per kind) since before ``cutoff``, not purged yet,
    oldest first."""
    kinds = sa.or_(*(sa.and_(requests.c.kind == kind, requests.c.status.in_(list(s))) for kind, s in final.items()))
    query = (
        sa.select(requests.c.id)
        .where(kinds, requests.c.purged_at.is_(None), requests.c.completed_at < cutoff)
        .order_by(requests.c.completed_at)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(query)]


def digested(identifiers: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """``identifiers`` with each value replaced by its digest (already digested ones kept)."""
    out = []
    for ident in identifiers:
        if "digest" in ident:
            out.append({"kind": ident["kind"], "digest": ident["digest"]})
        else:
            out.append({"kind": ident["kind"], "digest": audit.identifier_digest(ident["kind"], ident["value"])})
    return out


# Parts of a result that name the person: the resolution, and what the direct path submitted.
NAMING = ("resolution", "submitted_as_given")


def kept_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a purged request keeps of its result: everything but the full resolution."""
    if result is None:
        return None
    kept = {k: v for k, v in result.items() if k not in NAMING}
    for key in NAMING:
        if key in result:
            kept[f"{key}_digest"] = audit.content_digest(result[key])
    return kept


def purge(conn: sa.Connection, request_id: str, now: datetime) -> bool:
    """Replace the request's identifiers by digests and drop its resolution, once; True if this
    call did it (False: purged already, or gone)."""
    row = conn.execute(
        sa.select(requests.c.identifiers, requests.c.result).where(
            requests.c.id == request_id, requests.c.purged_at.is_(None)
        )
    ).first()
    if row is None:
        return False
    done = conn.execute(
        requests.update()
        .where(requests.c.id == request_id, requests.c.purged_at.is_(None))
        .values(identifiers=digested(row.identifiers), result=kept_result(row.result), purged_at=now, updated_at=now)
    )
    # User IDs the direct path submitted and Amplitude never settled (a request cancelled or
    # failed around them) are forgotten too.
    names = deletion_names.c
    conn.execute(
        deletion_names.update()
        .where(names.request_id == request_id, names.state.in_(["queued", "lookup"]))
        .values(state="cancelled")
    )
    conn.execute(deletion_names.update().where(names.request_id == request_id).values(user_id=None))
    return done.rowcount == 1
