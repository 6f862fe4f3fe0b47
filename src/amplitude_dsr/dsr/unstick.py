"""Resuming a stuck request (the console's Workers page, admin only), through ``DBOSClient``.

A request stuck in one state is moved by exactly one workflow: its own run (``received``,
``resolving``, ``resolved``, ``collecting``: the request's workflow, or its latest retry), its
project's flusher (``queued``: the deletion workflow ended by design once the IDs were queued), or
its verification (``verifying``). :func:`resume` finds that workflow and

* resumes it from its last checkpoint (``DBOSClient.resume_workflow`` onto its shared queue) when
  it is unfinished (``ENQUEUED``, ``PENDING``) or was cancelled: a worker dequeues it; a run that
  was in fact still alive on another executor is fenced by DBOS and its steps are idempotent or
  keyed (``docs/architecture.md``), so nothing is sent twice;
* enqueues a fresh run (``<request ID>-resume-<n>``) when the request is not final but its
  workflow is gone or ended;
* starts the project's flushers for a ``queued`` deletion (deduplicated: one per project).

Refused with the reason: a final or held request, and states whose wait is Amplitude's (a
deletion job takes days). Audited ``resumed`` (who, why, which workflow, how).
"""

from __future__ import annotations

from typing import Any

from amplitude_dsr.dsr.finish import verification_id
from amplitude_dsr.dsr.holding import start_flushers
from amplitude_dsr.dsr.retry import RETRIED
from amplitude_dsr.dsr.runtime import DELETION_QUEUE, QUEUE, VERIFY_QUEUE, Runtime
from amplitude_dsr.errors import DomainError
from amplitude_dsr.states import WORKFLOW_ACTIVE, RequestStatus, is_final
from amplitude_dsr.store import audit, repo

S = RequestStatus
RESUMED = "resumed"
OWN_RUN = frozenset({S.RECEIVED, S.RESOLVING, S.RESOLVED, S.COLLECTING})


def target(row: repo.RequestRow, entries: list[audit.AuditEntry]) -> tuple[str, str, str]:
    """The workflow that moves ``row`` on: (workflow ID, DBOS name, shared queue); ``flusher``
    as the ID for a queued deletion. :class:`DomainError` when none should be resumed."""
    if is_final(row.kind, row.status):
        raise DomainError(f"cannot resume: the request is already {row.status!r}")
    if row.status == S.HELD:
        raise DomainError("cannot resume: the request is on hold; release or approve it")
    if row.status in OWN_RUN:
        own = latest_run(entries, ("resolution", "access_workflow", "deletion_workflow")) or row.id
        if row.kind == "access":
            return own, "access_workflow", QUEUE
        return own, "deletion_workflow", DELETION_QUEUE
    if row.status == S.QUEUED:
        return "flusher", "flush_workflow", ""
    if row.status == S.VERIFYING:
        own = latest_run(entries, ("verification", "verify_workflow")) or verification_id(row.id)
        return own, "verify_workflow", VERIFY_QUEUE
    raise DomainError(
        f"cannot resume: a request {row.status!r} waits for Amplitude's deletion job (days, by design); "
        "its project's tracker follows it"
    )


def latest_run(entries: list[audit.AuditEntry], kinds: tuple[str, ...]) -> str | None:
    """The latest workflow a retry or a fresh resume started for one of ``kinds`` (a retry's
    ``restart``, a resume's workflow name), if any."""
    runs = [
        str(e.detail["workflow"])
        for e in entries
        if e.kind in (RETRIED, RESUMED)
        and e.detail.get("workflow")
        and (e.detail.get("runs") in kinds or e.detail.get("restart") in kinds)
    ]
    return runs[-1] if runs else None


def resume(rt: Runtime, request_id: str, *, by: str, reason: str) -> str:
    """Resume the workflow of a stuck request (see the module doc); returns what was done."""
    row = repo.get_request(rt.engine, request_id)
    with rt.engine.connect() as conn:
        entries = audit.entries(conn, request_id)
    workflow_id, name, queue = target(row, entries)
    client = rt.dbos_client()
    fresh: str | None = None  # the workflow name of a fresh run, if one is enqueued
    if workflow_id == "flusher":
        start_flushers(rt, request_id)
        how = "flushers started"
    else:
        found: list[Any] = client.list_workflows(workflow_ids=[workflow_id], load_input=False, load_output=False)
        status = str(found[0].status) if found else None
        if status in WORKFLOW_ACTIVE or status == "CANCELLED":
            client.resume_workflow(workflow_id, queue_name=queue)
            how = f"resumed from its last checkpoint (it was {status})"
        else:
            attempt = 1 + sum(1 for e in entries if e.kind == RESUMED and e.detail.get("runs"))
            workflow_id = f"{request_id}-resume-{attempt}"
            client.enqueue(rt.enqueue_options(name, queue, workflow_id), request_id)
            how = "a fresh run enqueued (" + (f"its workflow had ended: {status}" if status else "no workflow") + ")"
            fresh = name
    detail = {"by": by, "reason": reason, "workflow": workflow_id, "how": how, "runs": fresh}
    with rt.engine.begin() as conn:
        audit.append(conn, request_id, RESUMED, detail)
    return how
