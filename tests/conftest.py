"""Suite-wide hooks.

The test process ends without joining leftover DBOS workflow threads. ``DBOS.sleep`` is a plain
``time.sleep``: a deletion workflow that a test left in its tracking sleep (an hour between polls
by default) would otherwise keep the finished pytest process alive at interpreter exit
(``concurrent.futures`` joins every executor thread), which is how a green run once overran CI's
time limit. The console script exits the same way (:func:`amplitude_dsr.cli.main.run`); its
progress is checkpointed, so nothing is lost. The summary is already printed when this runs.
"""

from __future__ import annotations

import os
import sys

import pytest

_exit_status = 0


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # an xdist worker reports through its controller; let it end normally
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
