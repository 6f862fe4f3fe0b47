"""Deletion lifecycle on the emulated clock: staging -> submitted -> done (docs/amplitude.md#job-lifecycle)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from .conftest import Emu

PATH = "/api/2/deletions/users"


def _job(emu: Emu, day: str) -> dict[str, Any]:
    d = date.fromisoformat(day)
    response = emu.get(PATH, start_day=(d - timedelta(days=30)).isoformat(), end_day=day)
    [job] = response.json()
    return job  # type: ignore[no-any-return]


def _search(emu: Emu, query: str) -> dict[str, Any]:
    return emu.get("/api/2/usersearch", user=query).json()  # type: ignore[no-any-return]


def test_deletion_lifecycle_and_recollection(fresh_emu: Emu) -> None:
    emu = fresh_emu
    admin = emu.server.admin
    merged = emu.catalog["web"]["merged"]
    with emu.client() as client:
        receipt = client.post(PATH, json={"user_ids": ["merged@example.com"]}).json()
    day = receipt["day"]
    assert receipt["status"] == "staging"

    admin.advance(days=9)  # the day before: still staging, user still visible
    assert _job(emu, day)["status"] == "staging"
    assert _search(emu, "merged@example.com")["type"] == "match_user_or_device_id"

    admin.advance(days=1)  # on day: submitted, and the user is gone from search and activity
    job = _job(emu, day)
    assert job["status"] == "submitted"
    assert "active_scrub_done_date" not in job
    for query in ["merged@example.com", str(merged["amplitude_id"]),
                  *map(str, merged["merged_amplitude_ids"]), merged["device_ids"][0]]:  # fmt: skip
        assert _search(emu, query) == {"type": "nomatch", "matches": []}, query
    activity = emu.get("/api/2/useractivity", user=merged["amplitude_id"]).json()
    assert activity["events"] == []

    admin.advance(days=2)  # scrub finished
    job = _job(emu, day)
    assert job["status"] == "submitted"
    expected_scrub = (date.fromisoformat(day) + timedelta(days=2)).isoformat()
    assert job["active_scrub_done_date"] == expected_scrub

    admin.advance(days=5)  # backups expired
    job = _job(emu, day)
    assert job["status"] == "done"
    assert job["active_scrub_done_date"] == expected_scrub
    assert _search(emu, "merged@example.com")["type"] == "nomatch"

    # The deleted ID is now unknown to the privacy API too.
    with emu.client() as client:
        again = client.post(PATH, json={"amplitude_ids": [merged["amplitude_id"]]})
    assert again.status_code == 400

    # Re-collection: new events for the same person create a new Amplitude ID.
    fresh = admin.add_events("web", merged["amplitude_id"], 5)
    assert fresh["recollected"] is True
    assert fresh["amplitude_id"] != merged["amplitude_id"]
    found = _search(emu, "merged@example.com")
    assert [m["amplitude_id"] for m in found["matches"]] == [fresh["amplitude_id"]]
    assert emu.server.admin.catalog()["web"]["merged"]["deleted"] is True


def test_staging_user_remains_visible_until_day(fresh_emu: Emu) -> None:
    emu = fresh_emu
    with emu.client() as client:
        client.post(PATH, json={"user_ids": ["carol@example.com"]})
    emu.server.admin.advance(days=3)
    assert _search(emu, "carol@example.com")["type"] == "match_user_or_device_id"


def test_clock_speed_and_advance(fresh_emu: Emu) -> None:
    admin = fresh_emu.server.admin
    before = admin.state()["now"]
    after = admin.advance(seconds=3600)
    assert after > before
    admin.set_speed(0)
    frozen = admin.state()["now"]
    assert admin.state()["now"] == frozen
    assert admin.state()["speed"] == 0
