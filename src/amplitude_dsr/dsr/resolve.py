"""Identity resolution inside a workflow: search every term in every project, fetch each
accepted user's activity once, confirm, and assemble subjects (merged IDs followed).

User-pool cost for an ordinary subject: one search per term plus one activity page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from amplitude_dsr.dsr import steps
from amplitude_dsr.dsr.identity import SearchTerm, build_subject, confirm, judge, merge_subjects, search_terms
from amplitude_dsr.dsr.model import Identifier, Resolution, SearchAttempt, Subject


@dataclass
class Resolved:
    """The resolution record plus what activity was fetched for each subject (by key)."""

    resolution: Resolution
    activity: dict[str, steps.ActivityOutcome] = field(default_factory=dict)


def resolve(
    request_id: str,
    identifiers: Sequence[Identifier],
    projects: Sequence[str],
    *,
    identity_map: Mapping[str, Sequence[str]] | None = None,
    keep_events: bool = False,
    full_history: bool = False,
) -> Resolved:
    """Resolve ``identifiers`` in every project to exact subjects (runs inside a workflow)."""
    terms = search_terms(identifiers, identity_map)
    attempts: list[SearchAttempt] = []
    pending: dict[tuple[str, int], list[tuple[SearchTerm, int, int]]] = {}
    for project in projects:
        for term in terms:
            result = steps.call(steps.search_step, project, term.term)
            candidates = judge(term, result)
            attempts.append(
                SearchAttempt(
                    identifier=term.identifier, project=project, term_kind=term.term_kind.value,
                    via=term.via, term=term.term, match_type=result.type, candidates=candidates,
                )
            )  # fmt: skip
            for index, cand in enumerate(candidates):
                if cand.accepted:
                    pending.setdefault((project, cand.amplitude_id), []).append((term, len(attempts) - 1, index))

    subjects: list[Subject] = []
    activity: dict[str, steps.ActivityOutcome] = {}
    fetched_ids: dict[tuple[str, int], steps.ActivityOutcome] = {}
    for (project, amplitude_id), refs in pending.items():
        outcome = fetched_ids.get((project, amplitude_id))
        if outcome is None:
            outcome = steps.call(steps.activity_step, request_id, project, amplitude_id, keep_events, full_history)
            ud = outcome.user_data
            for known in {amplitude_id, ud.canonical_amplitude_id, *ud.merged_amplitude_ids}:
                if known is not None:
                    fetched_ids.setdefault((project, known), outcome)
        confirmed = []
        for term, attempt_i, cand_i in refs:
            ok, reason = confirm(term, amplitude_id, outcome.user_data)
            cand = attempts[attempt_i].candidates[cand_i]
            if not ok or "pending confirmation" in cand.reason:
                update = {"accepted": ok, "reason": reason}
                attempts[attempt_i].candidates[cand_i] = cand.model_copy(update=update)
            if ok:
                confirmed.append(term.identifier)
        if confirmed:
            subject = build_subject(project, amplitude_id, outcome.user_data, confirmed)
            subjects.append(subject)
            activity.setdefault(subject.key, outcome)
    merged = merge_subjects(subjects)
    kept = {s.key: activity[s.key] for s in merged if s.key in activity}
    return Resolved(Resolution(attempts=attempts, subjects=merged), kept)
