"""Verification after a deletion job is ``done``: is the person really gone from Amplitude?

Every identifier is searched again in every project (exact matches only). An answer naming
somebody else proves nothing (a numeric user ID taken for another user's Amplitude ID): such a
user ID is probed by prefix, and where that cannot settle it the deleted Amplitude IDs are
searched directly. Outcomes (``verified``, ``recollected``, ``still_present``) are decided by
:func:`~amplitude_dsr.dsr.deletion_logic.verification_outcome`.
"""

from __future__ import annotations

from collections.abc import Sequence

from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr import steps
from amplitude_dsr.dsr.identity import SearchTerm, is_ambiguous, judge, prefix_probe, probe_outcome, search_terms
from amplitude_dsr.dsr.model import Candidate, Identifier, IdentifierKind, Verification
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.store import repo


def verify(
    rt: Runtime,
    identifiers: list[Identifier],
    projects: list[str],
    items: Sequence[repo.Item],
    imap: dict[str, list[str]],
) -> list[Verification]:
    """Search every identifier again in every project. An answer that names somebody else (a
    numeric user ID taken for another user's Amplitude ID) proves nothing: the user ID is probed
    by prefix, and where that cannot settle it the deleted Amplitude IDs are searched directly."""
    deleted: dict[str, set[int]] = {}
    for item in items:
        deleted.setdefault(item.project, set()).add(item.amplitude_id)
    results: dict[tuple[Identifier, str], Verification] = {}
    for project in projects:
        gone = deleted.get(project, set())
        for term in search_terms(identifiers, imap):
            accepted, settled = _verification_search(rt, project, term)
            if not settled and gone:
                accepted = _direct_check(rt, project, term.identifier, gone)
            outcome, found, detail = logic.verification_outcome(accepted, gone)
            key = (term.identifier, project)
            previous = results.get(key)
            if previous is None or previous.outcome == "verified":
                results[key] = Verification(
                    identifier=term.identifier, project=project, outcome=outcome, checked_at=steps.now_step(),
                    deleted_amplitude_ids=sorted(gone), found_amplitude_ids=found, detail=detail,
                )  # fmt: skip
    return [v for v in results.values() if v.deleted_amplitude_ids or v.outcome != "verified"]


def _verification_search(rt: Runtime, project: str, term: SearchTerm) -> tuple[list[Candidate], bool]:
    """The exact matches of ``term`` now, and whether the answer settles the question."""
    result = steps.call(rt, steps.search_step, project, term.term)
    judged = judge(term, result)
    if not is_ambiguous(term, result.type, judged):
        return [c for c in judged if c.accepted], True
    probe = prefix_probe(term)
    if probe is None:
        return [], False
    probe_result = steps.call(rt, steps.search_step, project, probe.term)
    probed = judge(probe, probe_result)
    accepted = [c for c in probed if c.accepted]
    return accepted, bool(accepted) or probe_outcome(probe_result.type, probed) == "absent"


def _direct_check(rt: Runtime, project: str, identifier: Identifier, gone: set[int]) -> list[Candidate]:
    """Search each deleted Amplitude ID itself: one that is still found is still present."""
    found: list[Candidate] = []
    for amplitude_id in sorted(gone):
        term = SearchTerm(identifier, str(amplitude_id), IdentifierKind.AMPLITUDE_ID)
        found += [c for c in judge(term, steps.call(rt, steps.search_step, project, term.term)) if c.accepted]
    return found
