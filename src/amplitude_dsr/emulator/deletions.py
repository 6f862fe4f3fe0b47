"""User Privacy API v1 deletion jobs (docs/amplitude.md#deletion-api-v1) and their lifecycle.

A POST on day D joins the project's open staging batch, or opens one with ``day`` = D + 10. A
batch freezes 3 days before ``day``, is ``submitted`` on ``day`` (its users disappear from search
and activity), gets ``active_scrub_done_date`` = ``day`` + 2 and is ``done`` 5 days after that.
Statuses are computed from the emulated date whenever they are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import User
    from .world import World

# docs/amplitude.md#job-lifecycle (emulator schedule from docs/emulator-contract.md).
BATCH_DELAY = timedelta(days=10)
FREEZE_BEFORE = timedelta(days=3)
SCRUB_AFTER = timedelta(days=2)
DONE_AFTER_SCRUB = timedelta(days=5)


@dataclass
class Entry:
    """One user in a job, as the API reports it."""

    amplitude_id: int
    requested_on_day: str
    requester: str | None
    user_id: str | None

    def wire(self, include_user_id: bool) -> dict[str, Any]:
        """The JSON object of this entry."""
        out: dict[str, Any] = {
            "amplitude_id": self.amplitude_id,
            "requested_on_day": self.requested_on_day,
            "requester": self.requester,
        }
        if include_user_id:
            out["user_id"] = self.user_id
        return out


@dataclass
class Job:
    """A deletion batch of one project, keyed by its scheduled ``day``."""

    project: str
    app: int
    day: date
    entries: list[Entry] = field(default_factory=list)
    multi: bool = False
    applied: bool = False

    def status(self, today: date) -> str:
        """staging -> submitted (on day) -> done (day + 7)."""
        if today < self.day:
            return "staging"
        if today < self.day + SCRUB_AFTER + DONE_AFTER_SCRUB:
            return "submitted"
        return "done"

    def open_for_changes(self, today: date) -> bool:
        """Staging and more than 3 days before ``day``."""
        return today < self.day - FREEZE_BEFORE

    def wire(self, today: date, entries: list[Entry] | None = None) -> dict[str, Any]:
        """The job object as POST and GET return it."""
        out: dict[str, Any] = {
            "day": self.day.isoformat(),
            "status": self.status(today),
            "amplitude_ids": [e.wire(False) for e in (entries or self.entries)],
        }
        if self.multi:
            out["app"] = self.app
        if today >= self.day + SCRUB_AFTER:
            out["active_scrub_done_date"] = (self.day + SCRUB_AFTER).isoformat()
        return out


@dataclass
class Resolved:
    """What one POST resolved to in one project."""

    entries: list[Entry]
    found: set[str]


class DeletionBook:
    """All deletion jobs of the world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.jobs: list[Job] = []

    def apply_due(self, now: datetime) -> None:
        """Remove the users of every job that reached ``submitted`` (call under the lock)."""
        today = now.date()
        for job in self.jobs:
            if job.applied or today < job.day:
                continue
            for entry in job.entries:
                user = self.world.find_by_amplitude_id(job.project, entry.amplitude_id)
                if user is not None and not user.deleted:
                    self.world.unindex_user(user, job.day.isoformat())
            job.applied = True

    def open_job(self, project: str, today: date) -> Job:
        """The project's open staging batch, created if needed."""
        for job in self.jobs:
            if job.project == project and job.open_for_changes(today):
                return job
        job = Job(project, self.world.projects[project].app, today + BATCH_DELAY)
        self.jobs.append(job)
        return job

    def resolve(
        self, project: str, amplitude_ids: list[int], user_ids: list[str], requester: str | None,
        today: date,
    ) -> Resolved:  # fmt: skip
        """Entries for the IDs that exist (live) in the project; ``found`` holds the others."""
        entries: list[Entry] = []
        found: set[str] = set()
        day = today.isoformat()
        for aid in amplitude_ids:
            user = self.world.find_by_amplitude_id(project, aid)
            if user is not None and not user.deleted:
                entries.append(Entry(aid, day, requester, user.user_id))
                found.add(str(aid))
        for uid in user_ids:
            users: list[User] = self.world.users_with_user_id(project, uid)
            for user in users:
                entries.append(Entry(user.amplitude_id, day, requester, uid))
                found.add(uid)
        return Resolved(entries, found)

    def schedule(self, project: str, entries: list[Entry], today: date, multi: bool) -> Job:
        """Add entries to the open batch (no duplicate amplitude_id within a job)."""
        job = self.open_job(project, today)
        job.multi = job.multi or multi
        present = {e.amplitude_id for e in job.entries}
        for entry in entries:
            if entry.amplitude_id not in present:
                job.entries.append(entry)
                present.add(entry.amplitude_id)
        return job

    def list(self, project: str, start: date, end: date, today: date) -> list[dict[str, Any]]:
        """Jobs of a project whose ``day`` lies in [start, end]."""
        jobs = [j for j in self.jobs if j.project == project and start <= j.day <= end]
        return [j.wire(today) for j in sorted(jobs, key=lambda j: j.day) if j.entries]

    def remove(self, project: str, amplitude_id: int, day: date, today: date) -> tuple[int, dict[str, Any]]:
        """DELETE a user from a staging job: (status code, body)."""
        job = next((j for j in self.jobs if j.project == project and j.day == day), None)
        if job is None:
            return 404, {"error": f"no deletion job scheduled for day {day.isoformat()}"}
        entry = next((e for e in job.entries if e.amplitude_id == amplitude_id), None)
        if entry is None:
            return 404, {"error": "amplitude_id is not part of this deletion job"}
        if not job.open_for_changes(today):
            return 400, {
                "error": "users can only be removed while the job is staging and more than 3 days before its day"
            }
        job.entries.remove(entry)
        return 200, entry.wire(False)

    def move(self, project: str, day: date, to_day: date) -> Job | None:
        """Reschedule a project's job to another ``day`` (Amplitude may do this); ``None`` if
        the project has no job at ``day``. Jobs already applied are not moved."""
        job = next((j for j in self.jobs if j.project == project and j.day == day and not j.applied), None)
        if job is not None:
            job.day = to_day
        return job
