"""Is an access answer complete? Pure decisions from the collected data, no I/O.

An answer is *partial* when the data shows that something Amplitude holds is not in it:

* a DSAR export (the complete history, organisation keys) failed, could not be downloaded, or
  otherwise fell back to project-key data;
* fewer events are included than Amplitude's own count (``userData.num_events``), as without
  organisation keys and without ``--full-history``;
* the most recent session could not be collected whole;
* an identifier could not be resolved: Amplitude returned users for it, yet none could be
  confirmed as the data subject (a numeric user ID shadowed by an Amplitude ID, an unconfirmed
  device). An identifier for which Amplitude returned nobody, or only users whose user ID is a
  different one (prefix matches), is an answer ("nothing held under it"), not a gap.

Every reason is a one-line sentence without identifiers or other personal data (counts only), so
it may go into the stored request summary, the CLI and logs. The organisation keys or the region
are named only when Amplitude refused the keys (``DsarInfo.auth_error``).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict

from amplitude_dsr.dsr.model import AccessResult, IdentifierKind, Resolution, SubjectData

Source = Literal["dsar", "full_history", "recent", "none"]
PREFIX_MATCH = "match_user_prefix"
DSAR_DONE = "done"
SOURCE_PHRASES: dict[str, str] = {
    "dsar": "Amplitude's DSAR export of the complete history, merged with the User Activity events",
    "full_history": "every page of the User Activity API (the full history it serves)",
    "recent": "the most recent events from the User Activity API, up to 1,000, plus the whole most recent session",
    "none": "no events were collected",
}


class Coverage(BaseModel):
    """What the export holds for one subject, against what Amplitude says it holds."""

    model_config = ConfigDict(frozen=True)

    source: Source
    description: str
    events_reported: int | None  # userData.num_events; None when Amplitude did not say
    events_included: int
    events_missing: int  # reported - included, never negative (0 when unknown)
    most_recent_session_complete: bool
    how_to_get_the_rest: str | None


class Completeness(BaseModel):
    """Whether an access answer is complete, and if not, why (identifier-free one-liners)."""

    model_config = ConfigDict(frozen=True)

    complete: bool
    reasons: list[str]

    @property
    def status(self) -> Literal["complete", "partial"]:
        return "complete" if self.complete else "partial"


def source_of(data: SubjectData) -> Source:
    """Where the subject's events came from: the DSAR export only if it was merged in."""
    if "dsar" in data.sources and data.dsar is not None and data.dsar.status == DSAR_DONE:
        return "dsar"
    if "user_activity_full_history" in data.sources:
        return "full_history"
    if "user_activity" in data.sources:
        return "recent"
    return "none"


def coverage(data: SubjectData) -> Coverage:
    """The coverage of one subject's events."""
    source = source_of(data)
    reported = data.summary.get("num_events")
    reported = reported if isinstance(reported, int) and not isinstance(reported, bool) else None
    missing = max(0, reported - data.event_count) if reported is not None else 0
    return Coverage(
        source=source,
        description=SOURCE_PHRASES[source],
        events_reported=reported,
        events_included=data.event_count,
        events_missing=missing,
        most_recent_session_complete=data.most_recent_session_complete,
        how_to_get_the_rest=_how_to_get_the_rest(data, source) if missing else None,
    )


def _how_to_get_the_rest(data: SubjectData, source: Source) -> str:
    if source == "dsar":
        return "ask Amplitude Support: its count includes events its DSAR export does not hold"
    full = "" if source == "full_history" else "with --full-history (every User Activity page)"
    if data.dsar is None:
        org = "with organisation keys for Amplitude's DSAR export of the complete history"
    elif data.dsar.status == "download_failed":
        org = "for a new DSAR export (its files could not be downloaded)"
    else:
        org = ""
    if full and org:
        return f"run the request again {full}, or {org}"
    if full or org:
        return f"run the request again {full or org}"
    return "ask Amplitude Support for the complete history (its DSAR export did not succeed)"


def assess(result: AccessResult) -> Completeness:
    """Derive from ``result`` whether the answer is complete, with a reason per gap."""
    reasons = _dsar_reasons(result.subjects)
    many = len(result.subjects) > 1
    for index, data in enumerate(result.subjects, start=1):
        cov = coverage(data)
        if cov.events_missing and cov.events_reported is not None:
            who = f"For user {index} of {len(result.subjects)}, " if many else ""
            reasons.append(
                f"{who}{cov.events_included:,} of the {cov.events_reported:,} events Amplitude reports are included "
                f"({cov.description}); to include the rest, {cov.how_to_get_the_rest}."
            )
    broken = sum(not d.most_recent_session_complete for d in result.subjects)
    if broken:
        reasons.append(f"The most recent session of {_users(broken)} could not be collected completely.")
    unresolved = unresolvable_identifiers(result.resolution)
    if unresolved:
        reasons.append(
            f"{unresolved} identifier{'s' if unresolved != 1 else ''} could not be resolved: Amplitude returned "
            "users that could not be confirmed as the data subject; anything held under it is not included."
        )
    return Completeness(complete=not reasons, reasons=reasons)


def _dsar_reasons(subjects: list[SubjectData]) -> list[str]:
    groups: Counter[tuple[str, bool]] = Counter()
    for data in subjects:
        dsar = data.dsar
        if dsar is None or (dsar.status == DSAR_DONE and not dsar.fell_back_to_project_keys):
            continue
        groups[(dsar.status, dsar.auth_error)] += 1
    reasons = []
    for (status, auth_error), count in sorted(groups.items()):
        what = "could not be downloaded" if status == "download_failed" else f"ended {status!r}"
        line = (
            f"The DSAR export (complete history) of {_users(count)} {what}; "
            "the data available with project keys is included instead."
        )
        if auth_error:
            line += " Amplitude refused the organisation keys: check them and the region."
        reasons.append(line)
    return reasons


def unresolvable_identifiers(resolution: Resolution) -> int:
    """Unresolved identifiers for which Amplitude did return somebody we could not confirm: the
    ones resolution marked ambiguous (an answer naming a different user), and any other whose
    search returned a candidate that is not decisively someone else."""
    ambiguous = {d.identifier for d in resolution.unresolved_details() if d.ambiguous}
    count = 0
    for identifier in resolution.unresolved():
        if identifier in ambiguous:
            count += 1
            continue
        attempts = [a for a in resolution.attempts if a.identifier == identifier]
        if any(
            not c.accepted and not _other_user_id(a.match_type, a.term_kind, a.term, c.user_id)
            for a in attempts
            for c in a.candidates
        ):
            count += 1
    return count


def _other_user_id(match_type: str, term_kind: str, term: str, user_id: str | None) -> bool:
    """A candidate that is decisively somebody else: a prefix match, or (for a user ID search) a
    user whose user ID is a different one."""
    if match_type == PREFIX_MATCH:
        return True
    return term_kind == IdentifierKind.USER_ID.value and user_id is not None and user_id != term


def _users(count: int) -> str:
    return "1 user" if count == 1 else f"{count} users"
