"""Domain records of a privacy request: what was asked, how it was resolved, what was found.

These are plain data (pydantic, JSON-serialisable) shared by the workflows, the store and the
reports. They hold identifiers of the data subject, so they are written only to our own
database and to the reports meant for the data subject, never to logs.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from amplitude_dsr._checks import text_problem
from amplitude_dsr.errors import UsageError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ASCII_DIGITS = re.compile(r"[0-9]+")
MAX_IDENTIFIER_LENGTH = 1024  # above any email (254) or SDK-made ID, and fits in one request URL


class IdentifierKind(StrEnum):
    """The identifier categories a request may carry."""

    EMAIL = "email"
    USER_ID = "user_id"
    AMPLITUDE_ID = "amplitude_id"
    DEVICE_ID = "device_id"


class Identifier(BaseModel):
    """One identifier of the data subject, validated on construction via :meth:`parse`."""

    model_config = ConfigDict(frozen=True)

    kind: IdentifierKind
    value: str

    @classmethod
    def parse(cls, kind: str, value: str) -> Identifier:
        """Validate ``value`` for ``kind``; raise :class:`UsageError` (no value echoed) if bad."""
        try:
            k = IdentifierKind(kind.strip().lower().replace("-", "_"))
        except ValueError:
            allowed = ", ".join(k.value for k in IdentifierKind)
            raise UsageError(f"unknown identifier kind {kind!r} (expected one of: {allowed})") from None
        v = value.strip()
        if not v:
            raise UsageError(f"empty {k.value}")
        if len(v) > MAX_IDENTIFIER_LENGTH:
            raise UsageError(f"{k.value} longer than {MAX_IDENTIFIER_LENGTH} characters")
        problem = text_problem(v)
        if problem:
            raise UsageError(f"{k.value} {problem}")
        if k is IdentifierKind.EMAIL and not _EMAIL.match(v):
            raise UsageError("malformed email address")
        if k is IdentifierKind.AMPLITUDE_ID:
            # ASCII digits only: str.isdigit() also takes "²" and "١٢", which int() refuses or
            # reads as another number than the one shown.
            if not (_ASCII_DIGITS.fullmatch(v) and 0 < int(v) < 2**63):
                raise UsageError("an Amplitude ID must be a positive integer")
            v = str(int(v))  # "007" is Amplitude ID 7
        return cls(kind=k, value=v)

    def redacted(self) -> str:
        """A log-safe label: the kind only, never the value."""
        return f"<{self.kind.value}>"


Regulation = Literal["gdpr", "ccpa"]
REGULATION_DAYS: dict[str, int] = {"gdpr": 30, "ccpa": 45}
# The earliest day a DSAR export may start: Amplitude holds no data from before its launch.
# Amplitude documents no longest span for an export (docs/amplitude.md#dsar-export-api).
DSAR_EARLIEST = date(2012, 1, 1)


class RequestOptions(BaseModel):
    """What shapes a request's answer besides its identifiers and regulation: the typed request
    spec every shell (CLI, batch file, service) builds and ``dsr.api`` validates, in one place.
    Stored with the request as the fields that were set (``stored``), so its idempotency key
    does not change when an option gains a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    projects: list[str] = Field(default_factory=list, description="project names; empty: every configured one")
    org_wide: bool = Field(False, description="deletion only: delete from every project of the organisation")
    full_history: bool = Field(False, description="access only: page through every event")
    out_dir: str | None = Field(None, description="where the report or certificate is written")
    identity_map: str | None = Field(None, description="email -> user IDs: a CSV path or an HTTP lookup URL")
    batch_key: str | None = Field(None, description="what makes two identical requests distinct (a batch file)")
    requester: str | None = Field(None, description="deletion only: who asked, as Amplitude records it")
    deletion_path: Literal["resolve-first", "direct"] | None = Field(
        None, description="deletion only: resolve identifiers first, or submit them as they are (docs/deletion.md)"
    )
    dsar_start: date | None = Field(
        None, description="access only, with org keys: first day of the DSAR export (default: the subject's first use)"
    )
    dsar_end: date | None = Field(
        None, description="access only, with org keys: last day of the DSAR export (default: today)"
    )

    @model_validator(mode="after")
    def _dsar_range(self) -> Self:
        if self.dsar_start is not None and self.dsar_start < DSAR_EARLIEST:
            raise ValueError(f"dsar_start is before {DSAR_EARLIEST.isoformat()}, when Amplitude holds no data")
        if self.dsar_start is not None and self.dsar_end is not None and self.dsar_end < self.dsar_start:
            raise ValueError("dsar_end is before dsar_start")
        return self

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class Candidate(BaseModel):
    """One match returned by User Search, and what we decided about it."""

    amplitude_id: int
    user_id: str | None = None
    accepted: bool
    reason: str


