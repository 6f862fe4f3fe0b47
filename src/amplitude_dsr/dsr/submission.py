"""Deletion submission, exactly once.

Queued Amplitude IDs (from every deletion request) are packed into POSTs of up to 100 IDs.
For each batch: the intent is stored (``intent``), marked ``posting`` just before the call, and
the receipt stored after it. A POST whose outcome is unknown (timeout, 5xx, dropped connection,
or a process that died mid-call) is reconciled by listing jobs: IDs Amplitude has get their job
``day``; IDs it does not have go back to the queue. Nothing is ever re-posted blindly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dbos import DBOS

from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr import direct, steps
from amplitude_dsr.dsr.finish import start_verification
from amplitude_dsr.dsr.runtime import JOBS_QUEUE, Runtime, start_once
from amplitude_dsr.dsr.tracking import start_tracker
from amplitude_dsr.errors import (
    AuthenticationError,
    DeferredError,
    FatalError,
    RateLimited,
    RetriableError,
    UncertainOutcome,
)
from amplitude_dsr.states import DELETION_RESOLVING
from amplitude_dsr.store import audit, names, repo
from amplitude_dsr.store import jobs as jobs_store

log = logging.getLogger("amplitude_dsr.dsr")
STALE_POSTING = timedelta(minutes=10)  # a POST by another live executor never takes this long
FLUSH_ROUNDS = 1000  # rounds of one flusher workflow; the executor's sweep starts the next one
# POSTs per flusher round at most: each round's receipts move their requests to their job's
# status before the next round posts (a burst of 100,000 deletions is 1,000 POSTs at 1 per second:
# their statuses follow the receipts by seconds, not at the end of a 17-minute round).
POSTS_PER_ROUND = 10


@dataclass
class FlushRound:
    """What one flusher round did: POSTs sent, whether the project still has IDs to send (or a
    POST to reconcile), and the requests whose IDs Amplitude settled in this round."""

    sent: int
    pending: bool
    settled: list[str] = field(default_factory=list)


def start_flusher(rt: Runtime, project: str) -> None:
    """Start ``project``'s flusher unless one is already enqueued or running."""
    start_once(rt, "flush_workflow", f"flush:{project}", project, queue=JOBS_QUEUE)


def flush_workflow(rt: Runtime, project: str) -> int:
    """The flusher of one project: batches its queued IDs (every request's) into POSTs of up to
    100, exactly once, until none is left; returns the POSTs sent. At most one runs per project
    (a deduplicated enqueue, :func:`start_flusher`). Each settled request moves to its job's status
    (or, when it has nothing left to wait for, to verification); its project's tracker starts.
    The body of ``Workflows.flush``."""
    sent = 0
    if not steps.serves_step(rt, project):
        return sent
    tick = logic.flush_tick(rt.settings.poll_interval)
    with steps.retry_policy(steps.RetryPolicy(horizon=None, pause_on_auth=True)):
        for _ in range(FLUSH_ROUNDS):
            done = steps.call(rt, flush_round_step, project)
            sent += done.sent
            if done.settled:
                ready = steps.call(rt, settle_step, done.settled)
                start_tracker(rt, project)
                for request_id in ready:
                    start_verification(rt, request_id)
            if not done.pending:
                break
            if not done.sent:
                steps.pause(rt, tick)
    return sent


@DBOS.step(retries_allowed=False)
def flush_round_step(rt: Runtime, project: str) -> FlushRound:
    """One flusher round: :func:`flush` for ``project``."""
    settled: list[str] = []
    sent = flush(rt, project, settled=settled, max_posts=POSTS_PER_ROUND)
    with rt.engine.connect() as conn:
        request_ids = {r for batch_id in settled for r in repo.requests_of_batch(conn, batch_id)}
    request_ids.update(jobs_store.unsettled_requests(rt.engine, project))
    return FlushRound(sent, jobs_store.has_submission_work(rt.engine, project), sorted(request_ids))


@DBOS.step(retries_allowed=False)
def settle_step(rt: Runtime, request_ids: list[str]) -> list[str]:
    """Requests whose IDs Amplitude just settled: each moves to its jobs' status; returns those
    with nothing left to wait for (every ID invalid, or every job already done)."""
    jobs_store.advance_waiting(rt.engine, jobs_store.aggregate_statuses(rt.engine, request_ids))
    return jobs_store.ready_requests(rt.engine, request_ids)


