"""The one vocabulary of states: a request's status, a deletion job's status, and the named sets
the code asks about ("is it final?", "is it still resolving?"). The members are ``StrEnum``s, so
they are stored and compared as the plain strings the database, the JSON documents and the docs
use (``docs/cli.md``, "The request document")."""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    """Where a request is. Access: received → resolving → collecting → completed | failed
    (collecting only while DSAR exports are made; without org keys resolving → completed).
    Deletion: received → resolving → queued (resolved only when nothing matched) → staging →
    submitted → done → verifying → verified | recollected | still_present | nothing_found |
    cancelled | failed; with approval before erasure, held → received (approved) first."""

    RECEIVED = "received"
    HELD = "held"  # a deletion waiting for a person's approval (``serve --hold-erasures``, dsr/hold.py)
    RESOLVING = "resolving"
    RESOLVED = "resolved"
    COLLECTING = "collecting"
    QUEUED = "queued"
    STAGING = "staging"
    SUBMITTED = "submitted"
    DONE = "done"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    VERIFIED = "verified"
    RECOLLECTED = "recollected"
    STILL_PRESENT = "still_present"
    NOTHING_FOUND = "nothing_found"
    CANCELLED = "cancelled"
    FAILED = "failed"


class JobStatus(StrEnum):
    """An Amplitude deletion job's status (docs/amplitude.md)."""

    STAGING = "staging"
    SUBMITTED = "submitted"
    DONE = "done"


S = RequestStatus
# Final: nothing more happens to the request.
ACCESS_FINAL: frozenset[str] = frozenset({S.COMPLETED, S.FAILED})
DELETION_FINAL: frozenset[str] = frozenset(
    {S.VERIFIED, S.RECOLLECTED, S.STILL_PRESENT, S.NOTHING_FOUND, S.CANCELLED, S.FAILED}
)
# A deletion still finding its IDs ("resolved": about to queue them): a partial batch waits for it.
DELETION_RESOLVING: frozenset[str] = frozenset({S.RECEIVED, S.RESOLVING, S.RESOLVED})
# No user-pool call spent yet, as far as the store tells.
UNRESOLVED: frozenset[str] = frozenset({S.RECEIVED, S.RESOLVING})
# A deletion before Amplitude's receipt.
NOT_RECEIPTED: frozenset[str] = frozenset({S.RECEIVED, S.RESOLVING, S.RESOLVED, S.QUEUED})

# Jobs move staging -> submitted -> done; a request waits at the least advanced of its jobs.
JOB_STATUS_ORDER: dict[str, int] = {JobStatus.STAGING: 0, JobStatus.SUBMITTED: 1, JobStatus.DONE: 2}

# DBOS workflow statuses.
WORKFLOW_ACTIVE: frozenset[str] = frozenset({"ENQUEUED", "PENDING"})  # not finished
WORKFLOW_FINAL: frozenset[str] = frozenset({"SUCCESS", "ERROR", "CANCELLED"})  # has a result


def is_final(kind: str, status: str) -> bool:
    """Whether a request of ``kind`` (``access`` or ``deletion``) is final at ``status``."""
    return status in (ACCESS_FINAL if kind == "access" else DELETION_FINAL)
