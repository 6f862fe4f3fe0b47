"""The end of a deletion request: once every job holding its IDs is ``done`` (or Amplitude
scheduled none of them), a short workflow of its own verifies that the person is gone and writes
the certificate. It runs on a bounded queue (``runtime.VERIFY_QUEUE``), started by the project's
tracker or flusher (``dsr/tracking.py``, ``dsr/submission.py``) or by the executor's sweep
(``dsr/jobwatch.py``) under the fixed ID ``verify-<request ID>``: started any number of times, it
runs once.

The request-level steps the deletion workflows share (status, progress, certificate) live here.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbos import DBOS

from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr import direct, steps
from amplitude_dsr.dsr.access import load_identity_map, load_step, projects_for
from amplitude_dsr.dsr.dbfaults import db_step
from amplitude_dsr.dsr.evidence import build_deletion_result
from amplitude_dsr.dsr.failures import failure_reason
from amplitude_dsr.dsr.model import Identifier, Verification
from amplitude_dsr.dsr.progress import note_step
from amplitude_dsr.dsr.report import write_certificate
from amplitude_dsr.dsr.runtime import VERIFY_QUEUE, Runtime, start_once, torn_down
from amplitude_dsr.dsr.verification import verify
from amplitude_dsr.errors import DomainError, ShuttingDown
from amplitude_dsr.states import DELETION_FINAL, RequestStatus
from amplitude_dsr.store import repo

log = logging.getLogger("amplitude_dsr.dsr")
S = RequestStatus
VERIFY_PREFIX = "verify-"


def verification_id(request_id: str) -> str:
    """The workflow ID of a request's verification (one per request, ever)."""
    return f"{VERIFY_PREFIX}{request_id}"


def start_verification(rt: Runtime, request_id: str) -> None:
    """Start the request's verification unless it was started before (same workflow ID)."""
    start_once(rt, "verify_workflow", None, request_id, queue=VERIFY_QUEUE, workflow_id=verification_id(request_id))


@db_step
def status_step(rt: Runtime, request_id: str) -> str:
    return repo.get_request(rt.engine, request_id).status


@db_step
def progress_step(rt: Runtime, request_id: str, status: str, fields: dict[str, Any] | None = None) -> bool:
    """Record the request's progress unless it was cancelled meanwhile (False then)."""
    extra = dict(fields or {})
    if status in DELETION_FINAL:
        extra.setdefault("completed_at", datetime.now(UTC))
    return repo.advance_request(rt.engine, request_id, status, **extra)


@db_step
def begin_verification_step(rt: Runtime, request_id: str) -> tuple[str, list[repo.Item], repo.RequestRow]:
    """The request's items, and ``verifying`` (it moved there: something was receipted),
    ``nothing`` (nothing was receipted: no move) or ``cancelled``; with the request as it is
    then. One transaction for the move, one checkpoint for all three."""
    phase: str
    with rt.engine.begin() as conn:
        if repo.status_in(conn, request_id) == S.CANCELLED:
            phase, items, change = S.CANCELLED, [], None
        else:
            items = repo.items_in(conn, request_id)
            if not any(i.state == "receipted" for i in items):
                phase, change = "nothing", None
            else:
                change = repo.advance_in(conn, request_id, S.VERIFYING)
                phase = S.VERIFYING if change.done else S.CANCELLED
    if change is not None:
        repo.log_change(change)
    return phase, items, repo.get_request(rt.engine, request_id)


@db_step
def refusal_step(rt: Runtime, request_id: str) -> str | None:
    """Why Amplitude refused the request's IDs for good (the error of a failed batch), if it did."""
    for item in repo.items_for(rt.engine, request_id):
        if item.state == "failed" and item.batch_id:
            return repo.batch_error(rt.engine, item.batch_id) or "Amplitude refused the deletion"
    return None


@DBOS.step()
def certificate_step(rt: Runtime, request_id: str, status: str, verifications: list[Verification], out_dir: str) -> str:
    result = build_deletion_result(rt.engine, request_id, status, verifications, rt.chain)
    return str(write_certificate(result, Path(out_dir), operator_dir=rt.data_dir / "operator"))


