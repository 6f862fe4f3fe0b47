"""The request log: every API call the emulator answered, for tests and benchmarks to read."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

DEFAULT_CAPACITY = 200_000


class RequestLog:
    """A bounded, thread-safe, append-only log with increasing sequence numbers (from 1)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = 0

    def record(self, **fields: Any) -> dict[str, Any]:
        """Append an entry; ``seq`` and ``time`` (real epoch seconds) are filled in."""
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "time": time.time(), **fields}
            self._entries.append(entry)
            return entry

    def since(self, seq: int = 0) -> list[dict[str, Any]]:
        """Entries with a sequence number greater than ``seq``, oldest first."""
        with self._lock:
            return [dict(e) for e in self._entries if e["seq"] > seq]

    def clear(self) -> None:
        """Drop all entries (sequence numbers keep increasing)."""
        with self._lock:
            self._entries.clear()

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest entry ever recorded."""
        with self._lock:
            return self._seq
