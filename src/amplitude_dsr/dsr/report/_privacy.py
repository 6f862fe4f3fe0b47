"""The resolution record as the data subject may see it: their own identities only.

User Search answers with other people too (a user ID that merely starts with the query, a user
whose ``user_id`` is the queried number). Those candidates are somebody else's personal data
(GDPR art. 15(4)), and listing them would let anyone enumerate user IDs by prefix. So documents
for the data subject keep a candidate only when it is one of the subject's own Amplitude IDs, and
*count* the others; the full record goes to the operator record (``_operator.py``) instead.
"""

from __future__ import annotations

from typing import Any

from amplitude_dsr.dsr.model import Candidate, Resolution, SearchAttempt


def own_amplitude_ids(resolution: Resolution) -> set[int]:
    """Every Amplitude ID (canonical or merged) of the accepted subjects."""
    return {i for s in resolution.subjects for i in s.all_amplitude_ids}


def is_own(candidate: Candidate, own: set[int]) -> bool:
    """Whether the subject may see ``candidate``: it was accepted, or it is one of their IDs."""
    return candidate.accepted or candidate.amplitude_id in own


def visible_candidates(attempt: SearchAttempt, own: set[int]) -> list[Candidate]:
    """The candidates of ``attempt`` that are the subject's own identities."""
    return [c for c in attempt.candidates if is_own(c, own)]


def excluded_in(attempt: SearchAttempt, own: set[int]) -> int:
    """How many other users ``attempt`` returned (left out of the subject's documents)."""
    return sum(not is_own(c, own) for c in attempt.candidates)


def excluded_total(resolution: Resolution) -> int:
    """How many distinct other users all searches returned together."""
    own = own_amplitude_ids(resolution)
    return len({c.amplitude_id for a in resolution.attempts for c in a.candidates if not is_own(c, own)})


def excluded_sentence(count: int) -> str:
    """``"2 other Amplitude users returned by the search were excluded: ..."`` (no identifiers)."""
    if count == 1:
        return "1 other Amplitude user returned by the search was excluded: not an exact match, so someone else."
    return f"{count} other Amplitude users returned by the search were excluded: not exact matches, so other people."


def public_attempt(attempt: SearchAttempt, own: set[int]) -> dict[str, Any]:
    """One search attempt as JSON, with other people's candidates replaced by their count."""
    doc = attempt.model_dump(mode="json")
    doc["candidates"] = [c.model_dump(mode="json") for c in visible_candidates(attempt, own)]
    doc["excluded_candidates"] = excluded_in(attempt, own)
    return doc


def public_resolution_json(resolution: Resolution) -> dict[str, Any]:
    """``resolution`` of the export and the certificate (schema version 2)."""
    own = own_amplitude_ids(resolution)
    return {
        "attempts": [public_attempt(a, own) for a in resolution.attempts],
        "unresolved": [i.model_dump(mode="json") for i in resolution.unresolved()],
        "unresolved_details": [d.model_dump(mode="json") for d in resolution.unresolved_details()],
        "excluded_candidates": excluded_total(resolution),
    }
