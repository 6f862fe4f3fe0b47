"""An audit entry is written exactly once even when the process dies between the entry's commit
and its step's checkpoint: both commit in one transaction (a DBOS datasource transaction), so the
recovered workflow finds the checkpoint instead of appending the entry again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .proc import cli_env

ROOT = Path(__file__).resolve().parents[2]


def run(mode: str, db_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.audit_crash_proc", db_url, str(data_dir), mode],
        cwd=ROOT, env=cli_env({}), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_crash_after_an_audit_entry_commits_does_not_duplicate_it(db_url: str, tmp_path: Path) -> None:
    crashed = run("crash", db_url, tmp_path / "data")
    assert crashed.returncode == 9, crashed.stderr[-2000:]  # died at the first audit checkpoint
    recovered = run("recover", db_url, tmp_path / "data")
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert json.loads(recovered.stdout.strip().splitlines()[-1]) == ["first", "second"]
