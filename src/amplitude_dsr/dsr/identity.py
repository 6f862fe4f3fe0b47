"""Exact identity resolution: pure decisions about User Search results.

Rules (``docs/amplitude.md#user-search``, gotchas 3 and 4):

* An email is searched as a ``user_id`` (or as the user IDs an identity map gives for it): as
  given and, when that differs, lower-cased. Other user IDs are case-sensitive.
* A ``match_user_prefix`` result is never accepted: it is somebody else. The one exception is a
  *prefix probe* (below), which accepts only a match whose ``user_id`` equals the identifier.
* A user ID query accepts only matches whose ``user_id`` equals the query exactly.
* An Amplitude ID query accepts only that Amplitude ID (or the canonical user of a merged ID,
  confirmed later against ``merged_amplitude_ids``), never a user whose ``user_id`` happens to be
  the same number.
* A device ID query accepts exact matches, confirmed later against the user's ``device_ids``
  (also a user whose ``user_id`` equals the device ID: it may own that device).
* An answer about somebody else (a numeric user ID or device ID taken for another user's
  Amplitude ID, an Amplitude ID taken for a user ID) is *ambiguous*: the person may exist. It is
  resolved by a user another identifier found (:func:`covers`), or for a user ID by a prefix probe
  (:func:`prefix_probe`); otherwise it is reported as unresolved, never as "no data".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from amplitude_dsr.amplitude.models import UserData, UserSearchResult
from amplitude_dsr.dsr.model import Candidate, Identifier, IdentifierKind, Subject

PREFIX = "match_user_prefix"
EXACT_USER_OR_DEVICE = "match_user_or_device_id"
EXACT_AMPLITUDE_ID = "match_amplitude_id"
NOMATCH = "nomatch"


@dataclass(frozen=True)
class SearchTerm:
    """One User Search query to make for an identifier."""

    identifier: Identifier
    term: str
    term_kind: IdentifierKind  # USER_ID, AMPLITUDE_ID or DEVICE_ID: what the term is
    via: str = "identifier"
    probe_for: str | None = None  # a prefix probe: the user_id a match must equal exactly

    @property
    def wanted(self) -> str:
        """The value a match must have: the term itself, or for a probe the full user ID."""
        return self.probe_for or self.term


def search_terms(
    identifiers: Iterable[Identifier], identity_map: Mapping[str, Sequence[str]] | None = None
) -> list[SearchTerm]:
    """The de-duplicated searches to run for ``identifiers``.

    ``identity_map`` maps an email to the user IDs the product uses; without an entry the email
    itself is searched as a user ID.
    """
    terms: dict[tuple[str, IdentifierKind, Identifier], SearchTerm] = {}
    for ident in identifiers:
        if ident.kind is IdentifierKind.EMAIL:
            mapped = list((identity_map or {}).get(ident.value.lower(), ()))
            if mapped:
                for user_id in mapped:
                    key = (user_id, IdentifierKind.USER_ID, ident)
                    terms.setdefault(key, SearchTerm(ident, user_id, IdentifierKind.USER_ID, "identity_map"))
                continue
            kind = IdentifierKind.USER_ID
            lower = ident.value.lower()
            if lower != ident.value:  # the product may store it either way: search both forms
                terms.setdefault((ident.value, kind, ident), SearchTerm(ident, ident.value, kind))
                terms.setdefault((lower, kind, ident), SearchTerm(ident, lower, kind))
                continue
        else:
            kind = ident.kind
        terms.setdefault((ident.value, kind, ident), SearchTerm(ident, ident.value, kind))
    return list(terms.values())


def prefix_probe(term: SearchTerm) -> SearchTerm | None:
    """The search that can find a user ID hidden behind an ambiguous answer: the user ID without
    its last character, which User Search answers as a prefix search; only a match whose
    ``user_id`` equals the full user ID is then accepted. ``None`` for other kinds (User Search
    has no device ID prefix search) and for one-character IDs."""
    if term.term_kind is not IdentifierKind.USER_ID or term.probe_for or len(term.term) < 2:
        return None
    return SearchTerm(term.identifier, term.term[:-1], IdentifierKind.USER_ID, term.via, probe_for=term.term)


def probe_outcome(match_type: str, candidates: Sequence[Candidate]) -> str:
    """What a prefix probe proved: ``"found"`` (the user is among its matches), ``"absent"``
    (``nomatch``: no user_id even starts with the probe, so none equals the identifier) or
    ``"unknown"`` (other users only, or another Amplitude ID answer: the identifier stays
    ambiguous, as User Search documents no cap on matches but does not promise all of them)."""
    if any(c.accepted for c in candidates):
        return "found"
    return "absent" if match_type == NOMATCH else "unknown"


def is_ambiguous(term: SearchTerm, match_type: str, candidates: Sequence[Candidate]) -> bool:
    """True when User Search answered with somebody else in a way that may hide the person:
    nothing accepted, and the query was taken for an Amplitude ID although it is a user or device
    ID, or (an Amplitude ID query) taken for a user or device ID."""
    if term.probe_for or any(c.accepted for c in candidates):
        return False
    if term.term_kind is IdentifierKind.AMPLITUDE_ID:
        return match_type == EXACT_USER_OR_DEVICE and bool(candidates)
    return match_type == EXACT_AMPLITUDE_ID


def covers(term: SearchTerm, subject: Subject) -> bool:
    """Whether ``subject`` (found and confirmed through another search) is exactly what ``term``
    names: its user_id, one of its devices, or one of its Amplitude IDs."""
    if term.term_kind is IdentifierKind.USER_ID:
        return subject.user_id == term.wanted
    if term.term_kind is IdentifierKind.DEVICE_ID:
        return term.term in subject.device_ids
    return term.term.isdigit() and int(term.term) in subject.all_amplitude_ids


def judge(term: SearchTerm, result: UserSearchResult) -> list[Candidate]:
    """Decide, for every match of one search, whether it is the data subject and why."""
    candidates = []
    for match in result.matches:
        accepted, reason = _judge_one(term, result.type, match.amplitude_id, match.user_id)
        candidates.append(
            Candidate(amplitude_id=match.amplitude_id, user_id=match.user_id, accepted=accepted, reason=reason)
        )
    return candidates


def _judge_one(term: SearchTerm, match_type: str, amplitude_id: int, user_id: str | None) -> tuple[bool, str]:
    if term.probe_for is not None:
        if user_id == term.probe_for:
            return True, "accepted pending confirmation: prefix probe, user_id equals the identifier exactly"
        return False, "rejected: prefix probe match whose user_id is not the identifier"
    if match_type == PREFIX:
        return False, "rejected: prefix match, another user's user_id only starts with the query"
    if term.term_kind is IdentifierKind.USER_ID:
        if user_id == term.term:
            return True, "accepted: user_id equals the query exactly"
        if match_type == EXACT_AMPLITUDE_ID:
            return False, "rejected: User Search took the query for this user's Amplitude ID; its user_id differs"
        return False, "rejected: the match's user_id differs from the query"
    if term.term_kind is IdentifierKind.AMPLITUDE_ID:
        if str(amplitude_id) == term.term:
            return True, "accepted: Amplitude ID equals the query"
        if user_id == term.term:
            return False, "rejected: a different user whose user_id is this number"
        if match_type == EXACT_AMPLITUDE_ID:
            return True, "accepted pending confirmation: canonical user of a merged Amplitude ID"
        return False, "rejected: a different user (e.g. whose user_id is this number)"
    # device ID: an exact match is the device's user, or a user whose user_id is the same string
    # (who may own the device too): the user's device_ids decide.
    if match_type in (EXACT_USER_OR_DEVICE, ""):
        return True, "accepted pending confirmation: exact device_id match"
    if match_type == EXACT_AMPLITUDE_ID:
        return False, "rejected: User Search took the query for this user's Amplitude ID"
    return False, "rejected: not an exact device_id match"


def confirm(term: SearchTerm, candidate_id: int, user_data: UserData) -> tuple[bool, str]:
    """Check a provisionally accepted match against the user's activity summary."""
    all_ids = {candidate_id, *(user_data.merged_amplitude_ids or [])}
    if user_data.canonical_amplitude_id is not None:
        all_ids.add(user_data.canonical_amplitude_id)
    if term.term_kind is IdentifierKind.AMPLITUDE_ID:
        if int(term.term) in all_ids:
            return True, "confirmed: the Amplitude ID belongs to this user (canonical or merged)"
        return False, "rejected: the Amplitude ID is not among this user's IDs"
    if term.term_kind is IdentifierKind.DEVICE_ID:
        if term.term in user_data.device_ids:
            return True, "confirmed: the device ID belongs to this user"
        # Also when the summary lists no devices: unproven is not accepted (it may be a prefix
        # match on somebody's user_id mixed into an exact result).
        return False, "rejected: the device ID is not among this user's devices"
    if term.term_kind is IdentifierKind.USER_ID and user_data.user_id not in (None, term.wanted):
        return False, "rejected: the user's current user_id differs from the query"
    if term.probe_for is not None and user_data.user_id is None:
        return False, "rejected: the summary does not show the user_id the probe looked for"
    return True, "confirmed"


