"""The tracker of one project: follows every deletion job holding our IDs until it is ``done``.

Amplitude's unit of work is the job (a project and a job ``day``), so that is what is tracked:
each round lists the project's jobs once per shared window (``deletion_logic.shared_window``),
finds every job our items name (wherever Amplitude moved it, ``dsr/jobs.py``) and moves all of
its items at once. Every request in a job gets its ``job_status`` / ``job_moved`` audit entry,
written exactly once (the entry's write key names the request, job and status). A request whose
every job is ``done`` is handed to its verification (``dsr/finish.py``).

One tracker runs per project at a time (a deduplicated enqueue); it pauses durably one poll
interval between rounds (``steps.pause``: a worker that stops does not wait it out) and ends
when no job is left open. The executor's sweep
(``dsr/jobwatch.py``) starts it again whenever a project has open jobs and no tracker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from dbos import DBOS

from amplitude_dsr.amplitude.listing import ListedJob
from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr import jobs, steps
from amplitude_dsr.dsr.finish import start_verification
from amplitude_dsr.dsr.runtime import JOBS_QUEUE, Runtime, start_once
from amplitude_dsr.store import audit
from amplitude_dsr.store import jobs as jobs_store
from amplitude_dsr.store.repo import write_tx

log = logging.getLogger("amplitude_dsr.dsr")
TRACK_ROUNDS = 1000  # rounds of one tracker workflow; the executor's sweep starts the next one


@dataclass
class TrackRound:
    """What one round found: whether a job is still open, and the requests now ready to verify."""

    open_jobs: int
    ready: list[str] = field(default_factory=list)


def start_tracker(rt: Runtime, project: str) -> None:
    """Start ``project``'s tracker unless one is already enqueued or running."""
    start_once(rt, "track_workflow", f"track:{project}", project, queue=JOBS_QUEUE)


def track_workflow(rt: Runtime, project: str) -> int:
    """Track ``project``'s open jobs round after round; returns the rounds run. A fault that
    waiting fixes (an outage, refused credentials) never fails a request here: the round is
    retried durably (the jobs are Amplitude's, the request cannot be un-submitted). The body of
    ``Workflows.track``."""
    rounds = 0
    if not steps.serves_step(rt, project):
        return rounds
    with steps.retry_policy(steps.RetryPolicy(horizon=None, pause_on_auth=True)):
        while rounds < TRACK_ROUNDS:
            found = steps.call(rt, track_round_step, project)
            rounds += 1
            for request_id in found.ready:
                start_verification(rt, request_id)
            if not found.open_jobs:
                break
            steps.pause(rt, rt.settings.poll_interval)
    return rounds


READY_PER_ROUND = 1000  # verifications a round hands on at most; the sweep starts the rest


@DBOS.step(retries_allowed=False)
def track_round_step(rt: Runtime, project: str) -> TrackRound:
    """One round over every open job of ``project``. Every job is located first (a failed
    listing writes nothing); then each move or status change is stored with its audit entries, a
    page of requests per transaction and the job's items last (``_store_change``); then the
    requests of the changed jobs move to their aggregate status, a page at a time
    (``jobs_store.PAGE``), whatever the job's size. At most :data:`READY_PER_ROUND` requests ready
    to verify are returned (the executor's sweep starts the others' verifications)."""
    open_jobs = jobs_store.open_jobs(rt.engine, project)
    listing = _round_lister(rt, project)
    fresh = rt.client(project).list_deletions
    located = []
    for job in open_jobs:
        requested_on = job.first_requested.date() if job.first_requested else date.today()
        sample = jobs_store.job_sample(rt.engine, project, job.day)
        located.append((job, jobs.locate(listing, job.day, sample, requested_on, fresh=fresh)))
    changed_days: list[str] = []
    still_open = 0
    for job, found in located:
        now = found.job
        if now is None:  # not listed anywhere this round: keep what we knew, look again next round
            still_open += 1
            continue
        if now.status != logic.FINAL_JOB_STATUS:
            still_open += 1
        if found.moved_from is not None or now.status != job.status:
            _store_change(rt.engine, project, job, now, moved=found.moved_from is not None)
            changed_days.append(now.day)
    ready: list[str] = []
    for request_ids in _pages_of(rt, project, changed_days):
        jobs_store.advance_waiting(rt.engine, jobs_store.aggregate_statuses(rt.engine, request_ids))
        if len(ready) < READY_PER_ROUND:
            ready += jobs_store.ready_requests(rt.engine, request_ids, limit=READY_PER_ROUND - len(ready))
    return TrackRound(still_open, ready[:READY_PER_ROUND])


