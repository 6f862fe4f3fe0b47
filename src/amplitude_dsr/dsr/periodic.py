"""Checks a worker's main loop runs every few seconds (the stall watch, the watch over other
workers, the retention round): one place for "is it due" and for a check the database refuses."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod

log = logging.getLogger(__name__)


class PeriodicCheck(ABC):
    """Call :meth:`tick` from a loop: :meth:`check` runs once ``interval`` seconds have passed
    (the first time after ``first`` seconds, default ``interval``). A check that raises (the
    database is away) is logged at debug level, without its message; the next interval tries
    again."""

    name = "periodic check"

    def __init__(self, interval: float, first: float | None = None) -> None:
        self.interval = interval
        self._next = time.monotonic() + (interval if first is None else first)

    def tick(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.interval
        try:
            self.check()
        except Exception as exc:
            log.debug("%s failed: %s", self.name, type(exc).__name__)

    @abstractmethod
    def check(self) -> object:
        """One round of the check."""
