"""Runs ``test_odd_inputs.py`` (thousands of odd CLI inputs, in-process) in a pytest process of its
own: its in-process CLI runs leave process-wide state (logging handlers, the working directory)
that the rest of the suite must not inherit. It fails when any odd input fails there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_odd_inputs_in_their_own_process(tmp_path: Path) -> None:
    env = {**os.environ, "AMPLITUDE_DSR_ODD_INPUTS": "1", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "test_odd_inputs.py")],
        cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " skipped" not in proc.stdout.splitlines()[-1]