class SearchAttempt(BaseModel):
    """One User Search call made for one identifier in one project."""

    identifier: Identifier
    project: str
    term_kind: str  # what the searched term is: the identifier itself or a mapped user_id
    via: Literal["identifier", "identity_map"] = "identifier"
    term: str
    match_type: str
    candidates: list[Candidate] = Field(default_factory=list)
    # For a prefix probe (``term`` is a prefix of it): the user_id a match had to equal exactly.
    probe_for: str | None = None
    # User Search answered with a different user (e.g. took a numeric user_id for somebody's
    # Amplitude ID) and nothing resolved the term in this project: the person may exist.
    ambiguous: bool = False
    note: str | None = None  # how such an answer was resolved otherwise (no identifier values)


class Subject(BaseModel):
    """One Amplitude user (a canonical Amplitude ID in one project) found for the request."""

    project: str
    amplitude_id: int
    merged_amplitude_ids: list[int] = Field(default_factory=list)
    user_id: str | None = None
    device_ids: list[str] = Field(default_factory=list)
    matched_by: list[Identifier] = Field(default_factory=list)

    @property
    def all_amplitude_ids(self) -> list[int]:
        """The canonical ID followed by every merged ID, without duplicates."""
        seen: dict[int, None] = {self.amplitude_id: None}
        for merged in self.merged_amplitude_ids:
            seen.setdefault(merged, None)
        return list(seen)

    @property
    def key(self) -> str:
        return f"{self.project}:{self.amplitude_id}"


NOT_FOUND_REASON = "not found: no Amplitude user has this identifier exactly in any searched project"
AMBIGUOUS_REASON = (
    "could not be resolved: User Search answered with a different Amplitude user (a number taken for "
    "another user's Amplitude ID) and no exact match was found another way"
)


class AmbiguousTerm(BaseModel):
    """A searched term that User Search answered with somebody else, unresolved in ``project``."""

    model_config = ConfigDict(frozen=True)

    identifier: Identifier
    project: str
    term_kind: str
    term: str

    @property
    def submittable_user_id(self) -> str | None:
        """The user_id Amplitude's deletion API could resolve server-side (``user_ids`` with
        ``ignore_invalid_id``), or ``None`` when the term is not a user ID (device, Amplitude ID)."""
        return self.term if self.term_kind == IdentifierKind.USER_ID.value else None


class UnresolvedIdentifier(BaseModel):
    """An identifier without an exact answer, with a reason that holds no identifier value."""

    identifier: Identifier
    ambiguous: bool
    projects: list[str] = Field(default_factory=list)
    reason: str


