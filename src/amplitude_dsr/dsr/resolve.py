"""Identity resolution inside a workflow: search every term in every project, fetch each
accepted user's activity once, confirm, resolve ambiguous answers, and assemble subjects
(merged IDs followed).

User-pool cost for an ordinary subject: one search per term plus one activity page. A term is
searched once per project even when several identifiers produce it. An ambiguous answer costs
nothing more when another identifier found the person, else one prefix probe for a user ID
(plus the activity page of a user it finds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from amplitude_dsr.amplitude.models import UserSearchResult
from amplitude_dsr.dsr import steps
from amplitude_dsr.dsr.identity import (
    SearchTerm,
    build_subject,
    confirm,
    covers,
    is_ambiguous,
    judge,
    merge_subjects,
    prefix_probe,
    probe_outcome,
    search_terms,
)
from amplitude_dsr.dsr.model import Identifier, Resolution, SearchAttempt, Subject
from amplitude_dsr.dsr.runtime import Runtime

COVERED_NOTE = "resolved: a user found through another identifier has exactly this identifier"
PROBE_NOTES = {
    "found": "resolved by the prefix probe that follows",
    "absent": "resolved as not found: the prefix probe that follows found no user_id starting like this one",
}


@dataclass
class Resolved:
    """The resolution record plus what activity was fetched for each subject (by key)."""

    resolution: Resolution
    activity: dict[str, steps.ActivityOutcome] = field(default_factory=dict)


@dataclass
class _Project:
    """The resolution of every term in one project."""

    rt: Runtime
    request_id: str
    project: str
    keep_events: bool
    full_history: bool
    attempts: list[SearchAttempt]
    subjects: list[Subject] = field(default_factory=list)
    activity: dict[str, steps.ActivityOutcome] = field(default_factory=dict)
    searched: dict[str, UserSearchResult] = field(default_factory=dict)
    fetched: dict[int, steps.ActivityOutcome] = field(default_factory=dict)

    def search(self, term: SearchTerm) -> int:
        """Search ``term`` (once per project), record the attempt; return its index."""
        result = self.searched.get(term.term)
        if result is None:
            result = self.searched[term.term] = steps.call(self.rt, steps.search_step, self.project, term.term)
        self.attempts.append(
            SearchAttempt(
                identifier=term.identifier, project=self.project, term_kind=term.term_kind.value,
                via=term.via, term=term.term, match_type=result.type, candidates=judge(term, result),
                probe_for=term.probe_for,
            )
        )  # fmt: skip
        return len(self.attempts) - 1

    def confirm_accepted(self, searches: Sequence[tuple[SearchTerm, int]]) -> None:
        """Fetch each accepted user's activity once, confirm every acceptance, add subjects."""
        pending: dict[int, list[tuple[SearchTerm, int, int]]] = {}
        for term, attempt_i in searches:
            for cand_i, cand in enumerate(self.attempts[attempt_i].candidates):
                if cand.accepted:
                    pending.setdefault(cand.amplitude_id, []).append((term, attempt_i, cand_i))
        for amplitude_id, refs in pending.items():
            outcome = self.fetched.get(amplitude_id)
            if outcome is None:
                outcome = steps.call(
                    self.rt, steps.activity_step, self.request_id, self.project, amplitude_id, self.keep_events,
                    self.full_history,
                )  # fmt: skip
                ud = outcome.user_data
                for known in {amplitude_id, ud.canonical_amplitude_id, *ud.merged_amplitude_ids}:
                    if known is not None:
                        self.fetched.setdefault(known, outcome)
            confirmed = []
            for term, attempt_i, cand_i in refs:
                ok, reason = confirm(term, amplitude_id, outcome.user_data)
                cand = self.attempts[attempt_i].candidates[cand_i]
                if not ok or "pending confirmation" in cand.reason:
                    self.attempts[attempt_i].candidates[cand_i] = cand.model_copy(
                        update={"accepted": ok, "reason": reason}
                    )
                if ok:
                    confirmed.append(term.identifier)
            if confirmed:
                subject = build_subject(self.project, amplitude_id, outcome.user_data, confirmed)
                self.subjects.append(subject)
                self.activity.setdefault(subject.key, outcome)

    def resolve_ambiguous(self, searches: Sequence[tuple[SearchTerm, int]]) -> None:
        """Answers about somebody else: resolved by a subject already found, else by a prefix
        probe; what stays unresolved is flagged ``ambiguous`` on its attempt."""
        probes: list[tuple[SearchTerm, int, int]] = []
        for term, attempt_i in searches:
            attempt = self.attempts[attempt_i]
            if not is_ambiguous(term, attempt.match_type, attempt.candidates):
                continue
            covering = next((i for i, s in enumerate(self.subjects) if covers(term, s)), None)
            if covering is not None:
                subject = self.subjects[covering]
                matched_by = list(dict.fromkeys([*subject.matched_by, term.identifier]))
                self.subjects[covering] = subject.model_copy(update={"matched_by": matched_by})
                self.attempts[attempt_i] = attempt.model_copy(update={"note": COVERED_NOTE})
                continue
            probe = prefix_probe(term)
            if probe is None:
                self.attempts[attempt_i] = attempt.model_copy(update={"ambiguous": True})
                continue
            probes.append((probe, attempt_i, self.search(probe)))
        self.confirm_accepted([(probe, probe_i) for probe, _, probe_i in probes])
        for _, attempt_i, probe_i in probes:
            probed = self.attempts[probe_i]
            outcome = probe_outcome(probed.match_type, probed.candidates)
            update = {"note": PROBE_NOTES[outcome]} if outcome in PROBE_NOTES else {"ambiguous": True}
            self.attempts[attempt_i] = self.attempts[attempt_i].model_copy(update=update)


def resolve(
    rt: Runtime,
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
    subjects: list[Subject] = []
    activity: dict[str, steps.ActivityOutcome] = {}
    for project in projects:
        run = _Project(rt, request_id, project, keep_events, full_history, attempts)
        searches = [(term, run.search(term)) for term in terms]
        run.confirm_accepted(searches)
        run.resolve_ambiguous(searches)
        subjects.extend(run.subjects)
        for key, outcome in run.activity.items():
            activity.setdefault(key, outcome)
    merged = merge_subjects(subjects)
    kept = {s.key: activity[s.key] for s in merged if s.key in activity}
    return Resolved(Resolution(attempts=attempts, subjects=merged), kept)
