"""Injected faults: 429 storms, 5xx, slow and hanging responses, malformed bodies, drops, and
responses held back after the request took effect (``delay_after``).

A fault matches requests by path prefix (after the ``/eu`` prefix is removed), method and
project, and applies to the next ``count`` matching requests (``count: null`` = until cleared).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

KINDS = ("429", "500", "502", "503", "slow", "hang", "malformed", "drop_after", "delay_after")


@dataclass
class Fault:
    """One injected fault."""

    kind: str
    path: str | None = None
    method: str | None = None
    project: str | None = None
    count: int | None = 1
    delay: float = 1.0
    retry_after: float | None = None

    def matches(self, method: str, path: str, project: str | None) -> bool:
        """Whether this fault applies to a request."""
        if self.path is not None and not path.startswith(self.path):
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.project is None or self.project == project


class Faults:
    """The set of active faults, consumed as requests match them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Activate a fault."""
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; expected one of {KINDS}")
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        """A snapshot of the active faults."""
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str, project: str | None) -> Fault | None:
        """The first matching fault, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, project):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
        return None
