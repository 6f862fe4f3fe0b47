"""DBOS logs an error with a traceback for every workflow thread that ends by exception. Threads
that end because the process shut down, or because their workflow was cancelled on purpose, are
not failures: that line is dropped. Every other error line is kept."""

from __future__ import annotations

import logging
import sys

import pytest
from dbos._error import DBOSAwaitedWorkflowCancelledError

from amplitude_dsr.dsr.runtime import _SHUTDOWN_NOISE
from amplitude_dsr.errors import ShuttingDown


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        "dbos", logging.ERROR, __file__, 1, "Exception encountered in background workflow:", (), info
    )


@pytest.mark.parametrize(
    "exc",
    [ShuttingDown("stopping"), DBOSAwaitedWorkflowCancelledError("wf-1"), RuntimeError("No DBOS was created yet")],
)
def test_an_ended_or_cancelled_workflow_thread_is_not_logged_as_an_error(exc: BaseException) -> None:
    assert _SHUTDOWN_NOISE.filter(_record(exc)) is False


@pytest.mark.parametrize("exc", [ValueError("a real bug"), RuntimeError("database is locked")])
def test_every_other_error_is_kept(exc: BaseException) -> None:
    assert _SHUTDOWN_NOISE.filter(_record(exc)) is True
