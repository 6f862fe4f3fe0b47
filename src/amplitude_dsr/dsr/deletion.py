"""The deletion workflow: resolve, queue, submit (batched, exactly once), track for days or
weeks, verify, and write the certificate.

Every wait is a durable DBOS sleep; every Amplitude call a checkpointed step. A restart at any
point resumes where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any

from dbos import DBOS

from amplitude_dsr.amplitude.models import DeletionJob
from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr import jobs, steps
from amplitude_dsr.dsr.access import load_identity_map, load_step, projects_for
from amplitude_dsr.dsr.dbfaults import db_step
from amplitude_dsr.dsr.evidence import build_deletion_result
from amplitude_dsr.dsr.failures import failure_reason
from amplitude_dsr.dsr.model import Identifier, Subject, Verification
from amplitude_dsr.dsr.report import write_certificate
from amplitude_dsr.dsr.resolve import resolve
from amplitude_dsr.dsr.runtime import Runtime, current
from amplitude_dsr.dsr.states import DELETION_FINAL
from amplitude_dsr.dsr.submission import RECEIPT_TOPIC, flush
from amplitude_dsr.dsr.verification import verify
from amplitude_dsr.errors import DomainError
from amplitude_dsr.store import audit, repo

log = logging.getLogger("amplitude_dsr.dsr")
SUBMIT_CHECK_FLOOR = 0.5  # seconds before the first re-check for this request's receipt
FINAL = DELETION_FINAL  # the request is final at these statuses (dsr/states.py)


@db_step
def queue_step(request_id: str, subjects: list[Subject], org_wide: bool) -> int:
    total = 0
    for subject in subjects:
        ids = subject.all_amplitude_ids
        total += repo.queue_items(current().engine, request_id, subject.project, ids, org_wide=org_wide)
    return total


@db_step
def status_step(request_id: str) -> str:
    return repo.get_request(current().engine, request_id).status


@db_step
def progress_step(request_id: str, status: str, fields: dict[str, Any] | None = None) -> bool:
    """Record the request's progress unless it was cancelled meanwhile (False then)."""
    extra = dict(fields or {})
    if status in FINAL:
        extra.setdefault("completed_at", datetime.now(UTC))
    return repo.advance_request(current().engine, request_id, status, **extra)


@DBOS.step()
def certificate_step(request_id: str, status: str, verifications: list[Verification], out_dir: str) -> str:
    result = build_deletion_result(current().engine, request_id, status, verifications)
    return str(write_certificate(result, Path(out_dir), operator_dir=current().data_dir / "operator"))


@DBOS.workflow()
def deletion_workflow(request_id: str) -> str:
    """Run one deletion request to a final state; returns it."""
    req = load_step(request_id)
    out_dir = req.options.get("out_dir") or str(current().data_dir / "output")
    verifications: list[Verification] = []
    # Nothing Amplitude may already hold is given up on a fault that waiting fixes: transient
    # faults are retried until the deadline (tracking: until well after the job's day), refused
    # credentials pause the project (docs/operations.md, "Transient faults").
    policy = steps.RetryPolicy(horizon=req.deadline, pause_on_auth=True)
    rounds = 0
    while True:
        try:
            with steps.retry_policy(policy):
                status, verifications = _run(request_id, req.identifiers, req.options, req.deadline)
            break
        except Exception as exc:  # deliberate errors and unexpected ones alike end the request (dsr/failures.py)
            if steps.wait_out_database_fault(request_id, exc, rounds):
                rounds += 1  # every phase is driven by stored state: running it again resumes it
                continue
            reason = failure_reason("deletion", request_id, exc)
            steps.audit_step(request_id, "failed", {"reason": reason})
            progress_step(request_id, "failed", {"error": reason})
            status = "failed"
            break
    if status == "cancelled" or status_step(request_id) == "cancelled":
        return "cancelled"
    path = certificate_step(request_id, status, verifications, out_dir)
    progress_step(request_id, status, {"out_dir": path})
    return status


