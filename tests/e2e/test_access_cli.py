"""The ``access`` command through typer's CliRunner against the emulator: exit codes, what is
(not) written, the ``--json`` document, and what the emulator received."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from amplitude_dsr.cli.main import app
from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import api_calls, env_for


def invoke(args: list[str], env: dict[str, str]) -> Any:
    """Run the CLI in-process. DBOS keeps one logging handler per process, bound to the stderr of
    the first run; point it back at the real stderr so a second run does not write to a stream
    CliRunner already closed (a real CLI process runs one command)."""
    for handler in logging.getLogger("dbos").handlers:
        if handler.name == "__dbos_console_log_handler__" and isinstance(handler, logging.StreamHandler):
            handler.stream = sys.__stderr__  # not setStream(): it flushes the closed stream
    return CliRunner().invoke(app, args, env=env)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "not-an-email"], "malformed email address"),
        (["--email", "two@@example.com"], "malformed email address"),
        (["--amplitude-id", "12ab"], "an Amplitude ID must be a positive integer"),
        (["--amplitude-id", "-5"], "an Amplitude ID must be a positive integer"),
        (["--amplitude-id", "0"], "an Amplitude ID must be a positive integer"),
        (["--user-id", "   "], "empty user_id"),
        ([], "give at least one identifier"),
        (["--user-id", "alice@example.com", "--project", "nope"], "project"),
        (["--user-id", "alice@example.com", "--regulation", "hipaa"], "regulation"),
        (["--email", "a@example.com", "--identity-map", "/nonexistent/map.csv"], "identity map not found"),
        (["--email", "a@example.com", "--identity-map", "ftp://example.com/map"], "identity map"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    args: list[str], message: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = env_for(emulator, f"sqlite:///{data / 'dsr.sqlite'}")
    result = invoke(["access", *args, "--out", str(tmp_path / "out"), "--json"], env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    error = json.loads(result.stdout)["error"]  # --json: the error document, nothing else
    assert error["code"] == 2 and message in error["message"]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert not data.exists()  # not even the database
    assert emulator.admin.request_log() == []


def test_wrong_secret_exits_1_and_leaves_no_report(emulator: EmulatorServer, db_url: str, tmp_path: Path) -> None:
    env = env_for(emulator, db_url, AMPLITUDE_SECRET_KEY="wrong-secret")
    out = tmp_path / "out"
    result = invoke(["access", "--user-id", "alice@example.com", "--out", str(out)], env)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert "401" in line and "region" in line
    assert "alice" not in result.output
    assert tree(out) == []
    searches = api_calls(emulator, "/usersearch")
    assert [e["status"] for e in searches] == [401]  # a 401 is not retried
    assert api_calls(emulator, "/useractivity") == []


@pytest.mark.parametrize("path", ["/api/2/usersearch", "/api/2/useractivity"])
def test_a_burst_of_unreadable_answers_is_retried_and_the_request_completes(
    path: str, emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    """40 unreadable 200 answers in a row (a proxy's error page): transient, retried durably;
    the request completes with the whole answer (it used to fail on the first)."""
    emulator.admin.inject_fault("malformed", path=path, count=40)
    env = env_for(emulator, db_url)
    out = tmp_path / "out"
    result = invoke(["access", "--user-id", "alice@example.com", "--out", str(out), "--json"], env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "completed" and doc["complete"] is True
    calls = api_calls(emulator, path.removeprefix("/api/2"))
    assert len(calls) == 41  # every unreadable answer, then the one that was read
    export = json.loads((Path(doc["out_dir"]) / "export.json").read_text())
    assert export["subjects"][0]["event_count"] == 58


def test_json_document_and_package(
    emulator: EmulatorServer, db_url: str, catalog: dict[str, Any], tmp_path: Path
) -> None:
    merged = catalog["web"]["merged"]
    unknown = "nobody-here@example.net"
    env = env_for(emulator, db_url)
    out = tmp_path / "out"
    result = invoke(["access", "--email", merged["user_id"], "--email", unknown, "--out", str(out), "--json"], env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "completed" and doc["kind"] == "access"
    assert doc["request_id"]
    [subject] = doc["subjects"]
    assert subject["project"] == "default"
    assert subject["events"] == merged["num_events"]
    assert subject["matched_by"] == ["email"]
    assert subject["merged_amplitude_ids"] == len(merged["merged_amplitude_ids"])
    assert doc["unresolved_identifiers"] == 1
    assert doc["data_held"] is True
    # No identifier values in the summary printed to a terminal or a log collector.
    assert merged["user_id"] not in result.stdout and unknown not in result.stdout
    package = out / doc["request_id"]
    names = {"export.json", "report.html", "events.csv", "manifest.json"}
    assert {Path(f).name for f in doc["files"]} == names
    assert all(Path(f).parent == package for f in doc["files"])
    manifest = json.loads((package / "manifest.json").read_text())
    for entry in manifest["files"]:
        assert hashlib.sha256((package / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    assert {e["name"] for e in manifest["files"]} == names - {"manifest.json"}
    export = json.loads((package / "export.json").read_text())
    assert export["schema_version"] == 2 and export["subjects"][0]["event_count"] == merged["num_events"]
    csv_lines = (package / "events.csv").read_text().splitlines()
    assert len(csv_lines) == merged["num_events"] + 1
    assert len(api_calls(emulator, "/usersearch")) == 2 and len(api_calls(emulator, "/useractivity")) == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_unknown_person_is_no_data_held(emulator: EmulatorServer, db_url: str, tmp_path: Path) -> None:
    env = env_for(emulator, db_url)
    out = tmp_path / "out"
    result = invoke(["access", "--email", "nobody-here@example.net", "--out", str(out)], env)
    assert result.exit_code == 0, result.output
    assert "no data held" in result.stdout
    [package] = out.iterdir()
    export = json.loads((package / "export.json").read_text())
    assert export["data_held"] is False and export["subjects"] == []
    assert "No data held" in (package / "report.html").read_text()
    assert len(api_calls(emulator, "/usersearch")) == 1 and api_calls(emulator, "/useractivity") == []

    result = invoke(["access", "--email", "nobody-here@example.net", "--out", str(out), "--json"], env)
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["subjects"] == [] and doc["data_held"] is False


def test_identity_map_over_http_is_not_reached_for_bad_input(emulator: EmulatorServer, tmp_path: Path) -> None:
    env = env_for(emulator, f"sqlite:///{tmp_path / 'd' / 'dsr.sqlite'}")
    result = invoke(["access", "--email", "x@y", "--identity-map", "http://127.0.0.1:9/lookup"], env)
    assert result.exit_code == 2
    assert not (tmp_path / "d").exists()
