"""What one process keeps of the shared budget between its calls, so most calls touch no shared row.

The budget (:mod:`~amplitude_dsr.amplitude.budget`) keeps every process within Amplitude's limits
through two shared tables; a call that went to them for its tokens and its concurrency slots
paid two transactions (take, then free). A process that makes many calls keeps two things here
instead, under a lock of its own:

**Slots.** A concurrency slot row is claimed under the process's holder ID, not the call's. When a
call ends its slot stays claimed for :attr:`LocalLease.keep_slots` seconds and the next call of
the same process takes it without a transaction. A slot goes back to the table when it stood
idle that long (:meth:`LocalLease.idle`, run by the budget's sweeper) or when the process has
held it for :attr:`LocalLease.max_hold` seconds in a row (so other processes, which can only
poll the table, get their turn). A process that dies leaves its rows to expire after the
budget's ``lease_seconds``, as before; ``max_hold`` stays under half of that.

**Tokens.** When the bucket has more than a call needs, the transaction that spends them takes up
to :attr:`LocalLease.stash_calls` calls' worth more. They are spent here within
:attr:`LocalLease.stash_seconds` or given back. Tokens taken early and spent late can put at most
``rate x stash_seconds`` more calls into a window than the bucket allows, a fraction of a call
at Amplitude's real rates; the budget's headroom under the documented count is far larger (see
``docs/client.md#budget``). A pool spaced one call per window (deletions) never stashes: each
of its calls must stamp its start in the shared row. A 429 in this process drops its stash at
once; another process's stash runs out within ``stash_seconds``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
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


@dataclass
class _Stash:
    tokens: float = 0.0
    expires_at: float = 0.0


@dataclass
class Returned:
    """What :meth:`LocalLease.idle` and :meth:`LocalLease.drain` give back: slot rows to free
    in the shared table, and unspent tokens per pool and scope to add back to their buckets."""

    slots: list[tuple[str, HeldSlot]] = field(default_factory=list)  # (scope, slot)
    tokens: list[tuple[str, str, float]] = field(default_factory=list)  # (pool, scope, tokens)

    def __bool__(self) -> bool:
        return bool(self.slots or self.tokens)


class LocalLease:
    """Idle claimed slots and stashed tokens of one process, per pool and scope. With
    ``keep_slots`` 0 and ``stash_calls`` 0 it keeps nothing: every call goes to the tables."""

    def __init__(self, *, keep_slots: float, max_hold: float, stash_calls: int, stash_seconds: float) -> None:
        self.keep_slots = keep_slots
        self.max_hold = max_hold
        self.stash_calls = stash_calls
        self.stash_seconds = stash_seconds
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[HeldSlot]] = {}
        self._owner: dict[tuple[str, str, int], int] = {}  # (pool, scope, slot) -> generation
        self._stash: dict[tuple[str, str], _Stash] = {}
        self._generations = count(1)

    @property
    def active(self) -> bool:
        """Whether anything is ever kept (a sweeper is needed)."""
        return self.keep_slots > 0 or self.stash_calls > 0

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

    # --- tokens --------------------------------------------------------------------------

    def take_tokens(self, pool: str, scope: str, cost: int, now: float) -> bool:
        """Spend ``cost`` stashed tokens, if this process has them and they are still fresh."""
        with self._lock:
            stash = self._stash.get((pool, scope))
            if stash is None or stash.expires_at <= now or stash.tokens < cost:
                return False
            stash.tokens -= cost
            return True

    def extra_tokens(self, cost: int, left: float) -> float:
        """How many tokens a spend of ``cost`` should take beyond it, ``left`` being what the
        bucket still holds after it: whole calls' worth, at most ``stash_calls`` of them."""
        if self.stash_calls <= 0 or left < cost:
            return 0.0
        return float(min(self.stash_calls, int(left // cost)) * cost)

    def stash(self, pool: str, scope: str, tokens: float, now: float) -> None:
        """Keep ``tokens`` just taken from the bucket for this process's next calls."""
        if tokens <= 0:
            return
        with self._lock:
            current = self._stash.setdefault((pool, scope), _Stash())
            if current.expires_at <= now:
                current.tokens = 0.0  # stale ones were (or will be) handed back by the sweeper
            current.tokens += tokens
            current.expires_at = now + self.stash_seconds

    def drop_tokens(self, pool: str, scope: str) -> None:
        """A 429: what this process stashed for ``pool`` is not spent (the bucket restarts empty)."""
        with self._lock:
            self._stash.pop((pool, scope), None)

    # --- the sweeper ---------------------------------------------------------------------

    def idle(self, now: float) -> Returned:
        """Slots idle ``keep_slots`` or held ``max_hold``, and stashes past their time: taken
        out of this process, to be given back to the table."""
        back = Returned()
        with self._lock:
            for (pool, scope), idle in self._idle.items():
                keep = []
                for held in idle:
                    if now - held.freed_at >= self.keep_slots or now - held.claimed_at >= self.max_hold:
                        self._owner.pop((pool, scope, held.slot), None)
                        back.slots.append((scope, held))
                    else:
                        keep.append(held)
                idle[:] = keep
            for (pool, scope), stash in list(self._stash.items()):
                if stash.expires_at <= now:
                    if stash.tokens > 0:
                        back.tokens.append((pool, scope, stash.tokens))
                    del self._stash[(pool, scope)]
        return back

    def drain(self) -> Returned:
        """Everything kept, taken out (the budget is closing)."""
        back = Returned()
        with self._lock:
            for (pool, scope), idle in self._idle.items():
                for held in idle:
                    self._owner.pop((pool, scope, held.slot), None)
                    back.slots.append((scope, held))
            self._idle.clear()
            back.tokens = [(pool, scope, s.tokens) for (pool, scope), s in self._stash.items() if s.tokens > 0]
            self._stash.clear()
        return back
