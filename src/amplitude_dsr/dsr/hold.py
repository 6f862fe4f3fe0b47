"""Approval before erasure: deletions held until a person approves them.

A service started with ``--hold-erasures`` stores each new deletion with status ``held`` and its
workflow enqueued, in the same transaction as always (``dsr/intake.py``), but on
:data:`HOLD_QUEUE`, a queue no executor listens to: nothing is resolved, nothing is sent to
Amplitude. :func:`approve` moves the request back to ``received`` (audited ``approved``, with who
and why) and its workflow onto the deletion queue, where an executor dequeues it as any other.
A held deletion can be cancelled like any other (``api.cancel``: nothing reached Amplitude).
"""

from __future__ import annotations

from typing import Any

from amplitude_dsr.dsr.runtime import DELETION_QUEUE, Runtime
from amplitude_dsr.errors import DomainError
from amplitude_dsr.states import RequestStatus
from amplitude_dsr.store import audit, repo

HOLD_QUEUE = "amplitude-dsr-held"  # never listened to: a workflow here waits for approve()


def approve(rt: Runtime, request_id: str, *, by: str, reason: str) -> None:
    """Release a held deletion: status ``received`` and the ``approved`` audit entry in one
    transaction (only one of two concurrent approvers wins), then its workflow onto the deletion
    queue. Raises :class:`DomainError` when the request is not held. Calling it again after a
    failure between the two steps finishes the release."""
    row = repo.get_request(rt.engine, request_id)
    if row.kind != "deletion":
        raise DomainError("cannot approve: only deletions are held for approval")
    if row.status == RequestStatus.HELD:
        with repo.write_tx(rt.engine) as conn:
            if not repo.move_from(conn, request_id, RequestStatus.HELD, RequestStatus.RECEIVED):
                raise DomainError("cannot approve: the request changed meanwhile; reload and try again")
            audit.append(conn, request_id, "approved", {"by": by, "reason": reason})
    elif row.status != RequestStatus.RECEIVED:
        raise DomainError(f"cannot approve: the request is not held (it is {row.status!r})")
    client = rt.dbos_client()
    found: list[Any] = client.list_workflows(workflow_ids=[request_id], load_input=False, load_output=False)
    if found and found[0].queue_name == HOLD_QUEUE and found[0].status == "ENQUEUED":
        client.resume_workflow(request_id, queue_name=DELETION_QUEUE)
    elif row.status != RequestStatus.HELD:
        raise DomainError("cannot approve: the request is not held")