def build_subject(
    project: str, amplitude_id: int, user_data: UserData | None, matched_by: Iterable[Identifier]
) -> Subject:
    """A :class:`Subject` from a confirmed match and its activity summary (merged IDs followed)."""
    canonical = amplitude_id
    merged: list[int] = []
    device_ids: list[str] = []
    user_id = None
    if user_data is not None:
        canonical = user_data.canonical_amplitude_id or amplitude_id
        merged = [i for i in user_data.merged_amplitude_ids if i != canonical]
        if amplitude_id != canonical and amplitude_id not in merged:
            merged.append(amplitude_id)
        device_ids = list(user_data.device_ids)
        user_id = user_data.user_id
    return Subject(
        project=project,
        amplitude_id=canonical,
        merged_amplitude_ids=merged,
        user_id=user_id,
        device_ids=device_ids,
        matched_by=list(dict.fromkeys(matched_by)),
    )


def merge_subjects(subjects: Iterable[Subject]) -> list[Subject]:
    """Collapse subjects that are the same Amplitude user (same project, overlapping IDs)."""
    result: list[Subject] = []
    for subject in subjects:
        ids = set(subject.all_amplitude_ids)
        for i, existing in enumerate(result):
            if existing.project == subject.project and ids & set(existing.all_amplitude_ids):
                result[i] = existing.model_copy(
                    update={
                        "merged_amplitude_ids": sorted(
                            (set(existing.all_amplitude_ids) | ids) - {existing.amplitude_id}
                        ),
                        "device_ids": list(dict.fromkeys([*existing.device_ids, *subject.device_ids])),
                        "matched_by": list(dict.fromkeys([*existing.matched_by, *subject.matched_by])),
                    }
                )
                break
        else:
            result.append(subject)
    return result
