"""Hand a freed concurrency slot straight to a caller of the same process.

A call that finds every slot of a pool busy (Amplitude's cap on concurrent REST requests per
project) tries again after a short random pause: other processes can only be seen by polling the
shared table. Within one process, though, the caller that frees a slot knows it: it wakes one
waiter of the same scope at once, so a slot does not stand idle for up to a poll interval while
dozens of workflows of this process queue for it. Waiting stays bounded by the poll interval, so
a slot freed by another process (or a lost wake-up) costs no more than before.
"""

from __future__ import annotations

import threading
from collections import defaultdict


class Handoff:
    """Per scope: a counter of slots freed in this process, and a condition to wait on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conds: dict[str, threading.Condition] = {}
        self._freed: defaultdict[str, int] = defaultdict(int)

    def _cond(self, scope: str) -> threading.Condition:
        cond = self._conds.get(scope)
        if cond is None:
            cond = self._conds.setdefault(scope, threading.Condition(self._lock))
        return cond

    def mark(self, scope: str) -> int:
        """The scope's counter now; pass it to :meth:`wait` after a claim that found no slot."""
        with self._lock:
            return self._freed[scope]

    def wait(self, scope: str, seen: int, timeout: float) -> None:
        """Wait until a slot of ``scope`` is freed here after ``seen`` was read, or ``timeout``."""
        cond = self._cond(scope)
        with cond:
            cond.wait_for(lambda: self._freed[scope] != seen, timeout=timeout)

    def freed(self, scope: str) -> None:
        """A slot of ``scope`` was released (and committed): wake one waiter of that scope to
        claim it (waking them all would only have them queue for the database's write lock)."""
        cond = self._cond(scope)
        with cond:
            self._freed[scope] += 1
            cond.notify()
