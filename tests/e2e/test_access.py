"""Access requests end to end: the real stack (emulator over HTTP, DBOS, our tables) for the
awkward users of the emulator catalog. Every test asserts on what the emulator received, not only
on what our export says."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.render import event_json
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import repo

from .conftest import api_calls

USER_POOL = ("/usersearch", "/useractivity")


def run_access(
    rt: Runtime, out: Path, *idents: tuple[str, str], **options: Any
) -> tuple[repo.RequestRow, dict[str, Any]]:
    """Submit an access request, wait for it, and load its export (empty dict when it failed)."""
    identifiers = [Identifier.parse(kind, value) for kind, value in idents]
    rid, _ = api.submit(rt, "access", identifiers, options={"out_dir": str(out), **options})
    api.wait(rt, rid)
    row = repo.get_request(rt.engine, rid)
    if row.status != "completed":
        return row, {}
    return row, json.loads((Path(row.out_dir or "") / "export.json").read_text())


def activity_users(emulator: EmulatorServer) -> list[int]:
    """The Amplitude IDs whose activity the emulator served, in call order."""
    return [int(e["query"]["user"]) for e in api_calls(emulator, "/useractivity")]


def user_pool_calls(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return [e for e in emulator.admin.request_log() if e["path"].endswith(USER_POOL)]


def event_uuids(subject: dict[str, Any]) -> list[str]:
    return [e["uuid"] for e in subject["events"]]


def truth_session_uuids(emulator: EmulatorServer, project: str, amplitude_id: int, position: int) -> set[str]:
    """Ground truth from the emulator's world: the uuids of the session holding event ``position``
    (newest-first index)."""
    world = emulator.world
    user = world.find_by_amplitude_id(project, amplitude_id)
    assert user is not None
    lo, hi = user.session_bounds(position)
    app = world.projects[project].app
    return {event_json(user, user.event_at(i), app)["uuid"] for i in range(lo, hi)}


# --- identity resolution: table of awkward users ------------------------------------------------


@dataclass
class Case:
    """One access request against the seeded catalog, and what must (not) come back."""

    name: str
    identifiers: Callable[[dict[str, Any]], list[tuple[str, str]]]
    subjects: Callable[[dict[str, Any]], list[int]]  # expected canonical Amplitude IDs
    never: Callable[[dict[str, Any]], list[int]] = lambda c: []  # IDs whose data must not be fetched
    searches: int = 1
    activity_calls: int = 1
    options: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "ordinary user by user ID",
        lambda c: [("user_id", c["ordinary"][0]["user_id"])],
        lambda c: [c["ordinary"][0]["amplitude_id"]],
    ),
    Case(
        "email searched as a user ID",
        lambda c: [("email", c["ordinary"][2]["user_id"])],
        lambda c: [c["ordinary"][2]["amplitude_id"]],
    ),
    Case(
        "prefix-colliding email: bob@example.co, never bob@example.com",
        lambda c: [("email", c["prefix_pairs"][0][0]["user_id"])],
        lambda c: [c["prefix_pairs"][0][0]["amplitude_id"]],
        never=lambda c: [c["prefix_pairs"][0][1]["amplitude_id"]],
    ),
    Case(
        "prefix-colliding user ID: user_12, never user_123 or user_1234",
        lambda c: [("user_id", c["prefix_pairs"][1][0]["user_id"])],
        lambda c: [c["prefix_pairs"][1][0]["amplitude_id"]],
        never=lambda c: [u["amplitude_id"] for u in c["prefix_pairs"][1][1:]],
    ),
    Case(
        "only a prefix of somebody's user ID: no data held, no activity fetched",
        lambda c: [("user_id", c["prefix_pairs"][1][0]["user_id"][:-1])],
        lambda c: [],
        never=lambda c: [u["amplitude_id"] for u in c["prefix_pairs"][1]],
        activity_calls=0,
    ),
    Case(
        "a user ID equal to another user's Amplitude ID is not that user, a prefix probe finds it",
        lambda c: [("user_id", c["numeric_user_id"]["user_id"])],
        lambda c: [c["numeric_user_id"]["amplitude_id"]],
        never=lambda c: [int(c["numeric_user_id"]["user_id"])],
        searches=2,
    ),
    Case(
        "device-only (anonymous) user found by device ID",
        lambda c: [("device_id", c["device_only"][0]["device_ids"][0])],
        lambda c: [c["device_only"][0]["amplitude_id"]],
    ),
    Case(
        "merged user by user ID and by a merged Amplitude ID: one subject, one activity call",
        lambda c: [("user_id", c["merged"]["user_id"]), ("amplitude_id", str(c["merged"]["merged_amplitude_ids"][1]))],
        lambda c: [c["merged"]["amplitude_id"]],
        searches=2,
    ),
    Case(
        "merged user by a merged Amplitude ID alone",
        lambda c: [("amplitude_id", str(c["merged"]["merged_amplitude_ids"][0]))],
        lambda c: [c["merged"]["amplitude_id"]],
    ),
    Case(
        "unknown person: no data held",
        lambda c: [("email", "nobody-at-all@example.net")],
        lambda c: [],
        activity_calls=0,
    ),
    Case(
        "sparse user (no events): summary only",
        lambda c: [("user_id", c["sparse"]["user_id"])],
        lambda c: [c["sparse"]["amplitude_id"]],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_resolution(
    case: Case, make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    web = catalog["web"]
    rt = make_runtime()
    row, export = run_access(rt, tmp_path / "out", *case.identifiers(web), **case.options)
    assert row.status == "completed", row.error

    expected = case.subjects(web)
    assert [s["amplitude_id"] for s in export["subjects"]] == expected
    assert export["data_held"] is bool(expected)
    if not expected:
        assert export["statement"].startswith("No data held")

    # What Amplitude was asked: one search per identifier, activity only for accepted users.
    assert len(api_calls(emulator, "/usersearch")) == case.searches
    fetched = activity_users(emulator)
    assert len(fetched) == case.activity_calls
    forbidden = set(case.never(web))
    assert not forbidden & set(fetched)
    for subject in export["subjects"]:
        assert not forbidden & {e["amplitude_id"] for e in subject["events"]}
        ids = set(subject["all_amplitude_ids"])
        assert {e["amplitude_id"] for e in subject["events"]} <= ids
    # Every rejected candidate says why.
    for attempt in export["resolution"]["attempts"]:
        for cand in attempt["candidates"]:
            assert cand["reason"].startswith(("accepted", "rejected", "confirmed"))
            if cand["amplitude_id"] in forbidden:
                assert not cand["accepted"]


def test_ordinary_subject_costs_two_user_pool_calls_and_holds_every_event(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][3]
    rt = make_runtime()
    _, export = run_access(rt, tmp_path / "out", ("user_id", user["user_id"]))
    pool = user_pool_calls(emulator)
    assert [e["path"].rsplit("/", 1)[1] for e in pool] == ["usersearch", "useractivity"]
    assert pool[1]["query"] == {
        "user": str(user["amplitude_id"]),
        "offset": "0",
        "limit": "1000",
        "direction": "latest",
    }
    [subject] = export["subjects"]
    assert subject["event_count"] == subject["events_in_export"] == user["num_events"]
    assert len(set(event_uuids(subject))) == user["num_events"]
    assert subject["user_id"] == user["user_id"]
    assert subject["summary"]["num_events"] == user["num_events"]


def test_merged_ids_are_in_the_export(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    merged = catalog["web"]["merged"]
    rt = make_runtime()
    _, export = run_access(rt, tmp_path / "out", ("email", merged["user_id"]))
    [subject] = export["subjects"]
    assert subject["amplitude_id"] == merged["amplitude_id"]
    assert sorted(subject["merged_amplitude_ids"]) == sorted(merged["merged_amplitude_ids"])
    assert subject["all_amplitude_ids"][0] == merged["amplitude_id"]
    assert subject["event_count"] == merged["num_events"]
    assert sorted(subject["device_ids"]) == sorted(merged["device_ids"])


def test_sparse_user_summary_has_no_sentinels(make_runtime: Any, catalog: dict[str, Any], tmp_path: Path) -> None:
    rt = make_runtime()
    _, export = run_access(rt, tmp_path / "out", ("user_id", catalog["web"]["sparse"]["user_id"]))
    [subject] = export["subjects"]
    assert subject["event_count"] == 0 and subject["events"] == []
    text = json.dumps(subject["summary"])
    assert "9223372036854775807" not in text and "-9223372036854775808" not in text


def test_identity_map_translates_an_email_into_exact_user_ids(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    short, *longer = catalog["web"]["prefix_pairs"][1]
    other = catalog["web"]["ordinary"][4]
    mapping = tmp_path / "map.csv"
    mapping.write_text(
        f"email,user_id\nJane.Doe@Corp.example,{short['user_id']}\njane.doe@corp.example,{other['user_id']}\n"
    )
    rt = make_runtime()
    _, export = run_access(rt, tmp_path / "out", ("email", "jane.doe@corp.example"), identity_map=str(mapping))
    searched = [e["query"]["user"] for e in api_calls(emulator, "/usersearch")]
    assert searched == [short["user_id"], other["user_id"]]  # never the email itself
    assert sorted(s["amplitude_id"] for s in export["subjects"]) == sorted(
        [short["amplitude_id"], other["amplitude_id"]]
    )
    assert not {u["amplitude_id"] for u in longer} & set(activity_users(emulator))
    assert {a["via"] for a in export["resolution"]["attempts"]} == {"identity_map"}


def test_person_in_two_projects_is_two_subjects(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    web, mobile = catalog["web"]["cross_project"][0], catalog["mobile"]["cross_project"][0]
    rt = make_runtime(projects=("web", "mobile"))
    _, export = run_access(rt, tmp_path / "out", ("email", web["user_id"]))
    got = {(s["project"], s["amplitude_id"], s["event_count"]) for s in export["subjects"]}
    assert got == {
        ("web", web["amplitude_id"], web["num_events"]),
        ("mobile", mobile["amplitude_id"], mobile["num_events"]),
    }
    assert sorted(e["project"] for e in user_pool_calls(emulator)) == ["mobile", "mobile", "web", "web"]


# --- the most recent session and paging ------------------------------------------------------


def test_heavy_user_first_page_is_widened_to_whole_sessions(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    heavy = catalog["web"]["heavy"]
    _, hi = heavy["page_boundary_session"]
    rt = make_runtime()
    _, export = run_access(rt, tmp_path / "out", ("user_id", heavy["user_id"]))
    [subject] = export["subjects"]
    uuids = event_uuids(subject)
    assert len(uuids) == len(set(uuids)) == hi  # the first page, widened to the session end
    # The session straddling position 1000 and the most recent session are complete.
    assert truth_session_uuids(emulator, "web", heavy["amplitude_id"], 999) <= set(uuids)
    assert truth_session_uuids(emulator, "web", heavy["amplitude_id"], 0) <= set(uuids)
    assert subject["most_recent_session_complete"] is True
    assert activity_users(emulator) == [heavy["amplitude_id"]]  # one page was enough


def test_long_last_session_is_complete_beyond_the_first_page(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    marathon = catalog["web"]["long_session"]
    _, session_end = marathon["page_boundary_session"]
    rt = make_runtime()
    _, export = run_access(rt, tmp_path / "out", ("email", marathon["user_id"]))
    [subject] = export["subjects"]
    uuids = event_uuids(subject)
    assert len(uuids) == len(set(uuids))
    last_session = truth_session_uuids(emulator, "web", marathon["amplitude_id"], 0)
    assert len(last_session) == session_end == 1100
    assert last_session <= set(uuids)
    newest = subject["sessions"][0]
    assert newest["event_count"] == session_end
    assert subject["most_recent_session_complete"] is True
    # The first page was widened to the session's end: no second page for the same session.
    assert [e["query"]["offset"] for e in api_calls(emulator, "/useractivity")] == ["0"]


def test_full_history_pages_everything_deduplicated(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    heavy = catalog["web"]["heavy"]
    rt = make_runtime()
    _, export = run_access(rt, tmp_path / "out", ("user_id", heavy["user_id"]), full_history=True)
    [subject] = export["subjects"]
    uuids = event_uuids(subject)
    assert len(uuids) == len(set(uuids)) == heavy["num_events"]
    assert subject["sources"] == ["user_activity_full_history"]
    offsets = [int(e["query"]["offset"]) for e in api_calls(emulator, "/useractivity")]
    assert offsets == [0, 1000]  # pages overlap (whole sessions); the overlap is dropped by uuid


# --- org keys: the DSAR export --------------------------------------------------------------


def test_dsar_downloads_every_file_and_merges_with_activity(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["merged"]
    rt = make_runtime(org=True)
    _, export = run_access(rt, tmp_path / "out", ("user_id", user["user_id"]))
    [subject] = export["subjects"]
    posts = api_calls(emulator, "/dsar/requests", "POST")
    assert len(posts) == 1
    assert posts[0]["body"]["amplitudeId"] == user["amplitude_id"]
    [done] = [e for e in emulator.admin.request_log() if "/dsar/requests/" in e["path"] and e["method"] == "GET"
              and "/outputs/" not in e["path"]][-1:]  # fmt: skip
    storage = [e for e in emulator.admin.request_log() if e["pool"] == "storage"]
    outputs = [e for e in emulator.admin.request_log() if "/outputs/" in e["path"] and e["pool"] != "storage"]
    assert subject["dsar"]["status"] == "done"
    assert subject["dsar"]["files"] == len(outputs) == len(storage) > 0
    assert len({e["path"] for e in outputs}) == len(outputs)  # each file once
    assert subject["sources"][0] == "dsar" and "user_activity" in subject["sources"]
    uuids = event_uuids(subject)
    assert len(uuids) == len(set(uuids)) == user["num_events"]
    assert subject["dsar"]["events"] == user["num_events"]
    assert done["status"] == 200


def test_dsar_failed_for_an_oversize_user_falls_back_to_project_keys(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    bulk = catalog["web"]["dsar_oversize"]
    rt = make_runtime(org=True)
    _, export = run_access(rt, tmp_path / "out", ("user_id", bulk["user_id"]))
    [subject] = export["subjects"]
    assert subject["dsar"]["status"] == "failed"
    assert subject["dsar"]["fell_back_to_project_keys"] is True
    assert subject["sources"] == ["user_activity"]
    assert any("falls back to the project-key data" in n for n in export["notes"])
    assert subject["event_count"] == len(set(event_uuids(subject))) >= 1000
    assert not [e for e in emulator.admin.request_log() if "/outputs/" in e["path"]]
    assert len(api_calls(emulator, "/dsar/requests", "POST")) == 1


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_dsar_polling_survives_a_restart(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][5]
    emulator.admin.set_speed(1.0)  # the export stays `staging`/`submitted` until we advance
    rt = make_runtime(org=True)
    rid, _ = api.submit(
        rt, "access", [Identifier.parse("user_id", user["user_id"])], options={"out_dir": str(tmp_path / "out")}
    )

    def polls() -> int:
        return len([e for e in emulator.admin.request_log() if e["method"] == "GET" and "/dsar/requests/" in e["path"]])

    _wait_for(lambda: polls() >= 2)
    rt.close()  # the process "dies" mid-poll (DBOS.destroy)
    rt = make_runtime(org=True)  # a new process on the same database recovers the workflow
    assert repo.get_request(rt.engine, rid).status == "collecting"
    emulator.admin.advance(days=2)
    assert api.wait(rt, rid) == "completed"
    assert len(api_calls(emulator, "/dsar/requests", "POST")) == 1
    assert len(api_calls(emulator, "/usersearch")) == 1
    assert len(api_calls(emulator, "/useractivity")) == 1
    storage = [e for e in emulator.admin.request_log() if e["pool"] == "storage"]
    assert storage
