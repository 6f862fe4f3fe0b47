"""Odd command-line input never crashes the CLI (docs/cli.md, exit codes).

The reported cases one by one, then property-based runs (hypothesis, deterministic) of a few
thousand odd identifiers, option values, environment values, config files and argument lists, in
process through typer's CliRunner, against a real emulator: every run exits 0, 1 or 2 with at
most one line on stderr and no traceback, every input error exits 2 with nothing written, and
no invalid input reaches the emulator (its request log stays as it was)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
import typer.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from amplitude_dsr.cli.main import app
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import CONTRACT_ENV
from .odd_values import (
    IDENTIFIER_KINDS,
    NUMERIC_ENV,
    argv_tokens,
    config_texts,
    emails,
    env_values,
    identifier_is_valid,
    identifier_messages,
    identifier_values,
    number_is_refused,
    numbers,
    odd_text,
)

RATE_SCALE = 1000.0
# Fails every run that gets past option parsing when it opens the database: no request is stored.
UNUSABLE_DB = "sqlite:////proc/amplitude-dsr-none/dsr.sqlite"
FUZZ = settings(
    deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(seed=1, rate_scale=RATE_SCALE, clock_speed=86400.0 * 4) as server:
        yield server


@pytest.fixture(scope="module")
def base_env(emu: EmulatorServer) -> dict[str, str]:
    p = next(p for p in emu.admin.state()["projects"] if p["name"] == "web")
    return {
        "AMPLITUDE_API_KEY": p["api_key"], "AMPLITUDE_SECRET_KEY": p["secret_key"],
        "AMPLITUDE_BASE_URL": p["base_url"], "AMPLITUDE_DSR_RATE_SCALE": str(RATE_SCALE),
        "AMPLITUDE_DSR_POLL_INTERVAL": "0.2", "AMPLITUDE_DSR_MAX_LINGER": "30",
    }  # fmt: skip


class Cli:
    """Runs the CLI in process, each run in a directory of its own (database, home, cwd)."""

    def __init__(self, emu: EmulatorServer, base_env: dict[str, str], root: Path) -> None:
        self.emu, self.base_env, self.root = emu, base_env, root
        # One admin connection for all runs (EmulatorAdmin opens a client, with its TLS setup, per call).
        self.admin = httpx.Client(base_url=emu.admin.base_url + "/_admin", timeout=30)
        self.seq = 0  # the emulator's last logged call seen
        self.received: list[dict[str, Any]] = []  # what the emulator received during the last run
        self.reached = 0

    def __call__(
        self, args: list[str], env: dict[str, str] | None = None, files: dict[str, bytes] | None = None
    ) -> tuple[Result, Path]:
        work = self.root / uuid.uuid4().hex[:12]
        data = work / "data"
        work.mkdir(parents=True)
        for name, content in (files or {}).items():
            (work / name).write_bytes(content)
        full: dict[str, str | None] = dict.fromkeys(CONTRACT_ENV)
        full.update({"HOME": str(work / "home"), "XDG_DATA_HOME": str(work / "xdg")})
        full.update({**self.base_env, "AMPLITUDE_DSR_DATABASE_URL": f"sqlite:///{data / 'dsr.sqlite'}"})
        full.update(env or {})
        loggers = [logging.getLogger(), logging.getLogger("dbos")]
        handlers = [list(lg.handlers) for lg in loggers]
        for handler in loggers[1].handlers:  # DBOS's handler outlives the run that added it
            if handler.name == "__dbos_console_log_handler__" and isinstance(handler, logging.StreamHandler):
                handler.stream = sys.__stderr__  # not setStream(): it flushes the closed stream
        cwd = Path.cwd()
        os.chdir(work)
        try:
            result = CliRunner().invoke(app, args, env=full)
        finally:
            os.chdir(cwd)
            for lg, kept in zip(loggers, handlers, strict=True):
                for handler in [h for h in lg.handlers if h not in kept]:
                    lg.removeHandler(handler)
        self.received = self.admin.get("/requests", params={"since": self.seq}).raise_for_status().json()
        self.seq = self.received[-1]["seq"] if self.received else self.seq
        self.reached = len(self.received)
        return result, data


@pytest.fixture(scope="module")
def cli(emu: EmulatorServer, base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    runner = Cli(emu, base_env, tmp_path_factory.mktemp("odd"))
    command = typer.main.get_command(app)  # typer builds it anew on every invoke otherwise (~40 ms)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda _app: command)
        yield runner
    runner.admin.close()


def clean(result: Result, codes: tuple[int, ...] = (0, 1, 2)) -> list[str]:
    """The run's stderr lines, after checking what every run keeps to."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in codes, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 1, result.stderr
    return lines


