"""Identifier digests, indexed: how the console finds a person's requests.

Each request's identifiers are stored as their digests (``audit.identifier_digest``: ``sha256``
of ``kind:value``, exactly as its ``received`` audit entry records them) in
``dsr_identifier_digests``, keyed by (digest, request), written in the transaction that stores the
request (``dsr/intake.py``). A look-up is one index search instead of a scan of the audit trail.

Databases made before the table existed are filled once from the ``received`` entries
(:func:`backfill`, run when the console starts; its completion is recorded in ``dsr_meta``, so it
runs once per database). The identifier itself is never stored here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.store import meta
from amplitude_dsr.store.audit import dsr_audit
from amplitude_dsr.store.tables import identifier_digests

BACKFILLED = "identifier_digests_backfilled"
CHUNK = 5000  # audit entries read per transaction while backfilling


def _insert_ignoring_known(conn: sa.Connection) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the dialect (a request written twice, a backfill
    beside a live writer)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(identifier_digests).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(identifier_digests).on_conflict_do_nothing()


def record(conn: sa.Connection, requests: Iterable[tuple[str, Sequence[str]]]) -> int:
    """Store (request ID, its identifiers' digests) pairs in the caller's transaction; returns the
    rows offered. Idempotent."""
    rows = [{"digest": d, "request_id": rid} for rid, digests in requests for d in dict.fromkeys(digests)]
    if rows:
        conn.execute(_insert_ignoring_known(conn), rows)
    return len(rows)


def requests_with(conn: sa.Connection, digests: Sequence[str], *, limit: int = 200) -> list[str]:
    """The requests holding one of ``digests`` (one indexed query)."""
    if not digests:
        return []
    query = (
        sa.select(identifier_digests.c.request_id)
        .where(identifier_digests.c.digest.in_(list(digests)))
        .distinct()
        .limit(limit)
    )
    return [str(v) for v in conn.execute(query).scalars()]


def backfill(engine: sa.Engine) -> int:
    """Fill the table from every ``received`` audit entry, once per database; returns the digests
    offered (0 when it ran before)."""
    with engine.connect() as conn:
        if meta.get(conn, BACKFILLED) is not None:
            return 0
    offered, after = 0, 0
    while True:
        with engine.begin() as conn:
            entries = conn.execute(
                sa.select(dsr_audit.c.id, dsr_audit.c.request_id, dsr_audit.c.detail)
                .where(dsr_audit.c.kind == "received", dsr_audit.c.id > after)
                .order_by(dsr_audit.c.id)
                .limit(CHUNK)
            ).all()
            if not entries:
                meta.put_if_absent(conn, BACKFILLED, "1")
                return offered
            pairs = []
            for _, request_id, detail in entries:
                found = json.loads(detail) if isinstance(detail, str) else detail
                pairs.append((str(request_id), [str(d) for d in (found or {}).get("identifiers", [])]))
            offered += record(conn, pairs)
            after = int(entries[-1][0])
