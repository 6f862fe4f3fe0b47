"""The embedded worker's loop: what ``amplitude-dsr worker`` does each tick (the stall watch,
the watch over other executors, retention), in a thread of the service.

The workflows themselves run in DBOS's threads once the runtime is opened as an executor; this
thread only runs the periodic checks beside them. The checks are built by the caller (the CLI),
so this module knows nothing of which they are.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from amplitude_dsr.dsr.periodic import PeriodicCheck

TICK = 0.5  # seconds between ticks, as in `amplitude-dsr worker`


class EmbeddedWorker:
    """Ticks ``checks`` every :data:`TICK` seconds until stopped (each check decides whether it
    is due, and swallows its own failures: ``dsr/periodic.py``)."""

    def __init__(self, checks: Sequence[PeriodicCheck], tick: float = TICK) -> None:
        self.checks = list(checks)
        self.tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            for check in self.checks:
                check.tick()
