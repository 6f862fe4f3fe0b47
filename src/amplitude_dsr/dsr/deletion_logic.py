"""Pure decisions of the deletion flow: when to submit, what a receipt or a job listing says,
whether a cancel is allowed, what a verification search proves.

Facts (``docs/amplitude.md#deletion-api-v1``): jobs go ``staging`` -> ``submitted`` -> ``done``;
users can be removed from a job only while it is ``staging`` and more than 3 days before its ``day``; listing
windows are at most 6 months wide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from amplitude_dsr.amplitude.listing import ListedJob
from amplitude_dsr.amplitude.models import DeletionJob
from amplitude_dsr.dsr.model import Candidate, VerificationOutcome

MAX_IDS_PER_POST = 100  # docs/amplitude.md#creating-deletions
CANCEL_CUTOFF_DAYS = 3  # docs/amplitude.md#removing-a-user-from-a-job: only more than 3 days before `day`
RECONCILE_LOOKBACK = timedelta(days=7)
RECONCILE_LOOKAHEAD = timedelta(days=150)  # under the 6-month listing window
FINAL_JOB_STATUS = "done"
RELOCATION_WINDOW_DAYS = 180  # one listing window, inside Amplitude's six-month maximum


def flush_floor(oldest_age: float, resolving: int, max_linger: float) -> int:
    """The fewest distinct IDs worth a POST now: a partial batch (1) only when no other request is
    still resolving (nothing more is about to join) or the oldest queued ID has waited
    ``max_linger`` seconds; otherwise only a full batch (100)."""
    if resolving == 0 or oldest_age >= max_linger:
        return 1
    return MAX_IDS_PER_POST


def should_flush(queued: int, oldest_age: float, resolving: int, max_linger: float) -> bool:
    """Submit now? A full batch always; a partial one as :func:`flush_floor` allows."""
    return queued > 0 and queued >= flush_floor(oldest_age, resolving, max_linger)


def flush_tick(poll_interval: float) -> float:
    """Seconds between two rounds of a project's flusher while IDs wait for a fuller batch (or
    for the budget): short, so the last request of a burst is posted within a second of being
    queued; one poll interval when that is shorter (tests poll fast)."""
    return max(0.1, min(1.0, poll_interval))


def receipt_days(jobs: Iterable[DeletionJob]) -> dict[int, tuple[str, str]]:
    """Amplitude ID -> (job day, job status) from a POST receipt or a job listing."""
    result: dict[int, tuple[str, str]] = {}
    for job in jobs:
        for entry in job.amplitude_ids:
            result.setdefault(entry.amplitude_id, (job.day, job.status))
    return result


def reconcile(
    posted_ids: Sequence[int], jobs: Iterable[ListedJob], posted_on: date
) -> tuple[dict[int, tuple[str, str]], list[int]]:
    """After an uncertain POST: which IDs Amplitude has (found in a job requested on or after the
    POST day, minus one day of clock skew) and which it does not (safe to submit again)."""
    since = (posted_on - timedelta(days=1)).isoformat()
    wanted = set(posted_ids)
    found: dict[int, tuple[str, str]] = {}
    for job in jobs:
        for amplitude_id, requested_on_day, _ in job.entries(wanted):
            if (requested_on_day or since) >= since:
                found.setdefault(amplitude_id, (job.day, job.status))
    missing = [i for i in posted_ids if i not in found]
    return found, missing


def reconcile_window(today: date) -> tuple[date, date]:
    """The listing window used to find the jobs of an uncertain POST (< 6 months)."""
    return today - RECONCILE_LOOKBACK, today + RECONCILE_LOOKAHEAD


SHARED_WINDOW_STEP = 90  # days between the starts of the shared tracking windows
_EPOCH = date(2000, 1, 1)


def shared_window(start: date, end: date) -> tuple[date, date] | None:
    """The shared listing window (180 days, inside the six-month limit) that holds ``start`` ..
    ``end``, or ``None`` when the range is too wide. Windows start every
    :data:`SHARED_WINDOW_STEP` days, so every narrow window around a job day lies inside one:
    all the jobs a project tracks within three months cost one listing per round, not one each."""
    first = _EPOCH + timedelta(days=(start - _EPOCH).days // SHARED_WINDOW_STEP * SHARED_WINDOW_STEP)
    last = first + timedelta(days=RELOCATION_WINDOW_DAYS - 1)
    return (first, last) if end <= last else None


def job_window(day: str) -> tuple[date, date]:
    """A narrow listing window around a job's ``day``."""
    d = date.fromisoformat(day)
    return d - timedelta(days=1), d + timedelta(days=1)


def relocation_windows(requested_on: date) -> list[tuple[date, date]]:
    """Where to look for a job that is no longer at the day its receipt gave (Amplitude moved
    it): two listing windows of :data:`~amplitude_dsr.amplitude.limits.DELETION_LIST_MAX_DAYS`
    from the day before the request, a year in all. Amplitude schedules jobs days to weeks out."""
    first = requested_on - timedelta(days=1)
    span = timedelta(days=RELOCATION_WINDOW_DAYS - 1)  # inclusive: 180 days
    second = first + span + timedelta(days=1)
    return [(first, first + span), (second, second + span)]


def find_job(jobs: Iterable[ListedJob], amplitude_ids: Iterable[int]) -> ListedJob | None:
    """The job (whatever its day) that holds most of ``amplitude_ids``; the latest day on a tie."""
    ids = set(amplitude_ids)
    best: tuple[int, str, ListedJob] | None = None
    for job in jobs:
        held = job.count_held(ids)
        if held and (best is None or (held, job.day) > best[:2]):
            best = (held, job.day, job)
    return None if best is None else best[2]


def job_status(jobs: Iterable[ListedJob], day: str, amplitude_ids: Iterable[int]) -> ListedJob | None:
    """The job with ``day`` that holds any of ``amplitude_ids``."""
    ids = set(amplitude_ids)
    for job in jobs:
        if job.day == day and job.holds_any(ids):
            return job
    return None


def cancel_refusal(status: str | None, day: str | None, today: date) -> str | None:
    """Why a job cannot be cancelled any more, or ``None`` if it can."""
    if status is None or day is None:
        return None
    if status != "staging":
        return f"the deletion job is already {status!r}; only 'staging' jobs can be changed"
    if date.fromisoformat(day) - today <= timedelta(days=CANCEL_CUTOFF_DAYS):
        return f"the job starts on {day}; users can be removed only more than {CANCEL_CUTOFF_DAYS} days before that"
    return None


def verification_outcome(
    accepted: Sequence[Candidate], deleted_ids: Iterable[int]
) -> tuple[VerificationOutcome, list[int], str]:
    """Interpret a post-deletion search (exact candidates only).

    Nothing found: ``verified``. A match with a new Amplitude ID: ``recollected`` (new activity
    after the deletion). The same Amplitude ID still present: ``still_present``.
    """
    deleted = set(deleted_ids)
    found = [c.amplitude_id for c in accepted]
    if not found:
        return "verified", [], "no exact match any more"
    if any(i in deleted for i in found):
        return "still_present", found, "a deleted Amplitude ID is still searchable"
    return "recollected", found, "a new Amplitude ID with this identifier appeared after the deletion"


def request_outcome(outcomes: Iterable[VerificationOutcome]) -> str:
    """The request's final status from its verification outcomes: ``verified`` only when every
    check is; a deleted ID still searchable beats a re-collected one."""
    found = set(outcomes)
    if found <= {"verified"}:
        return "verified"
    return "still_present" if "still_present" in found else "recollected"


def age_seconds(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()
