"""What the console says about requests: ``status`` shows full request IDs and a readable detail
view without identifiers, names the database; ``access`` reports a partial answer (exit 3);
``--json`` errors print one JSON error document on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from amplitude_dsr.dsr import access as access_workflow_module
from amplitude_dsr.dsr.completeness import Completeness
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store.db import make_engine, redacted_url

from .conftest import Invoke, assert_clean, env_for

REASONS = ["the DSAR export of project web could not be downloaded", "project eu-app was paused"]


def mark_partial_on_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the access workflow judge every answer partial (with :data:`REASONS`), the way it does
    when a DSAR download failed or a project was paused: the recorded result carries them."""
    partial = Completeness(complete=False, reasons=REASONS)
    monkeypatch.setattr(access_workflow_module, "assess", lambda _result: partial)


def test_access_reports_a_partial_answer_with_exit_3(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_for(emulator, db_url)
    assert invoke(["status"], env).exit_code == 0  # creates the tables
    mark_partial_on_completion(monkeypatch)
    user = catalog["web"]["ordinary"][7]["user_id"]
    result = invoke(["access", "--user-id", user], env)
    assert_clean(result)
    assert result.exit_code == 3, result.output
    assert "PARTIAL" in result.stdout and all(r in result.stdout for r in REASONS)
    assert "ran here (no worker was running" in result.stdout  # it said it was its own executor
    assert "partial" in result.stderr and user not in result.output
    doc = json.loads(invoke(["access", "--user-id", user, "--json"], env).stdout)
    assert doc["status"] == "completed" and doc["complete"] is False and doc["partial_reasons"] == REASONS


def test_complete_answer_says_so_in_json(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, invoke: Invoke
) -> None:
    user = catalog["web"]["ordinary"][8]["user_id"]
    result = invoke(["access", "--user-id", user, "--json"], env_for(emulator, db_url))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["complete"] is True and doc["partial_reasons"] == []


def test_status_shows_full_ids_and_a_readable_detail(
    emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, invoke: Invoke
) -> None:
    env = env_for(emulator, db_url)
    user = catalog["web"]["ordinary"][9]["user_id"]
    ids = [json.loads(invoke(["delete", "--user-id", user, "--json"], env).stdout)["request_id"]]
    ids.append(json.loads(invoke(["access", "--user-id", user, "--json"], env).stdout)["request_id"])
    table = invoke(["status"], {**env, "COLUMNS": "80"})
    assert_clean(table)
    for rid in ids:
        assert rid in table.stdout  # never cut to dsr_2026120116…
    assert "…" not in table.stdout
    assert "database: " in table.stdout

    detail = invoke(["status", ids[1]], {**env, "COLUMNS": "80"})
    assert_clean(detail)
    text = detail.stdout
    for label in ("kind", "state", "regulation", "created", "due", "subject", "output", "file"):
        assert f"  {label} " in text, text
    assert "access" in text and "completed" in text and "user_id" in text
    assert user not in text
    deletion = invoke(["status", ids[0]], env).stdout
    assert "deletion" in deletion and "received" in deletion and "left)" in deletion and user not in deletion


def test_status_names_the_database_and_hides_a_password(invoke: Invoke, tmp_path: Path) -> None:
    db = tmp_path / "named.sqlite"
    result = invoke(["status", "--json"], {"AMPLITUDE_DSR_DATABASE_URL": f"sqlite:///{db}"})
    assert json.loads(result.stdout) == {"requests": [], "credentials_paused": [], "database": f"sqlite:///{db}"}
    text = invoke(["status"], {"AMPLITUDE_DSR_DATABASE_URL": f"sqlite:///{db}"}).stdout
    assert f"no requests yet in sqlite:///{db}" in text
    assert redacted_url("postgresql://dsr:hunter2@db.example:5432/dsr") == "postgresql://dsr:***@db.example:5432/dsr"


@pytest.mark.parametrize(
    ("args", "env", "code", "kind", "message"),
    [
        (["access", "--email", "nope", "--json"], {}, 2, "usage_error", "malformed email address"),
        (["status", "dsr_nope", "--json"], {}, 1, "request_not_found", "no request"),
        (["cancel", "dsr_nope", "--json"], {}, 1, "request_not_found", "no request"),
        (["test-connection", "--json"], {}, 2, "config_error", "nothing configured"),
        (["status", "--json"], {"AMPLITUDE_DSR_POLL_INTERVAL": "soon"}, 2, "config_error", "POLL_INTERVAL"),
    ],
)
def test_json_errors_print_one_error_document(
    args: list[str], env: dict[str, str], code: int, kind: str, message: str, invoke: Invoke, tmp_path: Path
) -> None:
    base = {"AMPLITUDE_DSR_DATABASE_URL": f"sqlite:///{tmp_path / 'd' / 'dsr.sqlite'}"}
    if args[0] == "access":
        base |= {"AMPLITUDE_API_KEY": "k" * 32, "AMPLITUDE_SECRET_KEY": "s" * 32}
    result = invoke(args, base | env)
    assert_clean(result)
    assert result.exit_code == code, result.output
    doc = json.loads(result.stdout)
    assert doc["error"]["code"] == code and doc["error"]["type"] == kind and message in doc["error"]["message"]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and message in line


def test_status_never_touches_the_real_home(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(["status", "--json"])
    expected = tmp_path / "xdg-data" / "amplitude-dsr" / "dsr.sqlite"
    assert json.loads(result.stdout)["database"] == f"sqlite:///{expected}"
    assert expected.is_file() and oct(expected.stat().st_mode & 0o777) == "0o600"
    assert oct(expected.parent.stat().st_mode & 0o777) == "0o700"
    engine = make_engine(f"sqlite:///{expected}")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM dsr_requests")).scalar() == 0
    finally:
        engine.dispose()
