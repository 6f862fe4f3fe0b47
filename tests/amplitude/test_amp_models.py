"""Wire-model tolerance: unknown fields, both invalid-ID spellings, numeric-or-string IDs,
sentinels."""

from __future__ import annotations

import pytest

from amplitude_dsr.amplitude import (
    DeletionJob,
    DsarRequest,
    UserActivity,
    UserSearchResult,
    clean_sentinels,
)
from amplitude_dsr.amplitude.models import LONG_MAX, LONG_MIN


def test_search_tolerates_unknown_fields_and_string_ids() -> None:
    result = UserSearchResult.model_validate(
        {
            "matches": [
                {"user_id": None, "amplitude_id": "356893043036", "last_device_id": "X", "new": 1},
                {"user_id": 12345, "amplitude_id": 2},
            ],
            "type": "match_user_or_device_id",
            "surprise": {"nested": True},
        }
    )
    assert [m.amplitude_id for m in result.matches] == [356893043036, 2]
    assert result.matches[1].user_id == "12345"


def test_nomatch_defaults() -> None:
    assert UserSearchResult.model_validate({"type": "nomatch", "matches": []}).matches == []


@pytest.mark.parametrize("key", ["invalid_ids", "invalid_id"])
def test_both_invalid_id_spellings(key: str) -> None:
    job = DeletionJob.model_validate({"day": "2024-06-14", "status": "staging", key: ["a", 5]})
    assert job.invalid_ids == ["a", "5"]


def test_deletion_job_with_app_and_scrub_date() -> None:
    job = DeletionJob.model_validate(
        {
            "day": "2022-03-03",
            "status": "done",
            "amplitude_ids": [{"amplitude_id": "356896327775", "requested_on_day": "2022-02-17"}],
            "app": 123456,
            "active_scrub_done_date": "2022-03-05",
        }
    )
    assert job.amplitude_ids[0].amplitude_id == 356896327775
    assert job.invalid_ids == []


def test_sentinels_are_cleaned_from_user_data() -> None:
    activity = UserActivity.model_validate(
        {
            "userData": {
                "user_id": "u",
                "last_location": {"lat": LONG_MAX, "lng": LONG_MAX},
                "firstSeen": LONG_MIN,
                "merged_amplitude_ids": None,
                "properties": None,
            },
            "events": [{"uuid": "e1", "$insert_id": "i1", "session_id": -1, "odd": [1]}],
        }
    )
    assert activity.user_data.last_location is None
    assert activity.user_data.model_extra == {"firstSeen": None}
    assert activity.user_data.merged_amplitude_ids == []
    assert activity.events[0].insert_id == "i1"
    assert activity.events[0].to_wire()["$insert_id"] == "i1"
    assert clean_sentinels([str(LONG_MAX), 1, True]) == [None, 1, True]


def test_dsar_request_aliases() -> None:
    got = DsarRequest.model_validate({"requestId": "7", "status": "failed", "failReason": "big"})
    assert (got.request_id, got.fail_reason, got.urls) == (7, "big", [])