def _run(
    request_id: str, raw_identifiers: list[dict[str, str]], options: dict[str, Any], deadline: datetime
) -> tuple[str, list[Verification]]:
    progress_step(request_id, "resolving")
    identifiers = [Identifier.model_validate(i) for i in raw_identifiers]
    imap = load_identity_map(identifiers, options)
    projects = projects_for(options)
    with current().resolve_gate:  # counted as resolving while it waits: more IDs are coming
        resolved = resolve(request_id, identifiers, projects, identity_map=imap)
    subjects = resolved.resolution.subjects
    # The audit trail is permanent and hash-chained: it holds the resolution's digest, not the
    # resolution (which names identifiers and lives in the request's result until retention ends).
    steps.audit_step(
        request_id, "resolved",
        {"subjects": len(subjects), "amplitude_ids": sum(len(s.all_amplitude_ids) for s in subjects),
         "resolution_digest": audit.content_digest(resolved.resolution.model_dump(mode="json"))},
    )  # fmt: skip
    progress_step(request_id, "resolved", {"result": {"resolution": resolved.resolution.model_dump(mode="json")}})
    if not subjects:
        unresolved = [d for d in resolved.resolution.unresolved_details() if d.ambiguous]
        if unresolved:
            # "Nothing found" would be false: Amplitude answered with somebody else.
            raise DomainError(
                f"{len(unresolved)} identifier(s) could not be resolved exactly (User Search answered with a "
                "different Amplitude user); nothing was submitted to Amplitude. Submit the person's Amplitude ID "
                "(--amplitude-id) or use an identity map"
            )
        return "nothing_found", []
    queue_step(request_id, subjects, bool(options.get("org_wide")))
    if not progress_step(request_id, "queued"):
        return "cancelled", []
    steps.audit_step(request_id, "queued", {"amplitude_ids": sum(len(s.all_amplitude_ids) for s in subjects)})
    items = _submit(request_id)
    if items is None:
        return "cancelled", []
    receipted = [i for i in items if i.state == "receipted"]
    if not receipted:
        steps.audit_step(request_id, "nothing_scheduled", {"items": len(items)})
        return ("failed" if any(i.state == "failed" for i in items) else "nothing_found"), []
    tracked = _track(request_id, deadline)
    if tracked is None:
        return "cancelled", []
    if not progress_step(request_id, "verifying"):
        return "cancelled", []
    with steps.retry_policy(steps.RetryPolicy(horizon=tracked, pause_on_auth=True)):
        verifications = verify(identifiers, projects, receipted, imap)
    outcomes = {v.outcome for v in verifications}
    final = logic.request_outcome(outcomes)
    steps.audit_step(request_id, final, {"checked": len(verifications)})
    return final, verifications


def _submit(request_id: str) -> list[repo.Item] | None:
    """Wait (durably) until every queued ID of the request has a receipt (or another end).

    Each round flushes what is due. Between rounds the request waits for the flusher's message
    that its batch has a receipt, or for a timeout that doubles up to a cap: hundreds of requests
    waiting for one batch cost a few rounds a second, not hundreds."""
    wait, cap = SUBMIT_CHECK_FLOOR, logic.submit_wait_cap(current().settings.poll_interval)
    while True:
        items = steps.call(submit_round_step, request_id)
        if items is None:
            return None
        if not any(i.state in ("queued", "batched") for i in items):
            return items
        DBOS.recv(RECEIPT_TOPIC, timeout_seconds=wait)
        wait = min(wait * 2, cap)


def _track(request_id: str, deadline: datetime) -> datetime | None:
    """Follow every job holding the request's IDs until all are ``done``; ``None`` if cancelled,
    else the tracking horizon reached (for the verification that follows).

    Amplitude outages are retried until :data:`~deletion_logic.TRACKING_MARGIN` after the latest
    job day (or the request's deadline, if later), re-computed each round as jobs move."""
    horizon = deadline
    while True:
        with steps.retry_policy(steps.RetryPolicy(horizon=horizon, pause_on_auth=True)):
            done, live, last_day = steps.call(track_round_step, request_id)
        if last_day is not None:
            last = datetime.combine(date.fromisoformat(last_day), dt_time(), UTC)
            horizon = max(deadline, last + logic.TRACKING_MARGIN)
        if not live:
            return None
        if done:
            return horizon
        DBOS.sleep(current().settings.poll_interval)