class Resolution(BaseModel):
    """How every identifier was resolved: the searches made and the subjects accepted."""

    attempts: list[SearchAttempt] = Field(default_factory=list)
    subjects: list[Subject] = Field(default_factory=list)

    def unresolved(self) -> list[Identifier]:
        """Identifiers that matched no subject in any project (ambiguous ones included)."""
        found = {i for s in self.subjects for i in s.matched_by}
        seen: dict[Identifier, None] = {}
        for attempt in self.attempts:
            if attempt.identifier not in found:
                seen.setdefault(attempt.identifier, None)
        return list(seen)

    def ambiguous(self) -> list[AmbiguousTerm]:
        """Terms User Search answered with somebody else and nothing resolved in their project
        (attempts flagged ``ambiguous``): the person may exist there, also when the same
        identifier found someone through another term. The deletion path submits their
        :attr:`AmbiguousTerm.submittable_user_id` for Amplitude to resolve."""
        seen: dict[AmbiguousTerm, None] = {}
        for a in self.attempts:
            if a.ambiguous:
                term = AmbiguousTerm(identifier=a.identifier, project=a.project, term_kind=a.term_kind, term=a.term)
                seen.setdefault(term, None)
        return list(seen)

    def unresolved_details(self) -> list[UnresolvedIdentifier]:
        """Every identifier that is not found anywhere, or ambiguous in some project, and why."""
        ambiguous: dict[Identifier, list[str]] = {}
        for term in self.ambiguous():
            ambiguous.setdefault(term.identifier, [])
            if term.project not in ambiguous[term.identifier]:
                ambiguous[term.identifier].append(term.project)
        details = [
            UnresolvedIdentifier(identifier=i, ambiguous=True, projects=p, reason=AMBIGUOUS_REASON)
            for i, p in ambiguous.items()
        ]
        for ident in self.unresolved():
            if ident not in ambiguous:
                details.append(UnresolvedIdentifier(identifier=ident, ambiguous=False, reason=NOT_FOUND_REASON))
        return details


class SessionSummary(BaseModel):
    """One session of a subject, as shown in reports."""

    session_id: int
    start: str | None = None
    end: str | None = None
    event_count: int


class DsarInfo(BaseModel):
    """What happened to the DSAR export of one subject (org keys only)."""

    request_id: int | None = None
    status: str
    fail_reason: str | None = None
    files: int = 0
    events: int = 0
    fell_back_to_project_keys: bool = False
    # True only when Amplitude refused the organisation keys (401/403) for this export: the one
    # case in which the report may point at the keys or the region (dsr/completeness.py).
    auth_error: bool = False


class SubjectData(BaseModel):
    """What was collected for one subject. Events live in a JSON-lines file (``events_path``) so
    that a large export never sits in memory."""

    subject: Subject
    summary: dict[str, Any] = Field(default_factory=dict)
    sources: list[str] = Field(default_factory=list)
    event_count: int = 0
    events_by_type: dict[str, int] = Field(default_factory=dict)
    sessions: list[SessionSummary] = Field(default_factory=list)
    most_recent_session_complete: bool = True
    events_path: str | None = None
    dsar: DsarInfo | None = None


class AccessResult(BaseModel):
    """Everything the access report needs."""

    request_id: str
    created_at: datetime
    completed_at: datetime
    regulation: Regulation = "gdpr"
    identifiers: list[Identifier]
    resolution: Resolution
    subjects: list[SubjectData] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Receipt(BaseModel):
    """Amplitude's answer to one deletion submission, for one project job."""

    project: str
    batch_id: str
    job_day: str
    status: str
    amplitude_ids: list[int]
    requested_on_day: str | None = None
    invalid_ids: list[str] = Field(default_factory=list)
    app: int | None = None
    recorded_at: datetime
    reconciled: bool = False  # True when rebuilt from a job listing after an uncertain POST


class StatusChange(BaseModel):
    """One status change of a deletion request or one of its jobs."""

    at: datetime
    scope: str  # "request" or "job <project> <day>"
    status: str
    detail: str = ""


VerificationOutcome = Literal["verified", "recollected", "still_present"]


class Verification(BaseModel):
    """The result of searching an identifier again after its deletion job is done."""

    identifier: Identifier
    project: str
    outcome: VerificationOutcome
    checked_at: datetime
    deleted_amplitude_ids: list[int] = Field(default_factory=list)
    found_amplitude_ids: list[int] = Field(default_factory=list)
    detail: str = ""


class DeletionResult(BaseModel):
    """Everything the deletion certificate needs."""

    request_id: str
    created_at: datetime
    completed_at: datetime | None = None
    regulation: Regulation = "gdpr"
    requester: str
    org_wide: bool = False
    status: str
    identifiers: list[Identifier]
    resolution: Resolution
    receipts: list[Receipt] = Field(default_factory=list)
    history: list[StatusChange] = Field(default_factory=list)
    verifications: list[Verification] = Field(default_factory=list)
    audit_head: str | None = None
    failure_reason: str | None = None  # the recorded one-line reason of a ``failed`` request
