"""Plain data of the emulated world: projects, users, events, and lazily generated bulk events.

Events are stored compactly and rendered to Amplitude's wire format by ``render.py``. A user's
events are addressed newest-first by index (0 = most recent), the order User Activity uses.
A user can also carry a *bulk* block: a declared volume of older events that are generated on
demand from their index, so a user above the DSAR size limit costs no memory.
"""

from __future__ import annotations

import bisect
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

# docs/amplitude.md#dsar-limits-and-sla: users above 100,000 events per month are not supported by DSAR.
DSAR_MAX_EVENTS_PER_MONTH = 100_000

EVENT_TYPES = (
    "Page Viewed",
    "Button Clicked",
    "Search",
    "Add To Cart",
    "Purchase",
    "Play Song",
    "Login",
    "Settings Changed",
)


@dataclass(slots=True)
class Event:
    """One stored event. ``time_ms`` and ``session_id`` are epoch milliseconds."""

    event_id: int
    amplitude_id: int
    device_id: str
    time_ms: int
    session_id: int
    event_type: str
    uuid: str
    properties: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Bulk:
    """A declared block of ``count`` older events, spaced evenly in [oldest_ms, newest_ms]."""

    count: int
    newest_ms: int
    oldest_ms: int
    session_size: int = 50

    def time_of(self, j: int) -> int:
        """Time of bulk event ``j`` (0 = newest in the block)."""
        if self.count <= 1:
            return self.newest_ms
        span = self.newest_ms - self.oldest_ms
        return self.newest_ms - (span * j) // (self.count - 1)

    def count_between(self, lo_ms: int, hi_ms: int) -> int:
        """How many bulk events fall in [lo_ms, hi_ms)."""
        lo_j, hi_j = 0, self.count
        # time_of is non-increasing in j: find the first j with time < hi and the first < lo.
        first_below_hi = _first_index(lo_j, hi_j, lambda j: self.time_of(j) < hi_ms)
        first_below_lo = _first_index(lo_j, hi_j, lambda j: self.time_of(j) < lo_ms)
        return max(0, first_below_lo - first_below_hi)


def _first_index(lo: int, hi: int, pred: Callable[[int], bool]) -> int:
    """The first index in [lo, hi) where the monotone predicate holds (hi if none)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def stable_uuid(*parts: object) -> str:
    """A deterministic UUID (version 4 layout) from the given parts."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass
class User:
    """One Amplitude user (a canonical Amplitude ID) in one project."""

    amplitude_id: int
    project: str
    user_id: str | None
    device_ids: list[str]
    created_ms: int
    profile: dict[str, str]
    properties: dict[str, object] = field(default_factory=dict)
    merged_ids: list[int] = field(default_factory=list)
    merge_times: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)  # ordered oldest-first
    bulk: Bulk | None = None
    deleted: bool = False
    deleted_on: str | None = None
    _starts: list[int] | None = field(default=None, repr=False)

    @property
    def all_ids(self) -> list[int]:
        """The canonical Amplitude ID followed by the merged ones."""
        return [self.amplitude_id, *self.merged_ids]

    def touch(self) -> None:
        """Re-sort events and drop cached session boundaries after a change."""
        self.events.sort(key=lambda e: (e.session_id, e.event_id))
        self._starts = None

    def num_events(self) -> int:
        """Materialised plus bulk events."""
        return len(self.events) + (self.bulk.count if self.bulk else 0)

    def num_sessions(self) -> int:
        """Number of distinct sessions."""
        bulk = self.bulk
        extra = 0 if bulk is None else -(-bulk.count // bulk.session_size)
        return len(self._session_starts()) + extra

    def event_at(self, i: int) -> Event:
        """Event ``i`` in newest-first order (generating bulk events on demand)."""
        n = len(self.events)
        if i < n:
            return self.events[n - 1 - i]
        bulk = self.bulk
        assert bulk is not None
        j = i - n
        start_j = (j // bulk.session_size) * bulk.session_size
        last_j = min(start_j + bulk.session_size, bulk.count) - 1
        return Event(
            event_id=10_000_000 + j,
            amplitude_id=self.amplitude_id,
            device_id=self.device_ids[0] if self.device_ids else "",
            time_ms=bulk.time_of(j),
            session_id=bulk.time_of(last_j),
            event_type=EVENT_TYPES[j % len(EVENT_TYPES)],
            uuid=stable_uuid(self.amplitude_id, "bulk", j),
        )

    def session_bounds(self, i: int) -> tuple[int, int]:
        """[start, end) newest-first indexes of the session holding event ``i``."""
        n = len(self.events)
        if i < n:
            starts = self._session_starts()
            k = bisect.bisect_right(starts, i) - 1
            end = starts[k + 1] if k + 1 < len(starts) else n
            return starts[k], end
        bulk = self.bulk
        assert bulk is not None
        j = i - n
        start_j = (j // bulk.session_size) * bulk.session_size
        return n + start_j, n + min(start_j + bulk.session_size, bulk.count)

    def _session_starts(self) -> list[int]:
        if self._starts is None:
            starts: list[int] = []
            previous: int | None = None
            for i, event in enumerate(reversed(self.events)):
                if event.session_id != previous:
                    starts.append(i)
                    previous = event.session_id
            self._starts = starts
        return self._starts

    def first_last_ms(self) -> tuple[int, int] | None:
        """(first, last) event times, or None for a user without events."""
        times = [e.time_ms for e in self.events]
        if self.bulk is not None:
            times += [self.bulk.oldest_ms, self.bulk.newest_ms]
        if not times:
            return None
        return min(times), max(times)

    def monthly_counts(self, month_bounds: list[tuple[str, int, int]]) -> dict[str, int]:
        """Events per month for the given (label, start_ms, end_ms) months."""
        counts: dict[str, int] = {}
        for label, lo, hi in month_bounds:
            count = sum(1 for e in self.events if lo <= e.time_ms < hi)
            if self.bulk is not None:
                count += self.bulk.count_between(lo, hi)
            counts[label] = count
        return counts


@dataclass
class Project:
    """One Amplitude project: its keys, region and users."""

    name: str
    app: int
    region: str
    api_key: str
    secret_key: str
    users: dict[int, User] = field(default_factory=dict)  # canonical amplitude_id -> user


@dataclass
class Org:
    """The organisation that owns every project; holds the org-level (DSAR) keys."""

    org_id: int
    api_key: str
    secret_key: str


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(moment.timestamp() * 1000)