@DBOS.step(retries_allowed=False)
def submit_round_step(request_id: str) -> list[repo.Item] | None:
    """One submission round: the request's items after a flush, or ``None`` if it was cancelled.
    One checkpoint per round keeps hundreds of waiting requests light on the database."""
    rt = current()
    if repo.get_request(rt.engine, request_id).status == "cancelled":
        return None
    flush(rt)
    return repo.items_for(rt.engine, request_id)


@DBOS.step(retries_allowed=False)
def track_round_step(request_id: str) -> tuple[bool, bool, str | None]:
    """One tracking round over the request's receipted IDs, grouped by (project, job day).

    Every job is located first (a failed listing writes nothing), wherever Amplitude has moved
    it; then moves and status changes are recorded and audited, and the request's aggregate
    status stored. Returns (every job done, request still live, latest job day)."""
    rt = current()
    row = repo.get_request(rt.engine, request_id)
    groups: dict[tuple[str, str], list[repo.Item]] = {}
    for item in repo.items_for(rt.engine, request_id):
        if item.state == "receipted" and item.job_day:
            groups.setdefault((item.project, item.job_day), []).append(item)
    requested_on = row.created_at.date()
    located = [
        (project, day, members, _locate(project, day, [i.amplitude_id for i in members], requested_on))
        for (project, day), members in groups.items()
    ]
    statuses: list[str] = []
    days: list[str] = []
    for project, day, members, found in located:
        known = members[0].job_status or "staging"
        job = found.job
        if job is None:  # not listed anywhere this round: keep what we knew, look again next round
            statuses.append(known)
            days.append(day)
            continue
        statuses.append(job.status)
        days.append(job.day)
        if found.moved_from is not None:
            repo.move_job_day(rt.engine, request_id, project, day, new_day=job.day, status=job.status)
            _audit(rt, request_id, "job_moved", {"project": project, "from_day": day, "day": job.day,
                                                  "status": job.status})  # fmt: skip
            log.info("request %s: Amplitude moved its %s job from %s to %s", request_id, project, day, job.day)
        elif job.status != known:
            repo.set_job_status(rt.engine, request_id, project, day, job.status)
            _audit(
                rt, request_id, "job_status",
                {"project": project, "day": day, "status": job.status,
                 "active_scrub_done_date": job.active_scrub_done_date},
            )  # fmt: skip
    live = repo.advance_request(rt.engine, request_id, _aggregate(statuses))
    done = bool(statuses) and all(s == logic.FINAL_JOB_STATUS for s in statuses)
    return done, live, max(days) if days else None


def _audit(rt: Runtime, request_id: str, kind: str, detail: dict[str, Any]) -> None:
    with rt.engine.begin() as conn:
        audit.append(conn, request_id, kind, detail)


_listings: dict[tuple[str, str, date, date], tuple[float, list[DeletionJob]]] = {}
_listings_lock = threading.Lock()


def _locate(project: str, day: str, ids: list[int], requested_on: date) -> jobs.Located:
    """Where the job holding ``ids`` is now (a cached shared listing first, a fresh one before
    concluding that Amplitude moved it)."""
    return jobs.locate(_lister(project), day, ids, requested_on, fresh=_lister(project, fresh=True))


def _lister(project: str, *, fresh: bool = False) -> jobs.Lister:
    """Job listings of ``project``. A narrow window is served from the shared window that holds
    it (``deletion_logic.shared_window``), fetched once per half poll interval per process: a
    thousand requests waiting on jobs of the next three months cost one GET per round, and a
    deletion POST waiting for the pool is not starved by listings."""
    rt = current()

    def listing(start: date, end: date) -> list[DeletionJob]:
        shared = logic.shared_window(start, end)
        first, last = shared or (start, end)
        key = (rt.boot_id, project, first, last)
        ttl = rt.settings.poll_interval / 2
        now = time.monotonic()
        with _listings_lock:
            cached = _listings.get(key)
        if cached is not None and now - cached[0] < ttl and not fresh:
            found = cached[1]
        else:
            found = rt.client(project).list_deletions(first, last)
            with _listings_lock:
                _listings[key] = (time.monotonic(), found)
        return [j for j in found if start.isoformat() <= j.day <= end.isoformat()]

    return listing


def _aggregate(statuses: Any) -> str:
    values = [s or "staging" for s in statuses]
    return min(values, key=lambda s: logic.STATUS_ORDER.get(s, 0)) if values else "staging"
