"""``amplitude-dsr test-connection``: one cheap call per capability, region hints on 401."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amplitude_dsr.cli.connection import DUMMY_USER_PREFIX
from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import Invoke, api_calls, assert_clean, env_for


def _project(emulator: EmulatorServer, name: str) -> dict[str, Any]:
    return next(p for p in emulator.admin.state()["projects"] if p["name"] == name)


def _org_env(emulator: EmulatorServer) -> dict[str, str]:
    org = emulator.admin.state()["org"]
    return {"AMPLITUDE_ORG_API_KEY": org["api_key"], "AMPLITUDE_ORG_SECRET_KEY": org["secret_key"]}


def test_every_capability_ok_with_project_and_org_keys(emulator: EmulatorServer, db_url: str, invoke: Invoke) -> None:
    result = invoke(["test-connection", "--json"], env_for(emulator, db_url, **_org_env(emulator)))
    assert_clean(result)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    [web] = doc["projects"]
    assert (web["name"], web["region"], web["access"]["ok"], web["deletion"]["ok"]) == ("default", "us", True, True)
    assert doc["org"]["dsar"]["ok"] is True
    # Exactly the documented cheap calls (docs/amplitude.md#test-connection-calls), each once.
    [search] = api_calls(emulator, "/api/2/usersearch")
    assert search["query"]["user"].startswith(DUMMY_USER_PREFIX) and search["status"] == 200
    [listing] = api_calls(emulator, "/api/2/deletions/users")
    assert listing["query"]["start_day"] == listing["query"]["end_day"]
    dsar = [c for c in emulator.admin.request_log() if "/dsar/requests/" in c["path"]]
    assert [c["status"] for c in dsar] == [404]  # unknown dummy request: the org key works
    assert len(emulator.admin.request_log()) == 3


def test_text_table_lists_every_configured_project(
    emulator: EmulatorServer, db_url: str, tmp_path: Path, invoke: Invoke
) -> None:
    state = emulator.admin.state()
    lines = [f'database_url = "{db_url}"', "rate_scale = 1000.0"]
    for name in ("web", "eu-app"):
        p = _project(emulator, name)
        lines += ["[[projects]]", f'name = "{name}"', f'api_key = "{p["api_key"]}"']
        lines += [f'secret_key = "{p["secret_key"]}"', f'region = "{p["region"]}"', f'base_url = "{p["base_url"]}"']
    org = state["org"]
    lines += [
        "[org]",
        f'api_key = "{org["api_key"]}"',
        f'secret_key = "{org["secret_key"]}"',
        f'base_url = "{org["us_base_url"]}"',
    ]
    config = tmp_path / "amplitude-dsr.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke(["--config", str(config), "test-connection"])
    assert_clean(result)
    assert result.exit_code == 0, result.output
    table = result.stdout
    for header in ("project", "region", "access", "deletion", "DSAR"):
        assert header in table
    assert "web" in table and "eu-app" in table and "(org keys)" in table
    assert "FAILED" not in table
    assert org["secret_key"] not in result.output


def test_wrong_secret_fails_with_exit_1(emulator: EmulatorServer, db_url: str, invoke: Invoke) -> None:
    env = env_for(emulator, db_url, AMPLITUDE_SECRET_KEY="not-the-secret")
    result = invoke(["test-connection", "--json"], env)
    assert_clean(result)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    project = doc["projects"][0]
    assert project["access"]["ok"] is False and project["deletion"]["ok"] is False
    assert "401" in project["access"]["detail"]
    assert result.stderr.strip().splitlines() == ["error: credentials not working: default"]
    assert "not-the-secret" not in result.output
    assert {c["status"] for c in emulator.admin.request_log()} == {401}


def test_eu_keys_configured_as_us_get_a_region_hint(emulator: EmulatorServer, db_url: str, invoke: Invoke) -> None:
    eu = _project(emulator, "eu-app")
    us_host = _project(emulator, "web")["base_url"]
    env = env_for(emulator, db_url, project="eu-app", AMPLITUDE_BASE_URL=us_host, AMPLITUDE_REGION="us")
    result = invoke(["test-connection"], env)
    assert_clean(result)
    assert result.exit_code == 1
    assert "FAILED" in result.stdout
    assert "configured region: us" in result.stdout and "AMPLITUDE_REGION=eu" in result.stdout
    assert eu["secret_key"] not in result.output
    assert {c["region"] for c in emulator.admin.request_log()} == {"us"}


def test_bad_org_key_fails_even_when_projects_work(emulator: EmulatorServer, db_url: str, invoke: Invoke) -> None:
    env = env_for(emulator, db_url, **_org_env(emulator))
    env["AMPLITUDE_ORG_SECRET_KEY"] = "wrong"
    result = invoke(["test-connection", "--json"], env)
    assert_clean(result)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["projects"][0]["access"]["ok"] is True
    assert doc["org"]["dsar"]["ok"] is False and "configured region: us" in doc["org"]["dsar"]["detail"]
    assert "org (DSAR)" in result.stderr


def test_nothing_configured_is_a_usage_error(db_url: str, invoke: Invoke) -> None:
    result = invoke(["test-connection"], {"AMPLITUDE_DSR_DATABASE_URL": db_url})
    assert_clean(result)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: nothing configured")
    assert len(result.stderr.strip().splitlines()) == 1
