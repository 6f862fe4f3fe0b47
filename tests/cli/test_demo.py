"""The README's main job: `amplitude-dsr demo` runs both requests to their final state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_runs_access_and_deletion_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "amplitude_dsr.cli", "demo", "--json", "--dir", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    statuses = {r["kind"]: r["status"] for r in doc["requests"]}
    assert statuses == {"access": "completed", "deletion": "verified"}
    assert doc["emulator_calls"] > 0
    access = next(r for r in doc["requests"] if r["kind"] == "access")
    deletion = next(r for r in doc["requests"] if r["kind"] == "deletion")
    assert (Path(access["out_dir"]) / "report.html").is_file()
    assert json.loads((Path(deletion["out_dir"]) / "certificate.json").read_text())["schema_version"] == 2
