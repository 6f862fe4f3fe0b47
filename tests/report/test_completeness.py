"""``dsr.completeness.assess``: partial-ness derived from the data, identifier-free reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from report_builders import EMAIL, access_result, event

from amplitude_dsr.dsr.completeness import Completeness, assess, coverage
from amplitude_dsr.dsr.model import AccessResult, Candidate, DsarInfo, Identifier, SearchAttempt, SubjectData

IDENTIFIER_VALUES = ("jane@example.com", "dev-1", "12345", "11111", "999")


def _result(tmp_path: Path, *, events: int = 3, num_events: int | None = 3, **subject: Any) -> AccessResult:
    result = access_result(tmp_path, [event(i) for i in range(events)])
    data = result.subjects[0]
    summary = {**data.summary, "num_events": num_events} if num_events is not None else data.summary
    fields: dict[str, Any] = {"summary": summary, "sources": ["user_activity"], "dsar": None, **subject}
    result.subjects[0] = data.model_copy(update=fields)
    return result


def _identifier_free(completeness: Completeness) -> None:
    for reason in completeness.reasons:
        assert "\n" not in reason
        for value in IDENTIFIER_VALUES:
            assert value not in reason


def test_everything_collected_is_complete(tmp_path: Path) -> None:
    result = _result(tmp_path)
    assert assess(result) == Completeness(complete=True, reasons=[])
    assert assess(result).status == "complete"


def test_fewer_events_than_amplitude_reports_is_partial_with_the_way_to_the_rest(tmp_path: Path) -> None:
    result = _result(tmp_path, events=3, num_events=1500)
    verdict = assess(result)
    assert verdict.status == "partial"
    [reason] = verdict.reasons
    assert reason.startswith("3 of the 1,500 events Amplitude reports are included (the most recent events")
    assert "--full-history" in reason and "organisation keys" in reason
    _identifier_free(verdict)
    cov = coverage(result.subjects[0])
    assert (cov.source, cov.events_reported, cov.events_included, cov.events_missing) == ("recent", 1500, 3, 1497)


def test_full_history_still_short_points_at_org_keys_only(tmp_path: Path) -> None:
    result = _result(tmp_path, num_events=10, sources=["user_activity_full_history"])
    [reason] = assess(result).reasons
    assert "--full-history" not in reason and "organisation keys" in reason


def test_unknown_count_is_not_a_gap(tmp_path: Path) -> None:
    result = _result(tmp_path, num_events=None)
    assert assess(result).complete
    assert coverage(result.subjects[0]).events_reported is None


@pytest.mark.parametrize(
    ("dsar", "expected"),
    [
        (
            DsarInfo(request_id=7, status="failed", fail_reason="too many events", fell_back_to_project_keys=True),
            "The DSAR export (complete history) of 1 user ended 'failed'; "
            "the data available with project keys is included instead.",
        ),
        (
            DsarInfo(request_id=7, status="download_failed", fell_back_to_project_keys=True),
            "The DSAR export (complete history) of 1 user could not be downloaded; "
            "the data available with project keys is included instead.",
        ),
    ],
)
def test_a_dsar_that_did_not_succeed_is_partial_and_blames_neither_keys_nor_region(
    tmp_path: Path, dsar: DsarInfo, expected: str
) -> None:
    verdict = assess(_result(tmp_path, dsar=dsar))
    assert verdict.reasons == [expected]
    text = " ".join(verdict.reasons).lower()
    assert "region" not in text and "check" not in text and "organisation keys" not in text
    assert "too many events" not in text  # Amplitude's free text stays in the package


def test_a_dsar_refused_for_authentication_names_the_keys_and_region(tmp_path: Path) -> None:
    dsar = DsarInfo(status="failed", fell_back_to_project_keys=True, auth_error=True)
    [reason] = assess(_result(tmp_path, dsar=dsar)).reasons
    assert reason.endswith("Amplitude refused the organisation keys: check them and the region.")


def test_a_merged_dsar_is_complete(tmp_path: Path) -> None:
    dsar = DsarInfo(request_id=7, status="done", files=2, events=3)
    result = _result(tmp_path, dsar=dsar, sources=["dsar", "user_activity"])
    assert assess(result).complete
    assert coverage(result.subjects[0]).source == "dsar"


def test_an_incomplete_most_recent_session_is_partial(tmp_path: Path) -> None:
    verdict = assess(_result(tmp_path, most_recent_session_complete=False))
    assert verdict.reasons == ["The most recent session of 1 user could not be collected completely."]


def test_several_subjects_are_told_apart_by_position_not_identifier(tmp_path: Path) -> None:
    result = _result(tmp_path, num_events=50)
    second: SubjectData = result.subjects[0].model_copy(update={"summary": {"num_events": 3}})
    result.subjects.append(second)
    verdict = assess(result)
    assert [r[:30] for r in verdict.reasons] == ["For user 1 of 2, 3 of the 50 e"]
    _identifier_free(verdict)


def _attempt(identifier: Identifier, term_kind: str, match_type: str, *candidates: Candidate) -> SearchAttempt:
    return SearchAttempt(
        identifier=identifier,
        project="web",
        term_kind=term_kind,
        term=identifier.value,
        match_type=match_type,
        candidates=list(candidates),
    )


def test_an_identifier_amplitude_answered_but_we_could_not_confirm_is_partial(tmp_path: Path) -> None:
    result = _result(tmp_path)
    numeric = Identifier.parse("user_id", "12345678")
    shadow = Candidate(amplitude_id=12345678, user_id=None, accepted=False, reason="rejected: a different user")
    result.resolution.attempts.append(_attempt(numeric, "user_id", "match_amplitude_id", shadow))
    verdict = assess(result)
    assert verdict.reasons == [
        "1 identifier could not be resolved: Amplitude returned users that could not be confirmed as the "
        "data subject; anything held under it is not included."
    ]
    assert "12345678" not in verdict.reasons[0]


def test_an_identifier_with_only_other_users_or_nobody_is_an_answer_not_a_gap(tmp_path: Path) -> None:
    result = _result(tmp_path)
    longer = Identifier.parse("user_id", "jane")
    prefix = Candidate(amplitude_id=5, user_id="jane@example.com", accepted=False, reason="rejected: prefix match")
    other = Candidate(amplitude_id=6, user_id="janet", accepted=False, reason="rejected: user_id differs")
    result.resolution.attempts.append(_attempt(longer, "user_id", "match_user_prefix", prefix))
    result.resolution.attempts.append(_attempt(longer, "user_id", "match_user_or_device_id", other))
    result.resolution.attempts.append(_attempt(Identifier.parse("device_id", "gone"), "device_id", "none"))
    assert assess(result).complete


def test_no_data_held_is_a_complete_answer(tmp_path: Path) -> None:
    result = access_result(tmp_path, None)
    prefix = Candidate(amplitude_id=999, user_id="jane@example.com.au", accepted=False, reason="rejected: prefix")
    result.resolution.attempts = [_attempt(EMAIL, "user_id", "match_user_or_device_id", prefix)]
    assert result.resolution.unresolved() == [EMAIL] and not result.subjects
    assert assess(result).complete