def _store_change(engine: sa.Engine, project: str, job: jobs_store.Job, now: ListedJob, *, moved: bool) -> None:
    """A job's move or new status: its entry in the trail of each of its open requests, a page
    of requests per transaction, then the job's items in a transaction of their own. A job may
    hold a hundred thousand requests: one transaction for all of them held SQLite's write lock
    for about 90 s (bench section 10, P-8) while every other writer waited. The items come last,
    so a crash between pages leaves the job's old status in place: the next round (or the
    step run again) finds the same change and writes the pages again, and the entries' write
    keys (request, job, status) keep everyone's entry single."""
    if moved:
        detail: dict[str, object] = {"project": project, "from_day": job.day, "day": now.day, "status": now.status}
        kind, key, values = (
            "job_moved",
            f"{project}:{job.day}>{now.day}",
            {"job_day": now.day, "job_status": now.status},
        )
    else:
        detail = {"project": project, "day": job.day, "status": now.status,
                  "active_scrub_done_date": now.active_scrub_done_date}  # fmt: skip
        kind, key, values = "job_status", f"{project}:{job.day}:{now.status}", {"job_status": now.status}
    after = ""
    while True:
        with write_tx(engine) as conn:
            page = jobs_store.requests_in_job(conn, project, job.day, after=after)
            _audit_all(conn, page, kind, detail, key)
        if not page:
            break
        after = page[-1]
    with write_tx(engine) as conn:
        jobs_store.update_job(conn, project, job.day, **values)
    if moved:
        log.info("Amplitude moved a %s job from %s to %s", project, job.day, now.day)


def _pages_of(rt: Runtime, project: str, days: Sequence[str]) -> Iterator[list[str]]:
    """The requests to move this round, a page at a time: those waiting on each changed job, then
    those left ``queued`` with every ID settled (``jobs_store.unsettled_requests``)."""
    for day in days:
        after = ""
        while page := jobs_store.waiting_in_job(rt.engine, project, day, after=after):
            yield page
            after = page[-1]
    if unsettled := sorted(jobs_store.unsettled_requests(rt.engine, project)):
        yield unsettled


def _audit_all(
    conn: sa.Connection, request_ids: Sequence[str], kind: str, detail: Mapping[str, object], key: str
) -> None:
    """The same entry in the trail of every request of the job, once each (keyed by content),
    in one multi-row append (four statements per page instead of four per request)."""
    ordered = sorted(request_ids)
    audit.append_many(
        conn, [(rid, kind, detail) for rid in ordered], write_keys=[f"{kind}:{rid}:{key}" for rid in ordered]
    )


def _round_lister(rt: Runtime, project: str) -> jobs.Lister:
    """Job listings of ``project`` for one round: a narrow window is served from the shared
    window that holds it, fetched once per round (every job of the next three months costs one
    GET), so tracking does not starve a deletion POST waiting for the same pool."""
    fetched: dict[tuple[date, date], list[ListedJob]] = {}

    def listing(start: date, end: date) -> list[ListedJob]:
        first, last = logic.shared_window(start, end) or (start, end)
        if (first, last) not in fetched:
            fetched[(first, last)] = rt.client(project).list_deletions(first, last)
        return [j for j in fetched[(first, last)] if start.isoformat() <= j.day <= end.isoformat()]

    return listing
