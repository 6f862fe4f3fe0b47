"""The emulated clock: real elapsed time times a speed factor, plus explicit advances.

``now = start + real_elapsed * speed + advanced``. Changing the speed re-bases the clock so
that "now" never jumps. Rate limits do *not* use this clock; they use real (monotonic) time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta


def default_start() -> datetime:
    """The current UTC time, truncated to the second (the default emulated start)."""
    return datetime.now(UTC).replace(microsecond=0)


class Clock:
    """A thread-safe emulated clock."""

    def __init__(
        self,
        start: datetime | None = None,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        start = start or default_start()
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self.start = start
        self._base = start
        self._base_real = monotonic()
        self._speed = float(speed)

    @property
    def speed(self) -> float:
        """Emulated seconds per real second."""
        return self._speed

    def now(self) -> datetime:
        """The emulated current time (timezone-aware, UTC)."""
        with self._lock:
            elapsed = (self._monotonic() - self._base_real) * self._speed
            return self._base + timedelta(seconds=elapsed)

    def today(self) -> date:
        """The emulated current UTC date."""
        return self.now().date()

    def advance(self, seconds: float) -> datetime:
        """Jump the emulated clock forward (never backward) and return the new now."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._base += timedelta(seconds=seconds)
        return self.now()

    def set_speed(self, speed: float) -> datetime:
        """Change the speed factor without moving now."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            real = self._monotonic()
            self._base += timedelta(seconds=(real - self._base_real) * self._speed)
            self._base_real = real
            self._speed = float(speed)
        return self.now()
