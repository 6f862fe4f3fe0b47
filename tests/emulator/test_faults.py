"""Fault injection: 429 storms, 5xx, slow, hang, malformed, drop_after; filters and counts."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, timedelta

import httpx
import pytest

from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import Emu

SEARCH = "/api/2/usersearch"


@pytest.fixture(autouse=True)
def _no_faults_left(emu: Emu) -> None:
    emu.server.admin.clear_faults()


@pytest.mark.parametrize("kind", ["429", "500", "502", "503"])
def test_status_faults_apply_count_times(emu: Emu, kind: str) -> None:
    emu.server.admin.inject_fault(kind, path=SEARCH, count=2)
    statuses = [emu.get(SEARCH, user="x").status_code for _ in range(3)]
    assert statuses == [int(kind), int(kind), 200]


def test_429_storm_names_limit_and_retry_after_only_when_asked(emu: Emu) -> None:
    emu.server.admin.inject_fault("429", path=SEARCH, count=1)
    plain = emu.get(SEARCH, user="x")
    assert "retry-after" not in plain.headers
    assert "limit" in plain.json()
    emu.server.admin.inject_fault("429", path=SEARCH, count=1, retry_after=7)
    assert emu.get(SEARCH, user="x").headers["retry-after"] == "7"


def test_fault_filters_by_project_method_and_path(emu: Emu) -> None:
    emu.server.admin.inject_fault("503", path=SEARCH, project="mobile", count=None)
    assert emu.get(SEARCH, user="x").status_code == 200
    assert emu.get(SEARCH, "mobile", user="x").status_code == 503
    assert emu.get("/api/2/events/list", "mobile").status_code == 200
    emu.server.admin.clear_faults()
    emu.server.admin.inject_fault("500", method="POST", count=1)
    assert emu.get(SEARCH, user="x").status_code == 200
    with emu.client("web") as client:
        assert client.post("/api/2/deletions/users", json={"user_ids": ["x"]}).status_code == 500


def test_eu_prefix_is_stripped_for_matching(emu: Emu) -> None:
    emu.server.admin.inject_fault("502", path=SEARCH, count=1)
    assert emu.get(SEARCH, "eu-app", user="x").status_code == 502


def test_slow(emu: Emu) -> None:
    emu.server.admin.inject_fault("slow", path=SEARCH, delay=0.3)
    started = time.monotonic()
    assert emu.get(SEARCH, user="x").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_malformed(emu: Emu) -> None:
    emu.server.admin.inject_fault("malformed", path=SEARCH)
    response = emu.get(SEARCH, user="alice@example.com")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_hang_until_client_timeout(emu: Emu) -> None:
    emu.server.admin.inject_fault("hang", path=SEARCH)
    with emu.client("web") as client, pytest.raises(httpx.ReadTimeout):
        client.get(SEARCH, params={"user": "x"}, timeout=0.3)
    assert emu.get(SEARCH, user="x").status_code == 200  # server still healthy


def test_hang_does_not_block_shutdown() -> None:
    server = EmulatorServer(seed=2).start()
    state = server.admin.state()
    project = state["projects"][0]
    server.admin.inject_fault("hang", path=SEARCH)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.get(server.base_url + SEARCH, params={"user": "x"},
                      auth=(project["api_key"], project["secret_key"]), timeout=30)  # fmt: skip
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while server.world.faults.active():  # the request has taken the fault: it is hanging
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert errors  # the client saw the connection close, not a response
    assert [e["status"] for e in server.world.log.since(0) if e.get("fault") == "hang"] == [None]


def test_drop_after_processes_then_closes(fresh_emu: Emu) -> None:
    emu = fresh_emu
    emu.server.admin.inject_fault("drop_after", path="/api/2/deletions/users", method="POST")
    with emu.client("web") as client, pytest.raises(httpx.RemoteProtocolError):
        client.post("/api/2/deletions/users", json={"user_ids": ["alice@example.com"]})
    today = date.fromisoformat(emu.server.admin.state()["now"][:10])
    jobs = emu.get(
        "/api/2/deletions/users",
        start_day=today.isoformat(),
        end_day=(today + timedelta(days=30)).isoformat(),
    ).json()
    assert len(jobs) == 1  # the server-side effect happened
    entry = emu.server.admin.request_log()[-2]
    assert (entry["method"], entry["fault"], entry["status"]) == ("POST", "drop_after", None)


def test_unknown_kind_is_400(emu: Emu) -> None:
    response = httpx.post(emu.url + "/_admin/faults", json={"kind": "explode"})
    assert response.status_code == 400


def test_delay_after_logs_the_effect_before_answering(fresh_emu: Emu) -> None:
    emu = fresh_emu
    emu.server.admin.inject_fault("delay_after", path="/api/2/deletions/users", method="POST", delay=2)
    result: dict[str, httpx.Response] = {}

    def post() -> None:
        with emu.client("web") as client:
            result["r"] = client.post("/api/2/deletions/users", json={"user_ids": ["alice@example.com"]})

    thread = threading.Thread(target=post)
    thread.start()
    while not [e for e in emu.server.admin.request_log() if e["method"] == "POST"]:
        time.sleep(0.02)
    assert "r" not in result  # logged (and applied) while the answer is still held back
    [entry] = [e for e in emu.server.admin.request_log() if e["method"] == "POST"]
    assert entry["fault"] == "delay_after" and entry["status"] == 200
    emu.server.admin.clear_faults()
    thread.join()
    assert result["r"].status_code == 200 and result["r"].json()["status"] == "staging"
    assert len([e for e in emu.server.admin.request_log() if e["method"] == "POST"]) == 1
