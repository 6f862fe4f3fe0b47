"""DSAR: org keys, lifecycle, storage redirect, gzip JSON lines, expiry, failure (docs/amplitude.md#dsar-export-api)."""

from __future__ import annotations

import gzip
import json
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import Emu

PATH = "/api/2/dsar/requests"


def _create(emu: Emu, body: dict[str, Any], eu: bool = False) -> int:
    with emu.client(None, eu=eu) as client:
        response = client.post(PATH, json=body)
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"requestId"}
    request_id: int = response.json()["requestId"]
    return request_id


def _status(emu: Emu, request_id: int, eu: bool = False) -> dict[str, Any]:
    with emu.client(None, eu=eu) as client:
        response = client.get(f"{PATH}/{request_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _window(emu: Emu) -> dict[str, str]:
    today = date.fromisoformat(emu.state["now"][:10])
    return {"startDate": (today - timedelta(days=500)).isoformat(), "endDate": today.isoformat()}


def _download(http: httpx.Client, url: str, auth: tuple[str, str]) -> list[dict[str, Any]]:
    first = http.get(url, auth=auth)
    assert first.status_code == 302
    location = first.headers["location"]
    assert urlsplit(location).hostname != urlsplit(url).hostname  # another host
    assert urlsplit(location).port == urlsplit(url).port
    rejected = http.get(location, auth=auth)  # Authorization resent to storage: refused
    assert rejected.status_code == 400
    blob = http.get(location)
    assert blob.status_code == 200
    assert blob.headers["content-type"] == "application/gzip"
    lines = gzip.decompress(blob.content).decode().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("eu", [False, True])
def test_dsar_lifecycle_and_outputs(fresh_emu: Emu, http: httpx.Client, eu: bool) -> None:
    emu = fresh_emu
    project = "eu-app" if eu else "web"
    user = emu.catalog[project]["heavy"]
    request_id = _create(emu, {"amplitudeId": user["amplitude_id"], **_window(emu)}, eu)
    status = _status(emu, request_id, eu)
    assert status["status"] == "staging"
    assert status["urls"] == []
    emu.server.admin.advance(seconds=3600)
    assert _status(emu, request_id, eu)["status"] == "submitted"
    emu.server.admin.advance(days=1)
    status = _status(emu, request_id, eu)
    assert status["status"] == "done"
    assert status["failReason"] is None
    assert status["amplitudeId"] == user["amplitude_id"]
    months = {e["event_time"][:7] for e in _all_events(emu, user, project)}
    assert len(status["urls"]) == len(months) > 1  # one file per project per month
    events: list[dict[str, Any]] = []
    for url in status["urls"]:
        assert url.startswith(emu.eu_url if eu else emu.url)
        lines = _download(http, url, emu.org_auth)
        assert len({line["event_time"][:7] for line in lines}) == 1
        events += lines
    assert len(events) == user["num_events"]
    assert {e["uuid"] for e in events} == {e["uuid"] for e in _all_events(emu, user, project)}
    assert {"amplitude_id", "app", "event_time", "event_type", "server_upload_time"} <= set(events[0])
    expires = date.fromisoformat(status["expires"])
    emu.server.admin.advance(days=2)
    assert date.fromisoformat(emu.server.admin.state()["now"][:10]) >= expires
    expired = http.get(status["urls"][0], auth=emu.org_auth)
    assert expired.status_code == 403


def _all_events(emu: Emu, user: dict[str, Any], project: str) -> list[dict[str, Any]]:
    events: dict[str, dict[str, Any]] = {}
    offset = 0
    while offset < user["num_events"]:
        page = emu.get("/api/2/useractivity", project, user=user["amplitude_id"], offset=offset)
        for event in page.json()["events"]:
            events[event["uuid"]] = event
        offset += 1000
    return list(events.values())


def test_user_id_spanning_two_projects(fresh_emu: Emu, http: httpx.Client) -> None:
    emu = fresh_emu
    shared = emu.catalog["web"]["cross_project"][0]
    request_id = _create(emu, {"userId": shared["user_id"], **_window(emu)})
    emu.server.admin.advance(days=2)
    urls = _status(emu, request_id)["urls"]
    apps = set()
    for url in urls:
        apps |= {line["app"] for line in _download(http, url, emu.org_auth)}
    assert apps == {emu.catalog["web"]["app"], emu.catalog["mobile"]["app"]}


def test_oversize_user_fails(fresh_emu: Emu) -> None:
    emu = fresh_emu
    bulk = emu.catalog["web"]["dsar_oversize"]
    request_id = _create(emu, {"amplitudeId": bulk["amplitude_id"], **_window(emu)})
    emu.server.admin.advance(days=2)
    status = _status(emu, request_id)
    assert status["status"] == "failed"
    assert "100000" in status["failReason"]
    assert status["urls"] == []


def test_storage_link_expires_too(fresh_emu: Emu, http: httpx.Client) -> None:
    emu = fresh_emu
    alice = emu.catalog["web"]["ordinary"][0]
    request_id = _create(emu, {"amplitudeId": alice["amplitude_id"], **_window(emu)})
    emu.server.admin.advance(days=1, seconds=60)
    url = _status(emu, request_id)["urls"][0]
    location = http.get(url, auth=emu.org_auth).headers["location"]
    assert http.get(location).status_code == 200
    emu.server.admin.advance(days=2)
    assert http.get(location).status_code == 403
    assert http.get(location.split("?")[0]).status_code == 403  # unsigned


def test_synthetic_output_streams(fresh_emu: Emu, http: httpx.Client) -> None:
    emu = fresh_emu
    alice = emu.catalog["web"]["ordinary"][0]
    emu.server.admin.dsar_synthetic(alice["amplitude_id"], 5_000_000)
    request_id = _create(emu, {"amplitudeId": alice["amplitude_id"], **_window(emu)})
    emu.server.admin.advance(days=2)
    [url] = _status(emu, request_id)["urls"]
    location = http.get(url, auth=emu.org_auth).headers["location"]
    decompressor_total = 0
    with http.stream("GET", location) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_bytes())
    text = gzip.decompress(raw)
    decompressor_total = len(text)
    assert 5_000_000 <= decompressor_total < 5_010_000
    first = json.loads(text.split(b"\n", 1)[0])
    assert first["amplitude_id"] == alice["amplitude_id"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"userId": "alice@example.com", "startDate": "2024-01-01", "endDate": "2024-02-01"}, 202),
        ({"amplitudeId": 12345, "startDate": "2024-01-01", "endDate": "2024-02-01"}, 202),
        ({"startDate": "2024-01-01", "endDate": "2024-02-01"}, 400),
        ({"userId": "alice@example.com", "endDate": "2024-02-01"}, 400),
        ({"userId": "alice@example.com", "startDate": "2024-01-01"}, 400),
        ({"userId": "a", "startDate": "01/01/2024", "endDate": "2024-02-01"}, 400),
        ({"userId": "a", "startDate": "2024-03-01", "endDate": "2024-02-01"}, 400),
        ({"amplitudeId": "abc", "startDate": "2024-01-01", "endDate": "2024-02-01"}, 400),
    ],
)
def test_create_validation(emu: Emu, body: dict[str, Any], status: int) -> None:
    with emu.client(None) as client:
        assert client.post(PATH, json=body).status_code == status


def test_unknown_request_and_region_isolation(emu: Emu) -> None:
    with emu.client(None) as client:
        assert client.get(f"{PATH}/999999").status_code == 404
        assert client.get(f"{PATH}/abc").status_code == 404
    request_id = _create(emu, {"userId": "x", "startDate": "2024-01-01", "endDate": "2024-01-02"})
    with emu.client(None, eu=True) as client:
        assert client.get(f"{PATH}/{request_id}").status_code == 404
    with emu.client(None) as client:
        assert client.get(f"{PATH}/{request_id}/outputs/0").status_code == 404  # not done yet
