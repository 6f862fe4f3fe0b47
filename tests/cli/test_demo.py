"""The README's main job: `amplitude-dsr demo` runs both requests to their final state, its DSAR
export is downloaded every time (not just printed as a success), and it never deletes a
directory it did not create."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

DEMO = [sys.executable, "-m", "amplitude_dsr.cli", "demo"]


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=300, check=False)


def test_demo_runs_access_and_deletion_end_to_end_and_again(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    for _ in range(3):  # the same --dir again: the demo's own directory is emptied and reused
        proc = run_demo("--json", "--dir", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        doc: dict[str, Any] = json.loads(proc.stdout)
        statuses = {r["kind"]: r["status"] for r in doc["requests"]}
        assert statuses == {"access": "completed", "deletion": "verified"}
        assert doc["dsar_exports"] == ["done"]  # downloaded and merged, not a fallback
        assert doc["emulator_calls"] > 0
        access = next(r for r in doc["requests"] if r["kind"] == "access")
        deletion = next(r for r in doc["requests"] if r["kind"] == "deletion")
        export = json.loads((Path(access["out_dir"]) / "export.json").read_text())
        assert "dsar" in json.dumps(export)
        assert (Path(access["out_dir"]) / "report.html").is_file()
        assert json.loads((Path(deletion["out_dir"]) / "certificate.json").read_text())["schema_version"] == 2
        assert len(list((out / "reports").iterdir())) == 1  # the earlier run's report is gone


def test_demo_refuses_a_directory_it_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    proc = run_demo("--dir", str(mine))
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error:") and "not created by the demo" in line
    assert (mine / "thesis.tex").read_text() == "years of work"
    as_json = run_demo("--dir", str(mine), "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["error"]["type"] == "usage_error"
