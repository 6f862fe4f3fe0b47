"""Deletion submission, exactly once.

Queued Amplitude IDs (from every deletion request) are packed into POSTs of up to 100 IDs.
For each batch: the intent is stored (``intent``), marked ``posting`` just before the call, and
the receipt stored after it. A POST whose outcome is unknown (timeout, 5xx, dropped connection,
or a process that died mid-call) is reconciled by listing jobs: IDs Amplitude has get their job
``day``; IDs it does not have go back to the queue. Nothing is ever re-posted blindly.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from dbos import DBOS

from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr.runtime import Runtime, current
from amplitude_dsr.dsr.states import DELETION_RESOLVING
from amplitude_dsr.errors import (
    AuthenticationError,
    DeferredError,
    FatalError,
    RateLimited,
    RetriableError,
    UncertainOutcome,
)
from amplitude_dsr.store import audit, repo

log = logging.getLogger("amplitude_dsr.dsr")
STALE_POSTING = timedelta(minutes=10)  # a POST by another live executor never takes this long
RECEIPT_TOPIC = "deletion_receipt"  # DBOS message to a request workflow: its batch is settled


@DBOS.step(retries_allowed=False)
def flush_step() -> int:
    """:func:`flush` as a step of its own. Returns the POSTs sent."""
    return flush(current())


def flush(rt: Runtime) -> int:
    """Reconcile uncertain batches, send batches claimed but never sent, then claim and submit
    every batch that is due. Returns the POSTs sent."""
    reconcile_uncertain(rt)
    sent = 0
    # Claimed earlier but never sent: a crash between claim and POST, or refused by a budget or a
    # 429 before anything happened. mark_posting lets exactly one flusher send each.
    for stranded in repo.batches_in(rt.engine, ["intent"]):
        sent += post_batch(rt, stranded)
    now = datetime.now(UTC)
    for project, org_wide, waiting, oldest in repo.queued_summary(rt.engine):
        queued = waiting
        while queued > 0:
            resolving = repo.count_requests_in(rt.engine, "deletion", sorted(DELETION_RESOLVING))
            floor = logic.flush_floor(logic.age_seconds(oldest, now), resolving, rt.settings.max_linger)
            if queued < floor:  # a cheap read first; the claim re-checks atomically
                break
            batch = repo.claim_batch(rt.engine, project, org_wide, min_ids=floor)
            if batch is None:
                break
            sent += post_batch(rt, batch)
            queued -= len(batch.amplitude_ids)
    return sent


def post_batch(rt: Runtime, batch: repo.Batch) -> bool:
    """POST one batch unless another attempt already did; store the receipt. True if sent.

    While a thread is in here the batch is counted in ``rt.posting_now`` (counted, not just
    flagged: a second thread that finds the batch and loses :func:`repo.mark_posting` to the first
    must not clear the first one's mark while its POST is in flight)."""
    with rt._mutex:
        rt.posting_now[batch.id] += 1
    try:
        return _post_batch(rt, batch)
    finally:
        with rt._mutex:
            rt.posting_now[batch.id] -= 1
            if rt.posting_now[batch.id] <= 0:
                del rt.posting_now[batch.id]


def _post_batch(rt: Runtime, batch: repo.Batch) -> bool:
    if not repo.mark_posting(rt.engine, batch.id, rt.poster_tag):
        return False
    try:
        jobs = rt.client(batch.project).create_deletion(
            amplitude_ids=batch.amplitude_ids, requester=rt.settings.requester,
            delete_from_org=batch.org_wide, ignore_invalid_id=True,
        )  # fmt: skip
    except (RateLimited, DeferredError, AuthenticationError):
        # Refused before anything happened (429, our own budget, refused credentials): safe to
        # post again later; the workflow waits (a refused key pauses the project, it never fails
        # the requests in the batch: the key may be another process's, or about to be fixed).
        repo.mark_batch(rt.engine, batch.id, "intent")
        raise
    except RetriableError:
        # The client raises a transient fault of a POST as it is only when the request provably
        # never left (a connect failure; otherwise it is UncertainOutcome): post again later.
        repo.mark_batch(rt.engine, batch.id, "intent")
        raise
    except UncertainOutcome as exc:
        if repo.mark_batch(rt.engine, batch.id, "uncertain", error=str(exc)):
            _audit_batch(rt, batch, "deletion_post_uncertain", {"reason": str(exc)})
        return True
    except FatalError as exc:
        if repo.record_receipt(rt.engine, batch.id, [], {}, [], state="failed", error=str(exc)):
            _audit_batch(rt, batch, "deletion_post_failed", {"reason": str(exc)})
        raise
    receipt = [j.model_dump(mode="json") for j in jobs]
    invalid = [int(i) for j in jobs for i in j.invalid_ids if str(i).isdigit()]
    if repo.record_receipt(rt.engine, batch.id, receipt, logic.receipt_days(jobs), invalid):
        jobs_seen = [{"day": j.day, "status": j.status, "app": j.app} for j in jobs]
        _audit_batch(rt, batch, "deletion_receipt", {"jobs": jobs_seen, "invalid": len(invalid)})
        _notify(rt, batch)
    return True


def reconcile_uncertain(rt: Runtime) -> None:
    """Settle batches whose POST outcome is unknown, by listing jobs (never by re-posting)."""
    now = datetime.now(UTC)
    for batch in repo.batches_in(rt.engine, ["uncertain", "posting"]):
        if batch.state == "posting" and not _posting_is_dead(rt, batch, now):
            continue
        start, end = logic.reconcile_window(now.date())
        jobs = rt.client(batch.project).list_deletions(start, end)
        found, missing = logic.reconcile(batch.amplitude_ids, jobs, (batch.posted_at or batch.created_at).date())
        receipt = [j.model_dump(mode="json") for j in jobs if logic.job_status([j], j.day, batch.amplitude_ids)]
        settled = repo.record_receipt(
            rt.engine, batch.id, receipt, found, [], state="reconciled", requeue_ids=missing, from_state=batch.state
        )
        if settled:
            _audit_batch(rt, batch, "deletion_reconciled", {"found": len(found), "requeued": len(missing)})
            _notify(rt, batch)
            log.info("reconciled batch %s: %d found at Amplitude, %d re-queued", batch.id, len(found), len(missing))


def _posting_is_dead(rt: Runtime, batch: repo.Batch, now: datetime) -> bool:
    """A ``posting`` batch whose poster is gone: an earlier boot of this executor (we hold its
    lock, so that process is dead), this very process when no thread of it is in
    :func:`post_batch` for it any more (the POST happened or not, but a database fault lost what
    came after it, its receipt), or a POST older than any live call could be."""
    tag = batch.posted_by or ""
    executor, _, boot = tag.rpartition(":")
    if executor == rt.executor_id and boot != rt.boot_id:
        return True
    if tag == rt.poster_tag:
        with rt._mutex:
            return batch.id not in rt.posting_now
    return batch.posted_at is not None and now - batch.posted_at > STALE_POSTING


def _notify(rt: Runtime, batch: repo.Batch) -> None:
    """Wake the workflows of the batch's requests (their timeout wakes them anyway)."""
    with rt.engine.connect() as conn:
        request_ids = repo.requests_of_batch(conn, batch.id)
    for request_id in request_ids:
        try:
            DBOS.send(request_id, batch.id, topic=RECEIPT_TOPIC)
        except Exception:  # a lost wake-up only delays that request until its next round
            log.debug("could not notify a request of batch %s", batch.id, exc_info=True)


def _audit_batch(rt: Runtime, batch: repo.Batch, kind: str, detail: dict[str, object]) -> None:
    with rt.engine.begin() as conn:
        for request_id in repo.requests_of_batch(conn, batch.id):
            audit.append(conn, request_id, kind, {"batch_id": batch.id, "ids": len(batch.amplitude_ids), **detail})
