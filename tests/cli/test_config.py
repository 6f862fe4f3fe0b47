"""Configuration through the real command: AMPLITUDE_BASE_URL shapes only the environment's
project (a TOML project keeps its own ``base_url``, as the emulator's request log shows), unknown
TOML keys are refused by name, regions and regulations in any case, and every config error names
the variable or key (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import Invoke, assert_clean, env_for


def _toml(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _project_lines(emulator: EmulatorServer, name: str, *, region: str | None = None) -> list[str]:
    p = next(p for p in emulator.admin.state()["projects"] if p["name"] == name)
    return [
        "[[projects]]", f'name = "{name}"', f'api_key = "{p["api_key"]}"', f'secret_key = "{p["secret_key"]}"',
        f'region = "{region or p["region"]}"', f'base_url = "{p["base_url"]}"',
    ]  # fmt: skip


def test_base_url_variable_leaves_a_toml_project_on_its_own_host(
    emulator: EmulatorServer, db_url: str, tmp_path: Path, invoke: Invoke
) -> None:
    config = _toml(tmp_path / "c.toml", *_project_lines(emulator, "eu-app", region="EU"))
    env = env_for(emulator, db_url)  # the web project from the environment, AMPLITUDE_BASE_URL = US host
    result = invoke(["--config", str(config), "test-connection", "--json"], env)
    assert_clean(result)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {p["name"]: p["region"] for p in doc["projects"]} == {"default": "us", "eu-app": "eu"}
    assert all(p["access"]["ok"] for p in doc["projects"])
    searches = [e for e in emulator.admin.request_log() if e["path"].endswith("/usersearch")]
    assert sorted(e["region"] for e in searches) == ["eu", "us"]  # the EU project went to the EU host


@pytest.mark.parametrize(
    ("lines", "env", "message"),
    [
        (['regoin = "eu"'], {}, "unknown key regoin"),
        (["[[projects]]", 'name = "x"', 'api_key = "k"', 'secret_key = "s"', 'regoin = "eu"'], {},
         "unknown key projects[0].regoin"),
        (["[org]", 'api_key = "k"', 'secret_key = "s"', 'host = "x"'], {}, "unknown key org.host"),
        (["[[projects]]", 'name = "x"', 'api_key = "k"', 'secret_key = "s"', 'region = "mars"'], {},
         "projects[0].region: must be us or eu"),
        (["poll_interval = -1"], {}, "poll_interval: "),
        ([], {"AMPLITUDE_REGION": "mars"}, "AMPLITUDE_REGION: must be us or eu"),
        ([], {"AMPLITUDE_DSR_BUDGET_FRACTION": "lots"}, "AMPLITUDE_DSR_BUDGET_FRACTION: "),
        ([], {"AMPLITUDE_API_KEY": "k"}, "AMPLITUDE_SECRET_KEY"),
        ([], {"AMPLITUDE_DSR_DATA_KEY": "hunter2-not-a-key"}, "AMPLITUDE_DSR_DATA_KEY: key 1 is not a Fernet key"),
        ([], {"AMPLITUDE_DSR_DATA_KEY": "6tds_erggcjaGWqNLqq3RiIQVXSLiAbD-zLuWe_Y5HI=,hunter2"},
         "AMPLITUDE_DSR_DATA_KEY: key 2 is not a Fernet key"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key_or_variable(
    lines: list[str], env: dict[str, str], message: str, tmp_path: Path, invoke: Invoke
) -> None:
    config = _toml(tmp_path / "bad.toml", *lines)
    result = invoke(["--config", str(config), "status"], env)
    assert_clean(result)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and message in line, line
    assert "hunter2" not in result.output  # a secret value is never echoed
    assert not (tmp_path / "xdg-data").exists()  # nothing was written


def test_region_and_regulation_in_any_case(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, invoke: Invoke
) -> None:
    env = env_for(emulator, db_url, AMPLITUDE_REGION="US")
    user = catalog["web"]["ordinary"][10]["user_id"]
    result = invoke(["access", "--user-id", user, "--regulation", "CCPA", "--json"], env)
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["regulation"] == "ccpa"
