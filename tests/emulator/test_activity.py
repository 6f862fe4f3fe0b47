"""User Activity: whole-session pages, overlap, limits, sentinels, merged IDs (docs/amplitude.md#user-activity)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .conftest import Emu

LONG_MAX = 9223372036854775807
LONG_MIN = -9223372036854775808
TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def _activity(emu: Emu, aid: int, project: str = "web", **params: Any) -> dict[str, Any]:
    response = emu.get("/api/2/useractivity", project, user=aid, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _sessions_whole(events: list[dict[str, Any]], all_events: list[dict[str, Any]]) -> bool:
    counts: dict[int, int] = {}
    for e in {e["uuid"]: e for e in all_events}.values():
        counts[e["session_id"]] = counts.get(e["session_id"], 0) + 1
    page: dict[int, int] = {}
    for e in events:
        page[e["session_id"]] = page.get(e["session_id"], 0) + 1
    return all(counts[s] == n for s, n in page.items())


def test_heavy_user_pages_widen_and_overlap(emu: Emu) -> None:
    heavy = emu.catalog["web"]["heavy"]
    assert heavy["num_events"] == 1500
    start, end = heavy["page_boundary_session"]
    assert start < 1000 < end  # the seeded session straddles the first page boundary
    first = _activity(emu, heavy["amplitude_id"])
    assert len(first["events"]) == end > 1000  # widened past the limit to a whole session
    second = _activity(emu, heavy["amplitude_id"], offset=1000)
    assert len(second["events"]) == 1500 - start  # widened back to the session start
    overlap = {e["uuid"] for e in first["events"]} & {e["uuid"] for e in second["events"]}
    assert len(overlap) == end - start
    union = {e["uuid"] for e in first["events"] + second["events"]}
    assert len(union) == 1500
    everything = first["events"] + second["events"]
    assert _sessions_whole(first["events"], everything)
    assert _sessions_whole(second["events"], everything)


def test_events_newest_first_grouped_by_session(emu: Emu) -> None:
    heavy = emu.catalog["web"]["heavy"]
    events = _activity(emu, heavy["amplitude_id"], limit=300)["events"]
    session_ids = [e["session_id"] for e in events]
    starts = [s for i, s in enumerate(session_ids) if i == 0 or session_ids[i - 1] != s]
    assert starts == sorted(starts, reverse=True)
    assert len(starts) == len(set(starts))  # each session appears as one contiguous block
    unsorted = [
        s for s in starts
        if [e["event_time"] for e in events if e["session_id"] == s]
        != sorted((e["event_time"] for e in events if e["session_id"] == s), reverse=True)
    ]  # fmt: skip
    assert unsorted  # some sessions are not strictly sorted by event_time: sort client-side


def test_long_first_session_is_returned_whole(emu: Emu) -> None:
    marathon = emu.catalog["web"]["long_session"]
    body = _activity(emu, marathon["amplitude_id"], limit=10)
    assert len(body["events"]) == 1100
    assert len({e["session_id"] for e in body["events"]}) == 1


def test_event_fields(emu: Emu) -> None:
    alice = emu.catalog["web"]["ordinary"][0]
    event = _activity(emu, alice["amplitude_id"], limit=1)["events"][0]
    for name in (
        "uuid", "$insert_id", "event_id", "session_id", "event_time", "event_type",
        "event_properties", "user_properties", "app", "device_id", "user_id", "amplitude_id",
        "platform", "os_name", "country", "city", "ip_address", "server_upload_time",
    ):  # fmt: skip
        assert name in event, name
    assert TIME_FORMAT.match(event["event_time"])
    assert event["app"] == emu.catalog["web"]["app"]
    assert event["user_id"] == alice["user_id"]


def test_user_data_fields(emu: Emu) -> None:
    alice = emu.catalog["web"]["ordinary"][0]
    data = _activity(emu, alice["amplitude_id"], limit=1)["userData"]
    for name in (
        "user_id", "canonical_amplitude_id", "merged_amplitude_ids", "num_events",
        "num_sessions", "usage_time", "first_used", "last_used", "purchases", "revenue",
        "platform", "os", "version", "device", "device_type", "carrier", "country", "region",
        "city", "dma", "language", "start_version", "device_ids", "last_location",
        "properties", "merge_times", "last_device_id",
    ):  # fmt: skip
        assert name in data, name
    assert data["num_events"] == alice["num_events"]
    assert data["properties"]["email"] == alice["user_id"]


@pytest.mark.parametrize("kind", ["sparse", "unknown"])
def test_sentinels_for_users_without_events(emu: Emu, kind: str) -> None:
    aid = emu.catalog["web"]["sparse"]["amplitude_id"] if kind == "sparse" else 123
    body = _activity(emu, aid)
    data = body["userData"]
    assert body["events"] == []
    assert data["num_events"] == 0
    assert data["last_location"] == {"lat": LONG_MAX, "lng": LONG_MAX}
    assert data["firstSeen"] == LONG_MIN
    assert data["lastSeen"] == LONG_MIN


def test_merged_user_has_events_under_each_id(emu: Emu) -> None:
    merged = emu.catalog["web"]["merged"]
    ids = [merged["amplitude_id"], *merged["merged_amplitude_ids"]]
    for aid in ids:  # any of the IDs reaches the same canonical user
        body = _activity(emu, aid)
        assert body["userData"]["canonical_amplitude_id"] == merged["amplitude_id"]
        assert sorted(body["userData"]["merged_amplitude_ids"]) == sorted(ids[1:])
        assert set(body["userData"]["merge_times"]) == {str(a) for a in ids[1:]}
    events = _activity(emu, merged["amplitude_id"])["events"]
    assert {e["amplitude_id"] for e in events} == set(ids)


def test_direction_earliest_starts_with_oldest(emu: Emu) -> None:
    heavy = emu.catalog["web"]["heavy"]
    latest = _activity(emu, heavy["amplitude_id"], offset=1000)["events"]
    earliest = _activity(emu, heavy["amplitude_id"], direction="earliest", limit=10)["events"]
    oldest_session = latest[-1]["session_id"]
    assert earliest[0]["session_id"] == oldest_session
    assert {e["uuid"] for e in earliest} <= {e["uuid"] for e in latest}


def test_oversize_user_is_paged_lazily(emu: Emu) -> None:
    bulk = emu.catalog["web"]["dsar_oversize"]
    assert bulk["num_events"] > 200_000
    body = _activity(emu, bulk["amplitude_id"], offset=200_000, limit=10)
    assert 10 <= len(body["events"]) <= 100
    assert body["userData"]["num_events"] == bulk["num_events"]
    assert _activity(emu, bulk["amplitude_id"], offset=10**7)["events"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"user": "alice@example.com"},  # must be the numeric Amplitude ID
        {"user": ""},
        {"user": None},  # missing
        {"limit": 1001},
        {"limit": 0},
        {"limit": "abc"},
        {"offset": -1},
        {"direction": "sideways"},
    ],
)
def test_bad_parameters_are_400(emu: Emu, params: dict[str, Any]) -> None:
    params = {"user": emu.catalog["web"]["heavy"]["amplitude_id"], **params}
    if params.get("user") is None:
        params.pop("user")
    assert emu.get("/api/2/useractivity", **params).status_code == 400


def test_limit_1000_is_accepted(emu: Emu) -> None:
    body = _activity(emu, emu.catalog["web"]["heavy"]["amplitude_id"], limit=1000)
    assert len(body["events"]) >= 1000


def test_events_list(emu: Emu) -> None:
    response = emu.get("/api/2/events/list")
    assert response.status_code == 200
    data = response.json()["data"]
    assert {"value", "display", "totals"} <= set(data[0])
