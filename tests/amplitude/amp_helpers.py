"""Helpers shared by the Amplitude client tests (a unique module name: no package here)."""

from __future__ import annotations

EMULATOR_RATE_SCALE = 3600.0  # the user pool becomes 360 per second: tests never wait long


class FakeClock:
    """Epoch seconds that only move when someone sleeps."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
