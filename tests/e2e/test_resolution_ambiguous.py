"""Answers about somebody else, end to end against the emulator: a numeric user ID that is
another user's Amplitude ID, a device ID that is somebody's user ID or Amplitude ID, an Amplitude
ID that is also a numeric user ID, merged IDs. The person is found when something resolves it
(another identifier, a prefix probe); otherwise the identifier is reported as not resolved,
never as "no data held". Every test asserts which searches and activity calls the emulator
received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from amplitude_dsr.cli.main import app
from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import repo

from .conftest import api_calls, env_for
from .test_access import activity_users, run_access

COULD_NOT = "could not be resolved"


def searched(emulator: EmulatorServer) -> list[str]:
    return [e["query"]["user"] for e in api_calls(emulator, "/usersearch")]


def test_numeric_user_id_equal_to_another_users_amplitude_id_is_found(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    numeric, alice = catalog["web"]["numeric_user_id"], catalog["web"]["ordinary"][0]
    assert numeric["user_id"] == str(alice["amplitude_id"])
    row, export = run_access(make_runtime(), tmp_path / "out", ("user_id", numeric["user_id"]))
    assert row.status == "completed", row.error
    # The search is answered with alice (match_amplitude_id); one prefix probe finds the user.
    assert searched(emulator) == [numeric["user_id"], numeric["user_id"][:-1]]
    assert activity_users(emulator) == [numeric["amplitude_id"]]  # never alice's data
    [subject] = export["subjects"]
    assert (subject["amplitude_id"], subject["user_id"]) == (numeric["amplitude_id"], numeric["user_id"])
    assert subject["event_count"] == numeric["num_events"]
    first, probe = export["resolution"]["attempts"]
    # alice (the answer) is somebody else: counted, never named in the subject's export.
    assert first["match_type"] == "match_amplitude_id" and first["candidates"] == []
    assert first["excluded_candidates"] == 1
    assert first["ambiguous"] is False and first["note"].startswith("resolved by the prefix probe")
    assert probe["probe_for"] == numeric["user_id"] and probe["match_type"] == "match_user_prefix"
    assert export["resolution"]["unresolved"] == [] and export["resolution"]["unresolved_details"] == []
    assert export["statement"].startswith("Data held")


def test_another_identifier_resolves_the_ambiguous_answer_without_a_probe(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    numeric = catalog["web"]["numeric_user_id"]
    idents = [("user_id", numeric["user_id"]), ("device_id", numeric["device_ids"][0])]
    _, export = run_access(make_runtime(), tmp_path / "out", *idents)
    assert searched(emulator) == [numeric["user_id"], numeric["device_ids"][0]]  # no probe
    assert activity_users(emulator) == [numeric["amplitude_id"]]
    [subject] = export["subjects"]
    assert subject["amplitude_id"] == numeric["amplitude_id"]
    assert {i["kind"] for i in subject["matched_by"]} == {"user_id", "device_id"}
    assert export["resolution"]["attempts"][0]["note"].startswith("resolved: a user found through another")


def test_numeric_user_id_nobody_has_is_no_data_after_the_probe(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    bob = catalog["web"]["prefix_pairs"][0][0]
    _, export = run_access(make_runtime(), tmp_path / "out", ("user_id", str(bob["amplitude_id"])))
    assert searched(emulator) == [str(bob["amplitude_id"]), str(bob["amplitude_id"])[:-1]]
    assert activity_users(emulator) == []
    assert export["data_held"] is False and export["statement"].startswith("No data held")
    [detail] = export["resolution"]["unresolved_details"]
    assert detail["ambiguous"] is False


def test_device_id_equal_to_another_users_amplitude_id_is_reported_unresolved(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    alice = catalog["web"]["ordinary"][0]
    value = str(alice["amplitude_id"])
    _, export = run_access(make_runtime(), tmp_path / "out", ("device_id", value))
    assert searched(emulator) == [value]  # User Search has no device prefix search: no probe
    assert activity_users(emulator) == []  # alice's data is never fetched
    assert export["data_held"] is False
    assert export["statement"].startswith("Could not be resolved") and "No data held" not in export["statement"]
    [attempt] = export["resolution"]["attempts"]
    assert attempt["ambiguous"] is True
    [detail] = export["resolution"]["unresolved_details"]
    assert detail["ambiguous"] is True and detail["projects"] == ["web"]
    assert value not in detail["reason"]


def test_unresolved_identifier_next_to_a_found_one_is_said_in_the_statement(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    alice, carol = catalog["web"]["ordinary"][0], catalog["web"]["ordinary"][1]
    idents = [("device_id", str(alice["amplitude_id"])), ("user_id", carol["user_id"])]
    _, export = run_access(make_runtime(), tmp_path / "out", *idents)
    assert [s["amplitude_id"] for s in export["subjects"]] == [carol["amplitude_id"]]
    assert export["statement"].startswith("Data held") and "1 identifier could not be resolved" in export["statement"]


def test_cli_says_could_not_be_resolved_instead_of_no_data_held(
    emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    value = str(catalog["web"]["ordinary"][0]["amplitude_id"])
    env = env_for(emulator, f"sqlite:///{tmp_path / 'dsr.sqlite'}")
    result = CliRunner().invoke(app, ["access", "--device-id", value, "--out", str(tmp_path)], env=env)
    assert result.exit_code == 3, result.output  # completed, but a partial answer: it says so
    assert COULD_NOT in result.stdout and "no data held" not in result.stdout
    assert value not in result.stdout and value not in result.stderr
    assert searched(emulator) == [value]


def test_device_id_that_is_also_its_own_users_user_id_is_found(
    make_runtime: Any, emulator: EmulatorServer, tmp_path: Path
) -> None:
    user = emulator.admin.add_user("web", user_id="kiosk-7f3a9c", device_id="kiosk-7f3a9c", events=6)
    _, export = run_access(make_runtime(), tmp_path / "out", ("device_id", "kiosk-7f3a9c"))
    assert searched(emulator) == ["kiosk-7f3a9c"]
    assert activity_users(emulator) == [user["amplitude_id"]]
    assert [s["amplitude_id"] for s in export["subjects"]] == [user["amplitude_id"]]


def test_device_id_equal_to_somebody_elses_user_id_finds_only_the_device_owner(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    anonymous = catalog["web"]["device_only"][0]
    device = anonymous["device_ids"][0]
    other = emulator.admin.add_user("web", user_id=device, events=3)
    _, export = run_access(make_runtime(), tmp_path / "out", ("device_id", device))
    assert searched(emulator) == [device]
    assert [s["amplitude_id"] for s in export["subjects"]] == [anonymous["amplitude_id"]]
    [subject] = export["subjects"]
    assert other["amplitude_id"] not in {e["amplitude_id"] for e in subject["events"]}
    # The other user (whose user ID is the device ID) is counted, never named, in the export.
    [attempt] = export["resolution"]["attempts"]
    assert other["amplitude_id"] not in {c["amplitude_id"] for c in attempt["candidates"]}
    assert attempt["excluded_candidates"] == 1


def test_amplitude_id_that_is_also_a_numeric_user_id_is_the_amplitude_user(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    alice, numeric = catalog["web"]["ordinary"][0], catalog["web"]["numeric_user_id"]
    _, export = run_access(make_runtime(), tmp_path / "out", ("amplitude_id", str(alice["amplitude_id"])))
    assert searched(emulator) == [str(alice["amplitude_id"])]
    assert activity_users(emulator) == [alice["amplitude_id"]]
    assert [s["amplitude_id"] for s in export["subjects"]] == [alice["amplitude_id"]]
    assert numeric["amplitude_id"] not in activity_users(emulator)


def test_numeric_user_id_equal_to_a_merged_amplitude_id_is_found(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    merged = catalog["web"]["merged"]
    value = str(merged["merged_amplitude_ids"][0])
    user = emulator.admin.add_user("web", user_id=value, events=5)
    _, export = run_access(make_runtime(), tmp_path / "out", ("user_id", value))
    assert searched(emulator) == [value, value[:-1]]
    assert activity_users(emulator) == [user["amplitude_id"]]  # never the merged user's data
    assert [s["amplitude_id"] for s in export["subjects"]] == [user["amplitude_id"]]


def test_deletion_of_a_numeric_user_id_deletes_that_user_not_the_amplitude_id_owner(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    numeric, alice = catalog["web"]["numeric_user_id"], catalog["web"]["ordinary"][0]
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", numeric["user_id"])])
    assert api.wait(rt, rid) == "verified"
    [post] = api_calls(emulator, "/deletions/users", "POST")
    assert post["body"]["amplitude_ids"] == [numeric["amplitude_id"]]
    assert alice["amplitude_id"] not in post["body"]["amplitude_ids"]
    assert repo.get_request(rt.engine, rid).status == "verified"
