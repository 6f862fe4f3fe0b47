"""CLI fixtures: the end-to-end fixtures (private emulator and database per test) plus a
``CliRunner`` helper that runs ``amplitude-dsr`` in-process with a clean environment."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from amplitude_dsr.cli.main import app
from tests.e2e.conftest import RATE_SCALE, api_calls, catalog, db_url, emulator, env_for

__all__ = ["RATE_SCALE", "api_calls", "catalog", "db_url", "emulator", "env_for"]

# Every variable of the contract (docs/architecture.md#contracts): unset unless a test sets it, so the developer's own
# environment never leaks into a test.
CONTRACT_ENV = (
    "AMPLITUDE_API_KEY", "AMPLITUDE_SECRET_KEY", "AMPLITUDE_ORG_API_KEY", "AMPLITUDE_ORG_SECRET_KEY",
    "AMPLITUDE_REGION", "AMPLITUDE_BASE_URL", "AMPLITUDE_DSR_DATABASE_URL", "AMPLITUDE_DSR_POLL_INTERVAL",
    "AMPLITUDE_DSR_BUDGET_FRACTION", "AMPLITUDE_DSR_RATE_SCALE", "AMPLITUDE_DSR_REQUESTER",
    "AMPLITUDE_DSR_MAX_LINGER", "AMPLITUDE_DSR_CONFIG", "AMPLITUDE_DSR_DATA_KEY",
)  # fmt: skip

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A home and XDG data directory of the test's own (also for subprocesses): no test reads
    or writes the developer's ``~/.local/share/amplitude-dsr``."""
    homes = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg-data")}
    for name, value in homes.items():
        monkeypatch.setenv(name, value)
    return homes


@pytest.fixture
def invoke(tmp_path: Path, private_home: dict[str, str]) -> Invoke:
    """Run the CLI with ``args`` and exactly the contract variables in ``env`` (others unset),
    from ``tmp_path`` as working directory, with the test's own home."""

    def run(args: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> Result:
        full: dict[str, str | None] = dict.fromkeys(CONTRACT_ENV)
        full.update(private_home)
        full.update(env or {})
        cwd = Path.cwd()
        loggers = [logging.getLogger(), logging.getLogger("dbos")]
        handlers = [list(lg.handlers) for lg in loggers]
        os.chdir(tmp_path)
        try:
            return CliRunner().invoke(app, args, env=full, **kwargs)
        finally:
            os.chdir(cwd)
            # DBOS (and logging.basicConfig) attach handlers to the runner's captured stderr,
            # which is closed after the run: drop them so the next run starts clean.
            for lg, before in zip(loggers, handlers, strict=True):
                for handler in [h for h in lg.handlers if h not in before]:
                    lg.removeHandler(handler)

    return run


def assert_clean(result: Result) -> None:
    """No traceback anywhere, and no exception other than the exit."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
