"""The concurrency slots one process keeps between its calls, so most calls touch no shared row.

The budget (:mod:`~amplitude_dsr.amplitude.budget`) keeps every process within Amplitude's limits
through two shared tables; a call that went to them for its concurrency slots paid two
transactions (claim with the tokens, then free). A slot row is now claimed under the process's
holder ID, not the call's. When a call ends its slot stays claimed for
:attr:`LocalLease.keep_slots` seconds and the next call of the same process takes it without a
transaction. A slot goes back to the table when it stood idle that long (:meth:`LocalLease.idle`,
run by the budget's sweeper) or when the process has held it for :attr:`LocalLease.max_hold`
seconds in a row (so other processes, which can only poll the table, get their turn). A process
that dies leaves its rows to expire after the budget's ``lease_seconds``, as before; ``max_hold``
stays at most a quarter of that.

Rate tokens are not kept: each call still takes its tokens in the shared bucket (one
transaction), so a 429 met by any process stops every other one at its next call. (Taking a few
calls' tokens ahead was measured too: it saved little and doubled the 429s met while an external
consumer shared the pool, bench section 1.)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from itertools import count


@dataclass
class HeldSlot:
    """A slot row this process has claimed: its ``pool`` and number, when the claim started,
    and ``generation``, which tells a claim from a later claim of the same row (a call that
    outlived the row's lease must not free the row another call claimed since)."""

    pool: str
    slot: int
    claimed_at: float
    generation: int
    freed_at: float = 0.0


Kept = list[tuple[str, HeldSlot]]  # (scope, slot): rows to free in the shared table


class LocalLease:
    """Idle claimed slots of one process, per pool and scope. With ``keep_slots`` 0 it keeps
    nothing: every call claims and frees in the table."""

    def __init__(self, *, keep_slots: float, max_hold: float) -> None:
        self.keep_slots = keep_slots
        self.max_hold = max_hold
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[HeldSlot]] = {}
        self._owner: dict[tuple[str, str, int], int] = {}  # (pool, scope, slot) -> generation
        self._generations = count(1)

    @property
    def active(self) -> bool:
        """Whether anything is ever kept (a sweeper is needed)."""
        return self.keep_slots > 0

    # --- slots ---------------------------------------------------------------------------

    def claimed(self, pool: str, scope: str, slot: int, now: float) -> HeldSlot:
        """Record a row just claimed in the table for this process."""
        held = HeldSlot(pool, slot, now, next(self._generations))
        with self._lock:
            self._owner[(pool, scope, slot)] = held.generation
        return held

    def take_slots(self, pools: tuple[str, ...], scope: str, now: float) -> dict[str, HeldSlot]:
        """An idle slot of each of ``pools`` this process still holds, taken for one call; a
        pool without one is missing from the answer (claim it in the table, or
        :meth:`put_back` these)."""
        taken: dict[str, HeldSlot] = {}
        if self.keep_slots <= 0:
            return taken
        with self._lock:
            for pool in pools:
                idle = self._idle.get((pool, scope)) or []
                # The most recently freed first, so the others may stand idle long enough to go
                # back; one held ``max_hold`` already is left for the sweeper to give back.
                for i in range(len(idle) - 1, -1, -1):
                    if now - idle[i].claimed_at < self.max_hold:
                        taken[pool] = idle.pop(i)
                        break
        return taken

    def put_back(self, scope: str, slots: dict[str, HeldSlot]) -> None:
        """Slots taken by :meth:`take_slots` for a call that did not go ahead."""
        with self._lock:
            for held in slots.values():
                self._idle.setdefault((held.pool, scope), []).append(held)

    def release(self, scope: str, slots: list[HeldSlot], now: float) -> list[HeldSlot]:
        """A call ended: its slots are kept idle here, except those to free in the table now
        (returned): held ``max_hold`` already, or nothing is kept. A slot whose row was claimed
        again since (its lease ran out meanwhile) is neither."""
        to_free: list[HeldSlot] = []
        with self._lock:
            for held in slots:
                key = (held.pool, scope, held.slot)
                if self._owner.get(key) != held.generation:
                    continue
                if self.keep_slots <= 0 or now - held.claimed_at >= self.max_hold:
                    del self._owner[key]
                    to_free.append(held)
                else:
                    held.freed_at = now
                    self._idle.setdefault((held.pool, scope), []).append(held)
        return to_free

    # --- the sweeper ---------------------------------------------------------------------

    def idle(self, now: float) -> Kept:
        """Slots idle ``keep_slots`` or held ``max_hold``: taken out of this process, to be
        freed in the table."""
        back: Kept = []
        with self._lock:
            for (pool, scope), idle in self._idle.items():
                keep = []
                for held in idle:
                    if now - held.freed_at >= self.keep_slots or now - held.claimed_at >= self.max_hold:
                        self._owner.pop((pool, scope, held.slot), None)
                        back.append((scope, held))
                    else:
                        keep.append(held)
                idle[:] = keep
        return back

    def drain(self) -> Kept:
        """Every kept slot, taken out (the budget is closing)."""
        back: Kept = []
        with self._lock:
            for (pool, scope), idle in self._idle.items():
                for held in idle:
                    self._owner.pop((pool, scope, held.slot), None)
                    back.append((scope, held))
            self._idle.clear()
        return back
