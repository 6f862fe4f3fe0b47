"""User Search: match types, prefix matches, merged IDs, nomatch (docs/amplitude.md#user-search)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Emu


def _ids(body: dict[str, Any]) -> list[int]:
    return [m["amplitude_id"] for m in body["matches"]]


def _by_uid(emu: Emu, project: str, user_id: str) -> dict[str, Any]:
    cat = emu.catalog[project]
    entries = [
        e
        for key, value in cat.items()
        if key not in ("app", "region")
        for e in (value if isinstance(value, list) else [value])
        for e in (e if isinstance(e, list) else [e])
    ]
    return next(e for e in entries if e["user_id"] == user_id)


@pytest.mark.parametrize(
    ("query", "expected_type", "first_user_id", "also_user_ids"),
    [
        ("alice@example.com", "match_user_or_device_id", "alice@example.com", []),
        # exact match first, then the prefix-colliding user mixed in: clients must filter
        ("bob@example.co", "match_user_or_device_id", "bob@example.co", ["bob@example.com"]),
        ("bob@example.com", "match_user_or_device_id", "bob@example.com", []),
        ("user_12", "match_user_or_device_id", "user_12", ["user_123", "user_1234"]),
        ("user_1", "match_user_prefix", None, ["user_12", "user_123", "user_1234"]),
        ("bob@exa", "match_user_prefix", None, ["bob@example.co", "bob@example.com"]),
        ("nobody-here-xyz", "nomatch", None, []),
        ("ALICE@example.com", "nomatch", None, []),  # user IDs are case-sensitive
    ],
)
def test_search_types(
    emu: Emu, query: str, expected_type: str, first_user_id: str | None, also_user_ids: list[str]
) -> None:
    response = emu.get("/api/2/usersearch", user=query)
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == expected_type
    user_ids = [m["user_id"] for m in body["matches"]]
    if first_user_id is not None:
        assert user_ids[0] == first_user_id
        assert sorted(user_ids[1:]) == sorted(also_user_ids)
    else:
        assert sorted(user_ids) == sorted(also_user_ids)
    if expected_type == "nomatch":
        assert body == {"type": "nomatch", "matches": []}


def test_match_entry_fields(emu: Emu) -> None:
    body = emu.get("/api/2/usersearch", user="alice@example.com").json()
    match = body["matches"][0]
    assert set(match) == {
        "user_id", "amplitude_id", "last_device_id", "platform", "country", "last_seen",
    }  # fmt: skip
    assert isinstance(match["amplitude_id"], int)
    assert len(match["last_seen"]) == 10


def test_amplitude_id_and_device_id(emu: Emu) -> None:
    alice = _by_uid(emu, "web", "alice@example.com")
    body = emu.get("/api/2/usersearch", user=str(alice["amplitude_id"])).json()
    assert body["type"] == "match_amplitude_id"
    assert _ids(body) == [alice["amplitude_id"]]
    body = emu.get("/api/2/usersearch", user=alice["device_ids"][0]).json()
    assert body["type"] == "match_user_or_device_id"
    assert _ids(body) == [alice["amplitude_id"]]


def test_device_only_user_has_null_user_id(emu: Emu) -> None:
    anon = emu.catalog["web"]["device_only"][0]
    assert anon["user_id"] is None
    body = emu.get("/api/2/usersearch", user=anon["device_ids"][0]).json()
    assert body["matches"][0]["user_id"] is None
    assert _ids(body) == [anon["amplitude_id"]]


def test_merged_id_finds_canonical_user(emu: Emu) -> None:
    merged = emu.catalog["web"]["merged"]
    assert len(merged["merged_amplitude_ids"]) == 2
    for aid in merged["merged_amplitude_ids"]:
        body = emu.get("/api/2/usersearch", user=str(aid)).json()
        assert body["type"] == "match_amplitude_id"
        assert _ids(body) == [merged["amplitude_id"]]


def test_numeric_user_id_collides_with_amplitude_id(emu: Emu) -> None:
    numeric = emu.catalog["web"]["numeric_user_id"]
    body = emu.get("/api/2/usersearch", user=numeric["user_id"]).json()
    # The digits are another user's Amplitude ID: the match's user_id differs from the query.
    assert body["type"] == "match_amplitude_id"
    assert body["matches"][0]["user_id"] != numeric["user_id"]


def test_projects_and_regions_are_separate(emu: Emu) -> None:
    assert emu.get("/api/2/usersearch", "eu-app", user="alice@example.com").json()["type"] == ("nomatch")
    eu_user = emu.catalog["eu-app"]["ordinary"][0]
    body = emu.get("/api/2/usersearch", "eu-app", user=eu_user["user_id"]).json()
    assert _ids(body) == [eu_user["amplitude_id"]]
    web = emu.get("/api/2/usersearch", user="alice@example.com").json()
    mobile = emu.get("/api/2/usersearch", "mobile", user="alice@example.com").json()
    assert _ids(web) != _ids(mobile)  # same person, one Amplitude ID per project


@pytest.mark.parametrize("params", [{}, {"user": ""}])
def test_missing_user_is_400(emu: Emu, params: dict[str, str]) -> None:
    assert emu.get("/api/2/usersearch", **params).status_code == 400
