"""Helpers for e2e tests that run ``amplitude-dsr`` as real processes (worker, delete, status)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLI = [str(Path(sys.executable).parent / "amplitude-dsr")]


def cli_env(env: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AMPLITUDE_", "DBOS"))}
    return {**keep, **env}


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to completion."""
    return subprocess.run(
        [*CLI, *args], env=cli_env(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_worker(env: dict[str, str], cwd: Path, *extra: str) -> subprocess.Popen[str]:
    """``amplitude-dsr worker`` in the background."""
    return subprocess.Popen(
        [*CLI, "worker", *extra], env=cli_env(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def status(request_id: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = run(["status", request_id, "--json"], env, cwd)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def eventually(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Poll ``check`` until truthy (a liveness guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")
