"""Finding the Amplitude job that holds a request's IDs, wherever its ``day`` is now.

A receipt says which job ``day`` our IDs joined, but Amplitude may move a job to a later day.
Tracking and cancel first list a narrow window around the known day; when the job is not there,
they look for the job holding the IDs in windows of at most six months (``relocation_windows``),
so a moved job is followed (and cancelled with its current day) instead of lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from amplitude_dsr.amplitude.listing import ListedJob
from amplitude_dsr.dsr import deletion_logic as logic

Lister = Callable[[date, date], list[ListedJob]]


@dataclass(frozen=True)
class Located:
    """The job holding the IDs (``None``: not found anywhere) and whether it moved."""

    job: ListedJob | None
    moved_from: str | None = None


def locate(
    listing: Lister, day: str, amplitude_ids: Sequence[int], requested_on: date, *, fresh: Lister | None = None
) -> Located:
    """The job holding ``amplitude_ids``: at ``day`` (one narrow listing; when ``listing`` may
    serve a cached answer, ``fresh`` asks again before concluding the job moved), else anywhere
    in the relocation windows (one more listing each, stopping at the first that holds them)."""
    for source in (listing, fresh) if fresh is not None else (listing,):
        job = logic.job_status(source(*logic.job_window(day)), day, amplitude_ids)
        if job is not None:
            return Located(job)
    for start, end in logic.relocation_windows(requested_on):
        found = logic.find_job((fresh or listing)(start, end), amplitude_ids)
        if found is not None:
            return Located(found, moved_from=day if found.day != day else None)
    return Located(None)
