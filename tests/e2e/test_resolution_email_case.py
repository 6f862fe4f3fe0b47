"""Emails are matched case-insensitively, end to end against the emulator: the email is searched
as given and lower-cased (one search when they are equal), an exact user_id match on either form
is accepted, prefix matches and other user_ids never are, and other user IDs stay
case-sensitive. Every test asserts which searches the emulator received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from amplitude_dsr.cli.main import app
from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import api_calls, env_for
from .test_access import activity_users, run_access, user_pool_calls


def searched(emulator: EmulatorServer) -> list[str]:
    return [e["query"]["user"] for e in api_calls(emulator, "/usersearch")]


def test_upper_case_email_finds_the_lower_case_user_id(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    alice = catalog["web"]["ordinary"][0]
    given = alice["user_id"].upper()
    row, export = run_access(make_runtime(), tmp_path / "out", ("email", given))
    assert row.status == "completed", row.error
    assert searched(emulator) == [given, alice["user_id"]]
    assert activity_users(emulator) == [alice["amplitude_id"]]
    [subject] = export["subjects"]
    assert subject["amplitude_id"] == alice["amplitude_id"]
    assert subject["event_count"] == alice["num_events"] and export["data_held"] is True
    assert export["statement"].startswith("Data held")
    assert export["resolution"]["unresolved"] == []


def test_lower_case_email_costs_one_search(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][3]
    _, export = run_access(make_runtime(), tmp_path / "out", ("email", user["user_id"]))
    assert [e["path"].rsplit("/", 1)[1] for e in user_pool_calls(emulator)] == ["usersearch", "useractivity"]
    assert [s["amplitude_id"] for s in export["subjects"]] == [user["amplitude_id"]]


def test_both_forms_stored_are_both_the_subject(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    carol = catalog["web"]["ordinary"][1]
    mixed = emulator.admin.add_user("web", user_id=carol["user_id"].capitalize(), events=4)
    _, export = run_access(make_runtime(), tmp_path / "out", ("email", mixed["user_id"]))
    assert searched(emulator) == [mixed["user_id"], carol["user_id"]]
    assert sorted(s["amplitude_id"] for s in export["subjects"]) == sorted(
        [mixed["amplitude_id"], carol["amplitude_id"]]
    )


def test_case_insensitive_never_means_prefix(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    short, longer = catalog["web"]["prefix_pairs"][0]  # bob@example.co, bob@example.com
    _, export = run_access(make_runtime(), tmp_path / "out", ("email", short["user_id"].upper()))
    assert searched(emulator) == [short["user_id"].upper(), short["user_id"]]
    assert [s["amplitude_id"] for s in export["subjects"]] == [short["amplitude_id"]]
    assert longer["amplitude_id"] not in activity_users(emulator)
    accepted = [c for a in export["resolution"]["attempts"] for c in a["candidates"] if c["accepted"]]
    assert [c["user_id"] for c in accepted] == [short["user_id"]]


def test_user_ids_other_than_emails_stay_case_sensitive(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    alice = catalog["web"]["ordinary"][0]
    _, export = run_access(make_runtime(), tmp_path / "out", ("user_id", alice["user_id"].upper()))
    assert searched(emulator) == [alice["user_id"].upper()]
    assert export["data_held"] is False and activity_users(emulator) == []


def test_cli_access_with_an_upper_case_email_reports_the_data(
    emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    alice = catalog["web"]["ordinary"][0]
    env = env_for(emulator, f"sqlite:///{tmp_path / 'dsr.sqlite'}")
    result = CliRunner().invoke(app, ["access", "--email", alice["user_id"].upper(), "--out", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    assert f"{alice['num_events']} events" in result.stdout
    assert "no data held" not in result.stdout
    assert searched(emulator) == [alice["user_id"].upper(), alice["user_id"]]