def flush(
    rt: Runtime, project: str | None = None, *, settled: list[str] | None = None, max_posts: int | None = None
) -> int:
    """Reconcile uncertain batches, send batches claimed but never sent, then claim and submit
    the batches that are due (of ``project``, or of every project), ``max_posts`` at most.
    Returns the POSTs sent; the IDs of the batches settled are appended to ``settled``."""
    settled = settled if settled is not None else []
    reconcile_uncertain(rt, project, settled=settled)
    for name in [project] if project is not None else jobs_store.projects_to_flush(rt.engine):
        direct.settle_lookups(rt, name, settled)
    sent = 0
    # Claimed earlier but never sent: a crash between claim and POST, or refused by a budget or a
    # 429 before anything happened. mark_posting lets exactly one flusher send each.
    limit = max_posts if max_posts is not None else float("inf")
    for stranded in repo.batches_in(rt.engine, ["intent"], project):
        if sent >= limit:
            return sent
        sent += post_batch(rt, stranded, settled=settled)
    now = datetime.now(UTC)
    for name, org_wide, waiting, oldest in repo.queued_summary(rt.engine, project):
        queued = waiting
        while queued > 0 and sent < limit:
            resolving = repo.count_requests_in(rt.engine, "deletion", sorted(DELETION_RESOLVING))
            floor = logic.flush_floor(logic.age_seconds(oldest, now), resolving, rt.settings.max_linger)
            if queued < floor:  # a cheap read first; the claim re-checks atomically
                break
            batch = repo.claim_batch(rt.engine, name, org_wide, min_ids=floor)
            if batch is None:
                break
            sent += post_batch(rt, batch, settled=settled)
            queued -= len(batch.amplitude_ids)
    return sent


def post_batch(rt: Runtime, batch: repo.Batch, *, settled: list[str] | None = None) -> bool:
    """POST one batch unless another attempt already did; store the receipt. True if sent.

    While a thread is in here the batch is counted in ``rt.posting_now`` (counted, not just
    flagged: a second thread that finds the batch and loses :func:`repo.mark_posting` to the first
    must not clear the first one's mark while its POST is in flight)."""
    with rt._mutex:
        rt.posting_now[batch.id] += 1
    try:
        return _post_batch(rt, batch, settled if settled is not None else [])
    finally:
        with rt._mutex:
            rt.posting_now[batch.id] -= 1
            if rt.posting_now[batch.id] <= 0:
                del rt.posting_now[batch.id]


def _post_batch(rt: Runtime, batch: repo.Batch, settled: list[str]) -> bool:
    if not repo.mark_posting(rt.engine, batch.id, rt.poster_tag):
        return False
    user_ids = names.user_ids_of_batch(rt.engine, batch.id)
    try:
        jobs = rt.client(batch.project).create_deletion(
            amplitude_ids=batch.amplitude_ids, user_ids=user_ids, requester=rt.settings.requester,
            delete_from_org=batch.org_wide, ignore_invalid_id=True, include_mapped_user_ids=bool(user_ids),
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
        # Amplitude refused the batch for good (a 400): its requests fail at verification time
        # with this reason (their IDs are 'failed'); the flusher goes on with the next batch.
        if repo.record_receipt(rt.engine, batch.id, [], {}, [], state="failed", error=str(exc)):
            _audit_batch(rt, batch, "deletion_post_failed", {"reason": str(exc)})
            settled.append(batch.id)
        log.warning("a deletion batch of %d IDs was refused by Amplitude: %s", len(batch.amplitude_ids), exc)
        return True
    receipt = direct.stored_receipt(jobs, batch.amplitude_ids)
    invalid = [int(i) for j in jobs for i in j.invalid_ids if str(i).isdigit()]
    mapped, invalid_names = direct.mapping(jobs, user_ids)
    settled_now = repo.record_receipt(
        rt.engine, batch.id, receipt, logic.receipt_days(jobs), invalid, mapped=mapped, invalid_names=invalid_names
    )
    if settled_now:
        jobs_seen = [{"day": j.day, "status": j.status, "app": j.app} for j in jobs]
        detail = {"jobs": jobs_seen, "invalid": len({str(i) for j in jobs for i in j.invalid_ids})}
        if user_ids:
            detail["user_ids"] = {"submitted": len(user_ids), "mapped": len(mapped), "invalid": len(invalid_names)}
        _audit_batch(rt, batch, "deletion_receipt", detail)
        settled.append(batch.id)
    return True


def reconcile_uncertain(rt: Runtime, project: str | None = None, *, settled: list[str] | None = None) -> None:
    """Settle batches whose POST outcome is unknown, by listing jobs (never by re-posting)."""
    now = datetime.now(UTC)
    for batch in repo.batches_in(rt.engine, ["uncertain", "posting"], project):
        if batch.state == "posting" and not _posting_is_dead(rt, batch, now):
            continue
        start, end = logic.reconcile_window(now.date())
        jobs = rt.client(batch.project).list_deletions(start, end)
        found, missing = logic.reconcile(batch.amplitude_ids, jobs, (batch.posted_at or batch.created_at).date())
        receipt = direct.listed_receipt(jobs, batch.amplitude_ids)
        done = repo.record_receipt(
            rt.engine, batch.id, receipt, found, [], state="reconciled", requeue_ids=missing, from_state=batch.state
        )
        if done:
            _audit_batch(rt, batch, "deletion_reconciled", {"found": len(found), "requeued": len(missing)})
            if settled is not None:
                settled.append(batch.id)
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


def _audit_batch(rt: Runtime, batch: repo.Batch, kind: str, detail: dict[str, object]) -> None:
    with rt.engine.begin() as conn:
        for request_id in repo.requests_of_batch(conn, batch.id):
            audit.append(conn, request_id, kind, {"batch_id": batch.id, "ids": len(batch.amplitude_ids), **detail})