def input_error(cli: Cli, result: Result, data: Path) -> str:
    """An input error: exit 2, one ``error:`` line, no database, nothing sent to Amplitude."""
    lines = clean(result, (2,))
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not data.exists()
    assert cli.reached == 0
    return lines[0]


# -- The reported cases, one by one ------------------------------------------------------------

ODD_FILES = {
    "odd.toml": b"",
    "bad-utf8.toml": b"\xff\xfe rate_scale = 1\n",
    "typo.toml": b'[[projects]]\nname = "x"\napi_key = 1\n',
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--amplitude-id", "\u00b2"], "an Amplitude ID must be a positive integer"),
        (["--amplitude-id", "\u0661\u0662"], "an Amplitude ID must be a positive integer"),
        (["--user-id", "a\udcffb"], "user_id is not valid UTF-8"),
        (["--email", "a\udcff@example.com"], "email is not valid UTF-8"),
        (["--device-id", "dev\x00ice"], "device_id contains a control character"),
        (["--user-id", "x" * 100_000], "user_id longer than 1024 characters"),
        (["--user-id", "someone", "--identity-map", "map\x00.csv"], "--identity-map contains a NUL"),
        (["--email", "a@example.com", "--identity-map", "http://[::1"], "--identity-map is neither"),
        (["--user-id", "someone", "--out", "odd.toml"], "odd.toml is a file"),
        (["--user-id", "someone", "--out", "odd.toml/reports"], "which is a file"),
    ],
)
@pytest.mark.parametrize("command", ["access", "delete"])
def test_odd_request_input_exits_2(command: str, args: list[str], message: str, cli: Cli) -> None:
    result, data = cli([command, *args, "--json"], files=ODD_FILES)
    line = input_error(cli, result, data)
    assert message in line
    assert json.loads(result.stdout)["error"]["code"] == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        *[({"AMPLITUDE_DSR_RATE_SCALE": v}, "AMPLITUDE_DSR_RATE_SCALE: ") for v in ("inf", "nan", "-1", "1e309")],
        ({"AMPLITUDE_DSR_POLL_INTERVAL": "inf"}, "AMPLITUDE_DSR_POLL_INTERVAL: input should be a finite number"),
        ({"AMPLITUDE_DSR_MAX_LINGER": "nan"}, "AMPLITUDE_DSR_MAX_LINGER: input should be a finite number"),
        *[({"AMPLITUDE_DSR_DATABASE_URL": v}, "AMPLITUDE_DSR_DATABASE_URL: ")
          for v in ("garbage", "", "mysql://x/y", "postgresql://[::1", "sqlite://")],
        ({"AMPLITUDE_DSR_DATABASE_URL": "sqlite:////proc/none/dsr.sqlite"}, "cannot use the database"),
        ({"AMPLITUDE_BASE_URL": "garbage"}, "AMPLITUDE_BASE_URL: must be an http:// or https:// URL"),
        ({"AMPLITUDE_API_KEY": "key\nwith-newline"}, "AMPLITUDE_API_KEY: contains a control character"),
        ({"AMPLITUDE_DSR_REQUESTER": "dpo\udcff"}, "AMPLITUDE_DSR_REQUESTER: "),
        ({"AMPLITUDE_DSR_CONFIG": "bad-utf8.toml"}, "cannot read config file bad-utf8.toml: not UTF-8 text"),
        ({"AMPLITUDE_DSR_CONFIG": "typo.toml"}, "typo.toml: projects[0].api_key: input should be a valid string"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", [["access", "--user-id", "someone"], ["status"], ["worker", "--until-idle"]])
def test_odd_setting_exits_2(command: list[str], env: dict[str, str], message: str, cli: Cli) -> None:
    result, data = cli(command, env, files=ODD_FILES)
    assert message in input_error(cli, result, data)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "--until-idle", "--executor-id", "a/b"], "invalid value for '--executor-id'"),
        (["worker", "--until-idle", "--executor-id", ""], "invalid value for '--executor-id'"),
        (["status", "dsr_1\udcff"], "malformed request ID"),
        (["cancel", "../../etc"], "malformed request ID"),
        (["emulator", "--host", "256.1.1.1", "--port", "0"], "--host must be an IPv4 address"),
        (["emulator", "--port", "70000"], "invalid value for '--port'"),
        (["emulator", "--port", "0", "--rate-scale", "nan"], "invalid value for '--rate-scale'"),
        (["emulator", "--port", "0", "--clock-speed", "-1"], "invalid value for '--clock-speed'"),
        (["demo", "--dir", "odd.toml/demo"], "--dir"),
        (["access", "--max-wait", "soon", "--user-id", "someone"], "invalid value for '--max-wait'"),
        (["access", "alice@example.com"], "unexpected extra argument"),
        (["access", "--user-id", "someone", "--dsar-start", "2021-13-01"], "invalid request option 'dsar_start'"),
        (
            ["access", "--user-id", "someone", "--dsar-start", "2021-03-02", "--dsar-end", "2021-03-01"],
            "dsar_end is before dsar_start",
        ),
        (["access", "--user-id", "someone", "--dsar-end", "2021-03-01"], "need organisation keys"),
    ],
)
def test_odd_option_exits_2_in_one_line(args: list[str], message: str, cli: Cli) -> None:
    result, data = cli(args, files=ODD_FILES)
    line = input_error(cli, result, data)
    assert message in line
    assert "alice" not in line  # a value from the command line is never repeated


