"""The embedded worker's loop: what ``amplitude-dsr worker`` does each tick (the stall watch,
the watch over other executors, retention), in a thread of the service.

The workflows themselves run in DBOS's threads once the runtime is opened as an executor; this
thread only runs the periodic checks beside them. The checks are built by the caller (the CLI),
so this module knows nothing of which they are. ``should_stop`` lets the caller end the loop from
outside (the executor must stop: another process took its lock); ``on_stop`` then runs once, so
the caller can stop the server too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from amplitude_dsr.dsr.periodic import PeriodicCheck

TICK = 0.5  # seconds between ticks, as in `amplitude-dsr worker`


def _never() -> bool:
    return False


def _nothing() -> None:
    return None


class EmbeddedWorker:
    """Ticks ``checks`` every :data:`TICK` seconds until stopped (each check decides whether it
    is due, and swallows its own failures: ``dsr/periodic.py``), or until ``should_stop()``."""

    def __init__(
        self,
        checks: Sequence[PeriodicCheck],
        tick: float = TICK,
        *,
        should_stop: Callable[[], bool] = _never,
        on_stop: Callable[[], None] = _nothing,
    ) -> None:
        self.checks = list(checks)
        self.tick = tick
        self.should_stop = should_stop
        self.on_stop = on_stop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            if self.should_stop():
                self.on_stop()
                return
            for check in self.checks:
                check.tick()
