"""A partial answer is said as such, end to end through the CLI: a heavy user without org keys
(recent events only) and refused organisation keys (no DSAR export) both complete with exit 3,
the reasons on the console and in ``--json``; a complete answer exits 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amplitude_dsr.emulator.server import EmulatorServer

from .conftest import api_calls, env_for
from .test_access_cli import invoke


def test_a_heavy_user_without_org_keys_is_a_partial_answer_with_exit_3(
    emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    heavy = emulator.admin.catalog()["web"]["heavy"]
    result = invoke(
        ["access", "--user-id", "heavy@example.com", "--out", str(tmp_path), "--json"], env_for(emulator, db_url)
    )
    assert result.exit_code == 3, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["status"] == "completed" and doc["complete"] is False
    assert any("--full-history" in r for r in doc["partial_reasons"])
    assert len(api_calls(emulator, "/useractivity")) >= 1
    export = json.loads((Path(doc["out_dir"]) / "export.json").read_text())
    assert export["completeness"]["status"] == "partial"
    assert export["subjects"][0]["amplitude_id"] == heavy["amplitude_id"]


def test_refused_org_keys_give_the_project_key_data_as_a_partial_answer(
    emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    org = emulator.admin.state()["org"]
    env = env_for(emulator, db_url, AMPLITUDE_ORG_API_KEY=org["api_key"], AMPLITUDE_ORG_SECRET_KEY="mistyped")
    result = invoke(["access", "--user-id", "alice@example.com", "--out", str(tmp_path)], env)
    assert result.exit_code == 3, result.output
    assert "partial" in result.output.lower() and "organisation keys" in result.output
    refused = [e for e in api_calls(emulator, "/dsar/requests", "POST") if e["status"] == 401]
    assert len(refused) == 1  # asked once; a refused key is not retried


def test_a_complete_answer_exits_0(emulator: EmulatorServer, db_url: str, tmp_path: Path) -> None:
    result = invoke(
        ["access", "--user-id", "alice@example.com", "--out", str(tmp_path), "--json"], env_for(emulator, db_url)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["complete"] is True