def test_an_unreachable_database_is_one_line_exit_1(cli: Cli) -> None:
    result, _ = cli(["status"], {"AMPLITUDE_DSR_DATABASE_URL": "postgresql://127.0.0.1:1/none"})
    [line] = clean(result, (1,))
    assert line.startswith("error: cannot open the database postgresql://127.0.0.1:1/none")


def test_amplitude_ids_are_ascii_digits_and_canonical() -> None:
    assert Identifier.parse("amplitude_id", " 007 ").value == "7"


# Ctrl-C while the command is still importing its modules (before any command runs): the import
# of DBOS is interrupted, as a real SIGINT during start-up would.
INTERRUPTED_START = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "dbos":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
from amplitude_dsr.cli.main import run

run()
"""


@pytest.mark.parametrize("json_out", [False, True])
def test_ctrl_c_during_start_up_exits_130_in_one_line(json_out: bool, tmp_path: Path) -> None:
    args = ["status", *(["--json"] if json_out else [])]
    env = {k: v for k, v in os.environ.items() if k not in CONTRACT_ENV}
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_START, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert done.stderr == "interrupted\n"
    if json_out:
        assert json.loads(done.stdout)["error"] == {"code": 130, "message": "interrupted", "type": "interrupted"}
    else:
        assert done.stdout == ""


# -- Property-based runs -----------------------------------------------------------------------


@settings(FUZZ, max_examples=1000)
@given(kind=st.sampled_from(IDENTIFIER_KINDS), value=identifier_values, command=st.sampled_from(["access", "delete"]))
def test_any_identifier_is_refused_or_accepted_cleanly(kind: str, value: str, command: str, cli: Cli) -> None:
    """A refused identifier says why by kind only; an accepted one gets as far as the next check
    (here a regulation that does not exist), and neither reaches Amplitude."""
    result, data = cli([command, f"--{kind.replace('_', '-')}={value}", "--regulation", "hipaa"])
    line = input_error(cli, result, data)
    if identifier_is_valid(kind, value):
        assert line == "error: regulation must be 'gdpr' or 'ccpa'"
    else:
        assert line in identifier_messages(kind)


@st.composite
def option_runs(draw: st.DrawFn) -> list[str]:
    """A request command with one option given an odd value, the rest valid."""
    command = draw(st.sampled_from(["access", "delete"]))
    option = draw(st.sampled_from(["--regulation", "--project", "--out", "--identity-map", "--max-wait"]))
    value = draw(st.one_of(odd_text, numbers, emails(), st.sampled_from(["gdpr", " CCPA ", "web", "default", "."])))
    return [command, "--user-id", "someone", f"{option}={value}", "--json"]


@settings(FUZZ, max_examples=600)
@given(args=option_runs())
def test_any_request_option_value_exits_2_before_writing(args: list[str], cli: Cli) -> None:
    """With a database that cannot be opened, every run stops at the first check it fails, at
    the latest when it opens the database: nothing is stored, nothing is sent."""
    result, data = cli(args, {"AMPLITUDE_DSR_DATABASE_URL": UNUSABLE_DB})
    input_error(cli, result, data)
    assert json.loads(result.stdout)["error"]["code"] == 2


@settings(FUZZ, max_examples=500)
@given(
    which=st.sampled_from(["status", "cancel", "worker", "emulator-port", "emulator-factor", "emulator-host"]),
    value=st.one_of(odd_text, numbers, st.sampled_from(["dsr_20200101000000_deadbeef", "w-1", "0", "127.0.0.1"])),
)
def test_any_id_or_emulator_value_exits_cleanly(which: str, value: str, cli: Cli) -> None:
    """Request and executor IDs, emulator options: a malformed one exits 2; a well-formed unknown
    request exits 1; the emulator never starts (its host is refused last)."""
    stop = {"AMPLITUDE_DSR_POLL_INTERVAL": "nan"}  # refused settings: a valid worker never starts
    args = {
        "status": ["status", "--", value], "cancel": ["cancel", "--", value],
        "worker": ["worker", "--until-idle", f"--executor-id={value}"],
        "emulator-port": ["emulator", "--host", "256.1.1.1", f"--port={value}"],
        "emulator-factor": ["emulator", "--host", "256.1.1.1", "--port", "0", f"--rate-scale={value}"],
        "emulator-host": ["emulator", "--port", "0", f"--host={value}.invalid"],
    }[which]  # fmt: skip
    result, data = cli(args, stop if which == "worker" else None)
    well_formed = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", value) is not None
    if which in ("status", "cancel") and well_formed:
        [line] = clean(result, (1, 2))
        assert line == f"error: no request {value!r}" if result.exit_code == 1 else "finite number" in line
        assert cli.reached == 0
    else:
        input_error(cli, result, data)


@settings(FUZZ, max_examples=600)
@given(variable=env_values)
def test_any_environment_value_is_used_or_refused_by_name(variable: tuple[str, str], cli: Cli) -> None:
    name, value = variable
    result, data = cli(["status", "--json"], {name: value})
    lines = clean(result, (0, 2))
    if name in NUMERIC_ENV and number_is_refused(name, value):
        assert result.exit_code == 2, result.output
    if result.exit_code == 2:
        [line] = lines
        named = {"AMPLITUDE_DSR_CONFIG": "config file", "AMPLITUDE_DSR_DATABASE_URL": "database"}.get(name, name)
        assert line.startswith("error: ") and (name in line or named in line), line
        assert not data.exists()
    assert cli.reached == 0


@settings(FUZZ, max_examples=400)
@given(text=config_texts, binary=st.booleans())
def test_any_config_file_is_used_or_refused_in_one_line(text: str, binary: bool, cli: Cli) -> None:
    content = text.encode("utf-8", "surrogatepass") if binary else text.encode("utf-8", "replace")
    result, data = cli(["--config", "c.toml", "status", "--json"], files={"c.toml": content})
    lines = clean(result, (0, 2))
    if result.exit_code == 2:
        assert lines[0].startswith("error: ") and not data.exists(), lines
    assert cli.reached == 0


@settings(FUZZ, max_examples=800)
@given(argv=argv_tokens)
def test_any_argument_list_exits_cleanly_without_repeating_values(argv: list[str], cli: Cli) -> None:
    """Random arguments for each command; settings that are refused stop whatever parses. An
    email given anywhere is never repeated (``batch`` names the file it cannot find: a path)."""
    result, _ = cli(argv, {"AMPLITUDE_DSR_POLL_INTERVAL": "nan"})
    lines = clean(result, (0, 2))
    for token in argv[1:] if argv[0] != "batch" else []:
        if re.fullmatch(r"[^@\s]+@[a-f]+\.example", token):
            assert token not in result.output, result.output
    if result.exit_code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: ")
    assert cli.reached == 0


@settings(FUZZ, max_examples=4)
@given(user_id=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs")), min_size=1, max_size=30))
def test_odd_but_valid_user_ids_reach_amplitude_unchanged(user_id: str, cli: Cli) -> None:
    """What passes validation is searched exactly as given, and the request completes."""
    result, _ = cli(["access", f"--user-id={user_id}", "--json"])
    clean(result, (0,))
    searches = [e for e in cli.received if e["path"].endswith("/usersearch")]
    assert {e["query"]["user"] for e in searches} == {user_id.strip()}
    assert json.loads(result.stdout)["status"] == "completed"


# Hundreds of in-process CLI runs change process-wide state (logging handlers, the working
# directory) that other modules' tests then meet; in the full suite this module therefore runs in a
# pytest process of its own (test_odd_inputs_isolated.py), which sets this variable.
pytestmark = pytest.mark.skipif(
    os.environ.get("AMPLITUDE_DSR_ODD_INPUTS") != "1", reason="runs in its own process: test_odd_inputs_isolated.py"
)
