"""A request's progress as one checkpointed step: its status change and the audit entry that
records it commit in one transaction, exactly once.

A workflow that moved a request and then audited the move took two steps (two checkpoints, two
commits); a crash between them left a status without its entry until recovery. Here both go in
one transaction, which also carries the step's identity (workflow ID and step number) as the
audit entry's write key: a step that committed but whose checkpoint DBOS never recorded runs
again on recovery, finds its entry and changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from amplitude_dsr.dsr.dbfaults import db_step
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.states import ACCESS_FINAL, DELETION_FINAL
from amplitude_dsr.store import audit, repo


def _write_key() -> str | None:
    workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
    return f"{workflow_id}#{step_id}" if workflow_id is not None and step_id is not None else None


@db_step
def record_step(
    rt: Runtime,
    request_id: str,
    status: str | None,
    *,
    kind: str | None = None,
    detail: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    unless: Sequence[str] = ("cancelled",),
    before: Sequence[tuple[str, dict[str, Any]]] = (),
    then: Callable[[sa.Connection], object] | None = None,
) -> bool:
    """Move the request to ``status`` (with ``fields``; a final status also sets
    ``completed_at``) unless it is in ``unless``, and append the audit entry ``kind`` (with
    ``detail``) if it moved (or when there is no status to set). ``before``: entries (kind,
    detail) appended ahead of it in the same transaction, for progress that needed no status of
    its own (an access request without a DSAR phase is resolved and completed in one go).
    ``then``: more writes that belong to the move, made in the same transaction only if it
    moved (a deletion's IDs are queued with its ``queued`` status; idempotent, as a step may run
    again). Returns whether it moved (True without a status)."""
    key = _write_key()
    fields = dict(fields or {})
    if status in ACCESS_FINAL | DELETION_FINAL:
        fields.setdefault("completed_at", datetime.now(UTC))
    try:
        with rt.engine.begin() as conn:
            if key is not None and audit.written(conn, key) is not None:
                return True  # this very step committed before its checkpoint was recorded
            change = None
            if status is not None:
                change = repo.advance_in(conn, request_id, status, unless=unless, **fields)
            moved = change is None or change.done
            if moved and then is not None:
                then(conn)
            if moved and kind is not None:
                for n, (early_kind, early_detail) in enumerate(before):
                    early_key = None if key is None else f"{key}/{n}"
                    audit.append(conn, request_id, early_kind, early_detail, write_key=early_key)
                audit.append(conn, request_id, kind, detail or {}, write_key=key)
    except sa.exc.IntegrityError:  # another execution of this very step wrote it first
        with rt.engine.connect() as conn:
            if key is None or audit.written(conn, key) is None:
                raise
        return True
    return repo.log_change(change) if change is not None else True


@db_step
def note_step(
    rt: Runtime, request_id: str, kind: str, detail: dict[str, Any], *, unless: Sequence[str] = ("cancelled",)
) -> bool:
    """Append the audit entry ``kind`` unless the request is in ``unless`` (False then): the
    check and the entry in one transaction, one checkpoint (a verification's outcome, which the
    certificate then cites, is only recorded for a request that was not cancelled meanwhile)."""
    key = _write_key()
    try:
        with rt.engine.begin() as conn:
            if key is not None and audit.written(conn, key) is not None:
                return True  # this very step committed before its checkpoint was recorded
            if repo.status_in(conn, request_id) in unless:
                return False
            audit.append(conn, request_id, kind, detail, write_key=key)
    except sa.exc.IntegrityError:  # another execution of this very step wrote it first
        with rt.engine.connect() as conn:
            if key is None or audit.written(conn, key) is None:
                raise
    return True


@db_step
def start_step(rt: Runtime, request_id: str, status: str) -> repo.RequestRow:
    """A workflow's first step: the request moves to ``status`` (unless it was cancelled) and is
    read back, in one transaction (one checkpoint instead of a read and a status step)."""
    with rt.engine.begin() as conn:
        change = repo.advance_in(conn, request_id, status)
    repo.log_change(change)
    return repo.get_request(rt.engine, request_id)