def conclude(
    rt: Runtime,
    request_id: str,
    status: str,
    verifications: list[Verification],
    out_dir: str | None,
    *,
    checked: bool = False,
) -> str:
    """Write the certificate and record the final status (unless the request was cancelled;
    ``checked``: the step just before found it was not). A fault of our own database that
    outlives the steps' retries is waited out: what the request ends with is decided already,
    only its recording waits."""
    rounds = 0
    while True:
        try:
            return _conclude(rt, request_id, status, verifications, out_dir, checked=checked)
        except ShuttingDown:
            raise
        except Exception as exc:
            if steps.wait_out_database_fault(rt, request_id, exc, rounds):
                rounds += 1
                continue
            raise


def _conclude(
    rt: Runtime, request_id: str, status: str, verifications: list[Verification], out_dir: str | None, *, checked: bool
) -> str:
    if status == S.CANCELLED or (not checked and status_step(rt, request_id) == S.CANCELLED):
        return S.CANCELLED
    path = certificate_step(rt, request_id, status, verifications, out_dir or str(rt.data_dir / "output"))
    progress_step(rt, request_id, status, {"out_dir": path})
    return status


@db_step
def error_step(rt: Runtime, request_id: str, reason: str) -> None:
    repo.update_request(rt.engine, request_id, error=reason)


def fail(rt: Runtime, request_id: str, exc: Exception) -> str:
    """Record why a request failed (identifier-free reason); returns ``failed``. The status itself
    is written by :func:`conclude`, with the certificate's path: a request never shows as final
    before its document exists."""
    reason = failure_reason("deletion", request_id, exc)
    steps.audit_step(rt, request_id, "failed", {"reason": reason})
    error_step(rt, request_id, reason)
    return S.FAILED


def verify_workflow(rt: Runtime, request_id: str) -> str:
    """Verify a deletion whose jobs are done and write its certificate; returns the final status.
    Amplitude accepted the IDs: no fault that waiting fixes fails it (no retry horizon). The body
    of ``Workflows.verify``."""
    begun: tuple[str, list[repo.Item], repo.RequestRow] | None = None
    verifications: list[Verification] = []
    rounds = 0
    while True:
        try:
            with steps.retry_policy(steps.RetryPolicy(horizon=None, pause_on_auth=True)):
                if begun is None:
                    begun = begin_verification_step(rt, request_id)
                status, verifications, checked = _verify(rt, request_id, *begun)
            break
        except ShuttingDown:
            raise
        except Exception as exc:  # deliberate errors and unexpected ones alike end the request
            if torn_down(exc):  # a step outlived DBOS (this process is stopping): nothing failed
                raise ShuttingDown("this process is shutting down; the workflow resumes from its last step") from exc
            if steps.wait_out_database_fault(rt, request_id, exc, rounds):
                rounds += 1
                continue
            status, verifications, checked = fail(rt, request_id, exc), [], False
            break
    req = begun[2] if begun is not None else load_step(rt, request_id)
    return conclude(rt, request_id, status, verifications, req.options.get("out_dir"), checked=checked)


def _verify(
    rt: Runtime, request_id: str, phase: str, items: list[repo.Item], req: repo.RequestRow
) -> tuple[str, list[Verification], bool]:
    """The outcome, its verifications, and whether the last step found the request not cancelled."""
    if phase == S.CANCELLED:
        return S.CANCELLED, [], True
    receipted = [i for i in items if i.state == "receipted"]
    if not receipted:
        steps.audit_step(rt, request_id, "nothing_scheduled", {"items": len(items)})
        refusal = refusal_step(rt, request_id)
        if refusal is not None:
            raise DomainError(f"Amplitude refused the deletion: {refusal}")
        return S.NOTHING_FOUND, [], False
    identifiers = [Identifier.model_validate(i) for i in req.identifiers]
    imap = load_identity_map(rt, identifiers, req.options)
    verifications = verify(rt, identifiers, projects_for(rt, req.options), receipted, imap)
    final = logic.request_outcome({v.outcome for v in verifications})
    # The outcome's entry and the cancel check in one step; the certificate then cites the entry.
    if not note_step(rt, request_id, final, {"checked": len(verifications)}):
        return S.CANCELLED, [], True
    if final != S.VERIFIED and req.options.get("deletion_path") == direct.DIRECT:
        # Submitted as given, and the person is still found: delete what is found, resolved first.
        follow = follow_up_step(rt, request_id)
        steps.audit_step(rt, request_id, "follow_up", {"request_id": follow, "path": direct.RESOLVE_FIRST})
        return final, verifications, False
    return final, verifications, True


@db_step
def follow_up_step(rt: Runtime, request_id: str) -> str:
    return direct.follow_up(rt, repo.get_request(rt.engine, request_id))
