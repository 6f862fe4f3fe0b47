"""Retrying a failed request (the console, admin only): a fresh run from where it is safe to
restart, never a second POST of an ID Amplitude accepted.

Where a run restarts is read from the stored state, not guessed:

* **Access**, or a **deletion that failed before any ID was queued** (resolution): its workflow
  runs again from the start under a new workflow ID, ``<request ID>-retry-<n>``.
* **A deletion whose IDs were queued**: receipted IDs keep their receipt and are never posted
  again. IDs Amplitude refused for good go back to the queue, unless it refused them as a bad
  request (HTTP 400/422: the same POST would be refused the same way, so the retry is refused with
  that reason). With IDs to post, the request goes back to ``queued`` and its projects' flushers
  start; the verification of the first run is removed from DBOS (its outcome is in the audit
  trail) so that the flusher or tracker can start it again under its usual ID. With nothing to
  post (every job done), the verification runs again under ``<request ID>-retry-<n>``.

Refused, with the reason: a request that is not ``failed``; one with a run still going; user IDs
submitted as given that Amplitude refused (they are not kept once settled); IDs in jobs that are
not done yet. The request's row, the ``retried`` audit entry (who, why, what restarts) and the new
workflow's enqueue are one transaction (``DBOSClient.enqueue_in_transaction``, the path submitters
use); nothing runs in the calling process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.dsr.finish import verification_id
from amplitude_dsr.dsr.holding import start_flushers
from amplitude_dsr.dsr.runtime import DELETION_QUEUE, QUEUE, VERIFY_QUEUE, Runtime
from amplitude_dsr.errors import DomainError
from amplitude_dsr.states import WORKFLOW_ACTIVE, WORKFLOW_FINAL, RequestStatus
from amplitude_dsr.store import audit, repo
from amplitude_dsr.store.tables import deletion_batches, deletion_items, deletion_names

S = RequestStatus
RETRIED = "retried"
BAD_REQUEST = re.compile(r"\((400|422) ")  # how errors.AmplitudeError.__str__ writes the status


@dataclass(frozen=True)
class Plan:
    """What a retry restarts: ``resolution`` (the request's workflow from the start),
    ``submission`` (refused IDs back to the queue, the flushers) or ``verification``."""

    restart: str
    requeue: int = 0


def bad_request(error: str | None) -> bool:
    """Whether a failed batch's stored error is Amplitude refusing the request as malformed."""
    return bool(error and BAD_REQUEST.search(error))


def plan(row: repo.RequestRow, items: list[repo.Item], failed_names: int, batch_errors: list[str | None]) -> Plan:
    """Where a failed request restarts, or :class:`DomainError` with why it must not. Pure:
    ``batch_errors`` are the stored errors of the batches holding its refused IDs."""
    if row.status != S.FAILED:
        raise DomainError(f"cannot retry: only a failed request can be retried (it is {row.status!r})")
    if row.kind == "access" or (not items and not failed_names):
        return Plan("resolution")
    if failed_names:
        raise DomainError(
            f"cannot retry: Amplitude refused {failed_names} user ID(s) submitted as given, and they are not kept "
            "once settled; submit a new request"
        )
    refused = [e for e in batch_errors if bad_request(e)]
    if refused:
        raise DomainError(
            f"cannot retry: Amplitude refused its IDs as a bad request ({refused[0]}); the same POST would be "
            "refused the same way"
        )
    waiting = [i for i in items if i.state == "receipted" and i.job_status != "done"]
    if waiting:
        raise DomainError("cannot retry: some of its IDs are in Amplitude jobs that are not done yet")
    requeue = sum(1 for i in items if i.state == "failed")
    if requeue or any(i.state == "queued" for i in items):
        return Plan("submission", requeue)
    return Plan("verification")


def run_ids(request_id: str, entries: list[audit.AuditEntry]) -> list[str]:
    """Every workflow ID a request has run under: its own, its verification's, its retries'."""
    retries = [str(e.detail.get("workflow")) for e in entries if e.kind == RETRIED and e.detail.get("workflow")]
    return [request_id, verification_id(request_id), *retries]


def retry(rt: Runtime, request_id: str, *, by: str, reason: str) -> str:
    """Retry a failed request (see the module doc); returns what restarts. Raises
    :class:`DomainError` with the reason when it must not."""
    row = repo.get_request(rt.engine, request_id)
    items = repo.items_for(rt.engine, request_id) if row.kind == "deletion" else []
    with rt.engine.connect() as conn:
        entries = audit.entries(conn, request_id)
        failed_names = int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(deletion_names)
                .where(deletion_names.c.request_id == request_id, deletion_names.c.state == "failed")
            ).scalar_one()
        )
        batch_ids = sorted({i.batch_id for i in items if i.state == "failed" and i.batch_id})
        errors = list(
            conn.execute(sa.select(deletion_batches.c.error).where(deletion_batches.c.id.in_(batch_ids))).scalars()
        )
    chosen = plan(row, items, failed_names, errors)
    client = rt.dbos_client()
    runs: list[Any] = client.list_workflows(workflow_ids=run_ids(request_id, entries), load_input=False)
    if any(str(w.status) in WORKFLOW_ACTIVE for w in runs):
        raise DomainError("cannot retry: a run of it is still enqueued or running")
    attempt = 1 + sum(1 for e in entries if e.kind == RETRIED)
    workflow_id = f"{request_id}-retry-{attempt}"
    detail: dict[str, Any] = {"by": by, "reason": reason, "restart": chosen.restart, "attempt": attempt}
    with repo.write_tx(rt.engine) as conn:
        if chosen.restart == "submission":
            status: str = S.QUEUED
            detail["requeued"] = chosen.requeue
            conn.execute(
                deletion_items.update()
                .where(deletion_items.c.request_id == request_id, deletion_items.c.state == "failed")
                .values(state="queued", batch_id=None)
            )
        else:
            name, queue, status = _workflow_of(row.kind, chosen.restart)
            client.enqueue_in_transaction(conn, rt.enqueue_options(name, queue, workflow_id), request_id)
            detail["workflow"] = workflow_id
        if not repo.move_from(conn, request_id, S.FAILED, status, error=None, completed_at=None):
            raise DomainError("cannot retry: the request changed meanwhile; reload and try again")
        audit.append(conn, request_id, RETRIED, detail)
    if chosen.restart == "submission":
        # The first run's verification ended; the flusher or tracker starts it again under its ID.
        finished = [w.workflow_id for w in runs if w.workflow_id == verification_id(request_id)]
        if finished and all(str(w.status) in WORKFLOW_FINAL for w in runs):
            client.delete_workflow(finished[0])
        start_flushers(rt, request_id)
    return chosen.restart


def _workflow_of(kind: str, restart: str) -> tuple[str, str, str]:
    """The workflow (DBOS name), its queue and the request's status while it waits."""
    if restart == "verification":
        return "verify_workflow", VERIFY_QUEUE, S.DONE
    if kind == "access":
        return "access_workflow", QUEUE, S.RECEIVED
    return "deletion_workflow", DELETION_QUEUE, S.RECEIVED
