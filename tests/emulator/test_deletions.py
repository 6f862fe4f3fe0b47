"""User Privacy API v1: POST variations, GET windows, DELETE rules (docs/amplitude.md#deletion-api-v1)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from .conftest import Emu

PATH = "/api/2/deletions/users"
BOOL_ERROR = "ignore_invalid_id can only be 'True' or 'False'"


def _today(emu: Emu) -> date:
    return date.fromisoformat(emu.server.admin.state()["now"][:10])


def _post(emu: Emu, body: Any, project: str = "web", **kwargs: Any) -> httpx.Response:
    with emu.client(project) as client:
        if isinstance(body, dict | list):
            return client.post(PATH, json=body, **kwargs)
        return client.post(PATH, content=body, **kwargs)


def _list(emu: Emu, start: date, end: date, project: str = "web") -> list[dict[str, Any]]:
    response = emu.get(PATH, project, start_day=start.isoformat(), end_day=end.isoformat())
    assert response.status_code == 200, response.text
    jobs: list[dict[str, Any]] = response.json()
    return jobs


ALICE = "alice@example.com"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"user_ids": [ALICE], "ignore_invalid_id": "True"}, 200, None),
        ({"user_ids": [ALICE], "ignore_invalid_id": "False"}, 200, None),
        ({"user_ids": [ALICE], "ignore_invalid_id": "true"}, 200, None),
        ({"user_ids": [ALICE]}, 200, None),
        ({"user_ids": [ALICE], "ignore_invalid_id": True}, 400, BOOL_ERROR),
        ({"user_ids": [ALICE], "ignore_invalid_id": False}, 400, BOOL_ERROR),
        ({"user_ids": [ALICE], "ignore_invalid_id": "yes"}, 400, BOOL_ERROR),
        ({"user_ids": [ALICE], "ignore_invalid_ids": True}, 400, BOOL_ERROR),
        ({"user_ids": [ALICE, "ghost@example.com"]}, 400, "invalid"),
        ({"user_ids": [ALICE, "ghost@example.com"], "ignore_invalid_id": "False"}, 400, "invalid"),
        ({"user_ids": [f"u{i}" for i in range(101)], "ignore_invalid_id": "True"}, 400, "100"),
        ({"user_ids": ["a"] * 60, "amplitude_ids": [1] * 41, "ignore_invalid_id": "True"}, 400,
         "100"),
        ({"user_ids": [], "amplitude_ids": []}, 400, "required"),
        ({}, 400, "required"),
        ({"amplitude_ids": ["not-a-number"]}, 400, "amplitude_id"),
        ({"user_ids": [ALICE], "delete_from_org": True}, 400, "delete_from_org"),
    ],
)  # fmt: skip
def test_post_validation(emu: Emu, body: dict[str, Any], status: int, error: str | None) -> None:
    response = _post(emu, body)
    assert response.status_code == status, response.text
    if error is not None:
        assert error in response.json()["error"]
    else:
        assert response.json()["status"] == "staging"


def test_post_receipt_shape(emu: Emu) -> None:
    alice = emu.catalog["web"]["ordinary"][0]
    body = {
        "user_ids": [ALICE, "ghost@example.com"],
        "amplitude_ids": [emu.catalog["web"]["heavy"]["amplitude_id"], 42],
        "requester": "dpo@example.com",
        "ignore_invalid_id": "True",
    }
    receipt = _post(emu, body).json()
    today = _today(emu)
    assert date.fromisoformat(receipt["day"]) > today
    assert receipt["status"] == "staging"
    assert sorted(receipt["invalid_ids"], key=str) == sorted([42, "ghost@example.com"], key=str)
    entries = {e["amplitude_id"]: e for e in receipt["amplitude_ids"]}
    assert set(entries) == {alice["amplitude_id"], emu.catalog["web"]["heavy"]["amplitude_id"]}
    for entry in entries.values():
        assert entry == {
            "amplitude_id": entry["amplitude_id"],
            "requested_on_day": today.isoformat(),
            "requester": "dpo@example.com",
        }
    assert "app" not in receipt


@pytest.mark.parametrize("spelling", ["ignore_invalid_id", "ignore_invalid_ids"])
def test_ignore_flag_both_spellings(emu: Emu, spelling: str) -> None:
    receipt = _post(emu, {"user_ids": [ALICE, "ghost@example.com"], spelling: "True"})
    assert receipt.status_code == 200
    assert receipt.json()["invalid_ids"] == ["ghost@example.com"]


def test_include_mapped_user_ids(emu: Emu) -> None:
    receipt = _post(emu, {"user_ids": [ALICE], "include_mapped_user_ids": True}).json()
    assert receipt["amplitude_ids"][0]["user_id"] == ALICE


def test_form_encoded_repeated_keys(emu: Emu) -> None:
    heavy = emu.catalog["web"]["heavy"]["amplitude_id"]
    form = f"user_ids={ALICE.replace('@', '%40')}&amplitude_ids={heavy}&requester=dpo"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    receipt = _post(emu, form.encode(), headers=headers)
    assert receipt.status_code == 200, receipt.text
    assert len(receipt.json()["amplitude_ids"]) == 2


def test_unknown_id_without_ignore_schedules_nothing(fresh_emu: Emu) -> None:
    emu = fresh_emu
    response = _post(emu, {"user_ids": ["carol@example.com", "ghost@example.com"]})
    assert response.status_code == 400
    assert response.json()["invalid_ids"] == ["ghost@example.com"]
    today = _today(emu)
    assert _list(emu, today, today + timedelta(days=30)) == []


def test_delete_from_org_makes_one_job_per_project(fresh_emu: Emu) -> None:
    emu = fresh_emu
    shared = emu.catalog["web"]["cross_project"][0]["user_id"]
    body = {"user_ids": [shared, "ghost@example.com"], "delete_from_org": "True"}
    response = _post(emu, body)  # no ignore flag: delete_from_org forces it
    assert response.status_code == 200, response.text
    jobs = response.json()
    assert isinstance(jobs, list)
    apps = {emu.catalog["web"]["app"], emu.catalog["mobile"]["app"]}
    assert {j["app"] for j in jobs} == apps
    for job in jobs:
        assert job["invalid_ids"] == ["ghost@example.com"]
        assert job["status"] == "staging"
    today = _today(emu)
    # Each project lists its own job, with its own key.
    for project in ("web", "mobile"):
        listed = _list(emu, today, today + timedelta(days=30), project)
        assert [j["app"] for j in listed] == [emu.catalog[project]["app"]]
    assert _list(emu, today, today + timedelta(days=30), "eu-app") == []


@pytest.mark.parametrize(
    ("start", "end", "status"),
    [
        ("2024-01-01", "2024-01-31", 200),
        ("20240101", "20240131", 200),
        ("2024-01-01", "2024-07-01", 200),  # exactly six months
        ("2024-01-01", "2024-07-02", 400),  # more than six months
        ("2024-01-01", "2025-01-01", 400),
        ("2024-02-01", "2024-01-01", 400),  # end before start
        ("2024-01-01", None, 400),
        (None, "2024-01-01", 400),
        ("01/02/2024", "2024-01-05", 400),
    ],
)
def test_list_windows(emu: Emu, start: str | None, end: str | None, status: int) -> None:
    params = {k: v for k, v in (("start_day", start), ("end_day", end)) if v is not None}
    assert emu.get(PATH, **params).status_code == status


def test_list_only_jobs_whose_day_is_in_window(fresh_emu: Emu) -> None:
    emu = fresh_emu
    receipt = _post(emu, {"user_ids": [ALICE], "requester": "dpo"}).json()
    day = date.fromisoformat(receipt["day"])
    today = _today(emu)
    assert _list(emu, today, day - timedelta(days=1)) == []
    [job] = _list(emu, today, day)
    assert job["day"] == receipt["day"]
    assert job["status"] == "staging"
    assert "active_scrub_done_date" not in job
    assert [e["requester"] for e in job["amplitude_ids"]] == ["dpo"]


def test_delete_rules(fresh_emu: Emu) -> None:
    emu = fresh_emu
    heavy = emu.catalog["web"]["heavy"]["amplitude_id"]
    alice = emu.catalog["web"]["ordinary"][0]["amplitude_id"]
    receipt = _post(emu, {"amplitude_ids": [heavy, alice], "requester": "dpo"}).json()
    day, requested_on = receipt["day"], receipt["amplitude_ids"][0]["requested_on_day"]
    with emu.client() as client:
        wrong = client.delete(f"{PATH}/{heavy}/{requested_on}")  # not the job's day
        assert wrong.status_code in (400, 404)
        ok = client.delete(f"{PATH}/{heavy}/{day}")
        assert ok.status_code == 200
        assert ok.json() == {"amplitude_id": heavy, "requested_on_day": requested_on,
                             "requester": "dpo"}  # fmt: skip
        assert client.delete(f"{PATH}/{heavy}/{day}").status_code == 404  # already removed
        emu.server.admin.advance(days=7)  # now exactly 3 days before day: frozen
        frozen = client.delete(f"{PATH}/{alice}/{day}")
        assert frozen.status_code == 400
    [job] = _list(emu, _today(emu), date.fromisoformat(day))
    assert [e["amplitude_id"] for e in job["amplitude_ids"]] == [alice]


def test_batches_freeze_three_days_before_day(fresh_emu: Emu) -> None:
    emu = fresh_emu
    first = _post(emu, {"user_ids": [ALICE]}).json()
    emu.server.admin.advance(days=6)  # 4 days before day: still open
    joined = _post(emu, {"user_ids": ["carol@example.com"]}).json()
    assert joined["day"] == first["day"]
    emu.server.admin.advance(days=1)  # 3 days before day: frozen, a new batch opens
    later = _post(emu, {"user_ids": ["dave@example.com"]}).json()
    assert date.fromisoformat(later["day"]) == _today(emu) + timedelta(days=10)
