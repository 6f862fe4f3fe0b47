"""The request log, seed determinism and the seeded catalog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from amplitude_dsr.emulator import World
from amplitude_dsr.emulator.routes_admin import catalog

from .conftest import Emu


def _last_seq(emu: Emu) -> int:
    log = emu.server.admin.request_log()
    return int(log[-1]["seq"]) if log else 0


def test_request_log_entries(emu: Emu) -> None:
    since = _last_seq(emu)
    emu.get("/api/2/usersearch", user="alice@example.com")
    emu.get("/api/2/usersearch", "eu-app", user="x")
    with emu.client("mobile") as client:
        client.post(
            "/api/2/deletions/users",
            json={"user_ids": ["nobody"], "ignore_invalid_id": "True", "requester": "dpo"},
        )
    emu.server.admin.state()  # admin calls are not logged
    entries = emu.server.admin.request_log(since)
    assert [e["seq"] for e in entries] == list(range(since + 1, since + 4))
    search, eu, post = entries
    assert search["method"] == "GET"
    assert search["path"] == "/api/2/usersearch"
    assert search["query"] == {"user": "alice@example.com"}
    assert search["body"] is None
    assert (search["status"], search["project"], search["pool"]) == (200, "web", "usersearch")
    assert isinstance(search["time"], float)
    assert (eu["project"], eu["region"], eu["path"]) == ("eu-app", "eu", "/api/2/usersearch")
    assert post["body"] == {"user_ids": ["nobody"], "ignore_invalid_id": "True", "requester": "dpo"}
    assert (post["pool"], post["project"], post["status"]) == ("deletions", "mobile", 200)


def test_storage_downloads_are_logged_with_storage_pool(fresh_emu: Emu) -> None:
    emu = fresh_emu
    org = emu.org_auth
    alice = emu.catalog["web"]["ordinary"][0]
    body = {"amplitudeId": alice["amplitude_id"], "startDate": "2000-01-01", "endDate": "2100-01-01"}
    request_id = httpx.post(emu.url + "/api/2/dsar/requests", json=body, auth=org).json()
    emu.server.admin.advance(days=2)
    status = httpx.get(f"{emu.url}/api/2/dsar/requests/{request_id['requestId']}", auth=org)
    url = status.json()["urls"][0]
    assert httpx.get(url, auth=org, follow_redirects=False).status_code == 302
    location = httpx.get(url, auth=org).headers["location"]
    httpx.get(location)
    pools = [(e["pool"], e["status"]) for e in emu.server.admin.request_log()]
    assert pools[-1] == ("storage", 200)
    assert ("dsar", 302) in pools


def test_clear_log(fresh_emu: Emu) -> None:
    fresh_emu.get("/api/2/usersearch", user="x")
    before = _last_seq(fresh_emu)
    fresh_emu.server.admin.clear_log()
    assert fresh_emu.server.admin.request_log() == []
    fresh_emu.get("/api/2/usersearch", user="x")
    assert [e["seq"] for e in fresh_emu.server.admin.request_log()] == [before + 1]


def _snapshot(world: World) -> dict[str, Any]:
    keys = {name: (p.app, p.api_key, p.secret_key) for name, p in world.projects.items()}
    uuids = {
        name: sorted(e.uuid for u in p.users.values() for e in u.events)[:50] for name, p in world.projects.items()
    }
    return {"catalog": catalog(world), "keys": keys, "org": world.org, "uuids": uuids}


def test_same_seed_same_world() -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    assert _snapshot(World.seeded(5, start)) == _snapshot(World.seeded(5, start))
    assert _snapshot(World.seeded(5, start))["keys"] != _snapshot(World.seeded(6, start))["keys"]


def test_times_are_relative_to_clock_start() -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    a, b = World.seeded(5, start), World.seeded(5, start + timedelta(days=100))
    assert _snapshot(a)["catalog"] == _snapshot(b)["catalog"]
    shift = 100 * 86_400_000
    heavy = _snapshot(a)["catalog"]["web"]["heavy"]["amplitude_id"]
    events_a = a.projects["web"].users[heavy].events
    events_b = b.projects["web"].users[heavy].events
    assert [e.time_ms + shift for e in events_a] == [e.time_ms for e in events_b]


def test_catalog_has_every_awkward_case(emu: Emu) -> None:
    assert {p["name"]: p["region"] for p in emu.state["projects"]} == {
        "web": "us", "mobile": "us", "eu-app": "eu",
    }  # fmt: skip
    for name, cases in emu.catalog.items():
        assert len(cases["ordinary"]) == 20, name
        assert all("@" in u["user_id"] for u in cases["ordinary"])
        pair, triple = cases["prefix_pairs"]
        assert pair[1]["user_id"].startswith(pair[0]["user_id"])
        assert triple[2]["user_id"].startswith(triple[1]["user_id"])
        assert all(u["user_id"] is None for u in cases["device_only"])
        assert len(cases["merged"]["merged_amplitude_ids"]) == 2
        assert cases["heavy"]["num_events"] == 1500
        assert cases["sparse"]["num_events"] == 0
        assert cases["dsar_oversize"]["num_events"] > 100_000
    web = {u["user_id"] for u in emu.catalog["web"]["cross_project"]}
    mobile = {u["user_id"] for u in emu.catalog["mobile"]["cross_project"]}
    assert web == mobile and len(web) == 5


def test_admin_add_user_and_merge(fresh_emu: Emu) -> None:
    admin = fresh_emu.server.admin
    a = admin.add_user("web", user_id="new@example.com", events=25, session_events=10)
    assert a["num_events"] == 25 and a["num_sessions"] == 3
    b = admin.add_user("web", device_id="device-xyz", events=3)
    assert b["user_id"] is None and b["device_ids"] == ["device-xyz"]
    merged = admin.merge("web", a["amplitude_id"], b["amplitude_id"])
    assert merged["merged_amplitude_ids"] == [b["amplitude_id"]]
    found = fresh_emu.get("/api/2/usersearch", user="device-xyz").json()
    assert [m["amplitude_id"] for m in found["matches"]] == [a["amplitude_id"]]
    dup = httpx.post(fresh_emu.url + "/_admin/users", json={"project": "web",
                                                            "user_id": "new@example.com"})  # fmt: skip
    assert dup.status_code == 409
