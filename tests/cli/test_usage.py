"""Every command: accurate ``--help``, and bad input gives one line on stderr and exit 2
(docs/architecture.md#contracts), never a traceback."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from amplitude_dsr.cli.main import app

from .conftest import Invoke, assert_clean

COMMANDS = sorted(c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands)
CONTRACT_COMMANDS = {"access", "delete", "status", "cancel", "worker", "test-connection", "batch", "emulator", "demo"}
EXTRA_COMMANDS = {"data-key", "serve"}  # beyond the contract: documented in docs/cli.md

# Credentials that point nowhere: none of these runs may reach an Amplitude API.
OFFLINE = {"AMPLITUDE_API_KEY": "k" * 32, "AMPLITUDE_SECRET_KEY": "s" * 32, "AMPLITUDE_BASE_URL": "http://127.0.0.1:9"}


def test_every_contract_command_is_registered() -> None:
    assert set(COMMANDS) == CONTRACT_COMMANDS | EXTRA_COMMANDS


def test_data_key_prints_a_new_key_each_time(invoke: Invoke) -> None:
    first, second = invoke(["data-key"]), invoke(["data-key", "--json"])
    assert first.exit_code == second.exit_code == 0
    key = first.stdout.strip()
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert json.loads(second.stdout)["data_key"] not in ("", key)


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]], ids=lambda c: c[0] if c else "root")
def test_help_exits_0_and_reads_well(command: list[str], invoke: Invoke) -> None:
    result = invoke([*command, "--help"])
    assert_clean(result)
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: amplitude-dsr")
    assert "list[str]" not in result.stdout  # typer's default metavar for repeatable options
    if command:
        assert "--json" in result.stdout  # every command takes --json (docs/architecture.md#contracts)


@pytest.mark.parametrize("command", COMMANDS)
def test_options_and_arguments_have_readable_metavars(command: str, invoke: Invoke) -> None:
    """``--port PORT``, ``REQUEST_ID``: never typer's ``--port <int>`` or a lower-case
    parameter name (typer still adds ``<type>`` after an argument's name)."""
    text = invoke([command, "--help"]).stdout
    assert not re.search(r"^\s+--[\w-]+ <\w+>", text, re.MULTILINE), text
    usage = text.splitlines()[0]
    assert not re.search(r"[\[{][a-z_]+[\]}]", usage), usage


def test_identifier_options_show_their_metavars(invoke: Invoke) -> None:
    text = invoke(["access", "--help"]).stdout
    for option in ("--email EMAIL", "--user-id USER_ID", "--amplitude-id AMPLITUDE_ID", "--device-id DEVICE_ID"):
        assert option in text


BAD_INPUT = [
    pytest.param(["access"], "give at least one identifier", id="access-no-identifier"),
    pytest.param(["delete"], "give at least one identifier", id="delete-no-identifier"),
    pytest.param(["access", "--amplitude-id", "abc"], "Amplitude ID must be a positive integer", id="amplitude-id-abc"),
    pytest.param(
        ["delete", "--amplitude-id", "-5"], "Amplitude ID must be a positive integer", id="amplitude-id-negative"
    ),
    pytest.param(["access", "--email", "not-an-email"], "malformed email address", id="bad-email"),
    pytest.param(["delete", "--device-id", "  "], "empty device_id", id="empty-device-id"),
    pytest.param(["access", "--user-id", "someone", "--regulation", "xyz"], "regulation", id="access-bad-regulation"),
    pytest.param(["delete", "--user-id", "someone", "--regulation", "xyz"], "regulation", id="delete-bad-regulation"),
    pytest.param(["access", "--user-id", "someone", "--project", "nope"], "no project named", id="unknown-project"),
    pytest.param(["batch", "missing.csv"], "batch file not found", id="batch-missing-file"),
    pytest.param(["batch", "ok.csv", "--regulation", "xyz"], "regulation", id="batch-bad-regulation"),
    pytest.param(["batch", "ok.csv", "--project", "nope"], "no project named", id="batch-unknown-project"),
    pytest.param(
        ["batch", "ok.csv", "--identity-map", "missing-map.csv"], "identity map not found", id="batch-missing-map"
    ),
    pytest.param(["--config", "missing.toml", "status"], "config file not found", id="missing-config"),
    pytest.param(
        ["--config", "bad.toml", "access", "--user-id", "someone"], "cannot read config file", id="bad-config"
    ),
    pytest.param(["--config", "bad.toml", "test-connection"], "cannot read config file", id="bad-config-connection"),
    pytest.param(["--config", "bad.toml", "batch", "ok.csv"], "cannot read config file", id="bad-config-batch"),
    pytest.param(["--config", "bad.toml", "worker", "--until-idle"], "cannot read config file", id="bad-config-worker"),
]


def _files(tmp_path: Path) -> None:
    (tmp_path / "ok.csv").write_text("request,kind,value\naccess,user_id,someone\n", encoding="utf-8")
    (tmp_path / "bad.toml").write_text("[[projects]\nname = \n", encoding="utf-8")


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, db_url: str, invoke: Invoke
) -> None:
    _files(tmp_path)
    result = invoke(args, {**OFFLINE, "AMPLITUDE_DSR_DATABASE_URL": db_url})
    assert_clean(result)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["no-such-command"], id="unknown-command"),
        pytest.param(["access", "--no-such-option"], id="unknown-option"),
        pytest.param(["worker", "--executor-id"], id="missing-value"),
        pytest.param(["emulator", "--port", "abc"], id="not-a-number"),
        pytest.param(["demo", "--seed", "x"], id="demo-not-a-number"),
        pytest.param(["batch"], id="batch-no-file"),
        pytest.param(["cancel"], id="cancel-no-id"),
    ],
)
def test_command_line_usage_errors_exit_2(args: list[str], invoke: Invoke) -> None:
    result = invoke(args)
    assert_clean(result)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stdout == ""


def test_unknown_request_is_a_failure_not_usage(db_url: str, invoke: Invoke) -> None:
    for args in (["status", "dsr_20200101000000_deadbeef"], ["cancel", "dsr_20200101000000_deadbeef"]):
        result = invoke(args, {**OFFLINE, "AMPLITUDE_DSR_DATABASE_URL": db_url})
        assert_clean(result)
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines() == ["error: no request 'dsr_20200101000000_deadbeef'"]


def test_no_project_configured_is_exit_2(tmp_path: Path, db_url: str, invoke: Invoke) -> None:
    _files(tmp_path)
    for args in (["access", "--user-id", "someone"], ["batch", "ok.csv"]):
        result = invoke(args, {"AMPLITUDE_DSR_DATABASE_URL": db_url})
        assert_clean(result)
        assert result.exit_code == 2
        assert "no Amplitude project configured" in result.stderr
