"""Rate-limit pools measured on real (monotonic) time, scaled by ``rate_scale``.

Every documented pool (docs/amplitude.md#rate-limits) is a sliding window whose length is
divided by ``rate_scale`` (the count stays as documented), plus concurrency caps counted with
in-flight requests. An *external load* spends part of a pool as a steady outside consumer would.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowSpec:
    """``capacity`` cost units per ``window`` seconds (before scaling)."""

    capacity: int
    window: float
    message: str


@dataclass(frozen=True)
class CapSpec:
    """At most ``capacity`` units in flight at once."""

    capacity: int
    message: str


# docs/amplitude.md#rate-limits: user search + user activity: 360 queries per hour per project.
# docs/amplitude.md#rate-limits: cost-based endpoints (events/list costs 1): 108,000 cost per hour.
# docs/amplitude.md#deletion-limits: deletions endpoint: 1 request per second per project.
# docs/amplitude.md#dsar-limits-and-sla: DSAR: 14,400 cost per hour per org (POST 8, GET 1).
WINDOWS: dict[str, WindowSpec] = {
    "usersearch": WindowSpec(360, 3600.0, "usersearch/useractivity: 360 queries per hour"),
    "cost": WindowSpec(108_000, 3600.0, "cost: 108000 cost per hour"),
    "deletions": WindowSpec(1, 1.0, "deletions: 1 request per second"),
    "dsar": WindowSpec(14_400, 3600.0, "dsar: 14400 cost per hour"),
}
# docs/amplitude.md#rate-limits: 5 concurrent requests across all REST endpoints; 10 concurrent user
# search/activity; 1,000 concurrent cost; 8 deletion requests in flight per project.
CAPS: dict[str, CapSpec] = {
    "rest": CapSpec(5, "rest: 5 concurrent requests"),
    "usersearch": CapSpec(10, "usersearch/useractivity: 10 concurrent requests"),
    "cost": CapSpec(1000, "cost: 1000 concurrent cost"),
    "deletions": CapSpec(8, "deletions: 8 requests in flight"),
}
DISCRETE_EXTERNAL_BELOW = 10  # pools of fewer requests per window see whole outside requests
POOL_ALIASES = {"useractivity": "usersearch", "dashboard": "usersearch", "events": "cost"}


@dataclass
class Ticket:
    """Concurrency held by one admitted request; release it when the response is done."""

    limits: Limits
    held: list[tuple[str, str, int]]

    def release(self) -> None:
        """Give back the concurrency slots (idempotent)."""
        self.limits.release(self.held)
        self.held = []


class RateLimited(Exception):
    """A request was refused; ``message`` names the limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Limits:
    """Sliding windows and concurrency counters, keyed by (pool, scope)."""

    def __init__(self, rate_scale: float = 1.0, now: Callable[[], float] = time.monotonic) -> None:
        self.rate_scale = float(rate_scale)
        self.enforce = True
        self._now = now
        self._lock = threading.Lock()
        self._spent: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._inflight: dict[tuple[str, str], int] = {}
        self._external: dict[tuple[str, str | None], tuple[float, float]] = {}

    def window_seconds(self, pool: str) -> float:
        """The scaled window length of a pool."""
        return WINDOWS[pool].window / self.rate_scale

    def set_external(self, pool: str, scope: str | None, fraction: float) -> None:
        """An outside consumer spends ``fraction`` of the pool's rate (0 stops it)."""
        pool = POOL_ALIASES.get(pool, pool)
        if pool not in WINDOWS:
            raise KeyError(pool)
        with self._lock:
            if fraction <= 0:
                self._external.pop((pool, scope), None)
            else:
                self._external[(pool, scope)] = (min(fraction, 1.0), self._now())

    def reset(self) -> None:
        """Forget all spending and external load (in-flight counts are kept)."""
        with self._lock:
            self._spent.clear()
            self._external.clear()

    def admit(self, pool: str | None, scope: str, cost: int, caps: list[tuple[str, int]]) -> Ticket:
        """Admit one request or raise ``RateLimited``; the ticket holds concurrency."""
        with self._lock:
            now = self._now()
            if self.enforce:
                for cap, amount in caps:
                    if self._inflight.get((cap, scope), 0) + amount > CAPS[cap].capacity:
                        raise RateLimited(CAPS[cap].message)
                if pool is not None and self._used(pool, scope, now) + cost > WINDOWS[pool].capacity:
                    raise RateLimited(WINDOWS[pool].message)
            if pool is not None:
                self._spent.setdefault((pool, scope), deque()).append((now, cost))
            held = [(cap, scope, amount) for cap, amount in caps]
            for cap, _, amount in held:
                self._inflight[(cap, scope)] = self._inflight.get((cap, scope), 0) + amount
            return Ticket(self, held)

    def release(self, held: list[tuple[str, str, int]]) -> None:
        """Return concurrency units."""
        with self._lock:
            for cap, scope, amount in held:
                self._inflight[(cap, scope)] = max(0, self._inflight.get((cap, scope), 0) - amount)

    def inflight(self, cap: str, scope: str) -> int:
        """Units currently held for a concurrency cap."""
        with self._lock:
            return self._inflight.get((cap, scope), 0)

    def _used(self, pool: str, scope: str, now: float) -> float:
        window = WINDOWS[pool].window / self.rate_scale
        spent = self._spent.setdefault((pool, scope), deque())
        while spent and spent[0][0] <= now - window:
            spent.popleft()
        used: float = sum(cost for _, cost in spent)
        for key in ((pool, scope), (pool, None)):
            if key in self._external:
                fraction, since = self._external[key]
                used += external_in_window(fraction, WINDOWS[pool].capacity, window, since, now)
        return used


def external_in_window(fraction: float, capacity: int, window: float, since: float, now: float) -> float:
    """What a steady outside consumer (running as if forever) spent in the window ending at
    ``now``. In a pool with a large count that is ``fraction x capacity`` in any window. In a pool
    of a few requests per window (deletions: 1 per second) the consumer sends whole requests,
    one every ``window / (fraction x capacity)`` seconds from ``since``, so another caller gets
    through only in the gaps between them, as with Amplitude."""
    if fraction <= 0 or capacity <= 0:
        return 0.0
    if capacity > DISCRETE_EXTERNAL_BELOW or fraction >= 1.0:
        return fraction * capacity
    period = window / (fraction * capacity)
    return float(math.floor((now - since) / period) - math.floor((now - window - since) / period))
