"""The emulator's state: projects, users, indices, and the read paths (search, activity).

Everything mutable is guarded by ``World.lock``. Job lifecycles (deletions, DSAR) are computed
lazily from the emulated clock: ``refresh()`` applies whatever became due since the last call.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .clock import Clock
from .limits import Limits
from .log import RequestLog
from .model import EVENT_TYPES, Event, Org, Project, User, stable_uuid, to_ms
from .render import LONG_MAX, LONG_MIN, event_json, match_entry, user_data

if TYPE_CHECKING:
    from .deletions import DeletionBook
    from .dsar import DsarBook
    from .faults import Faults

# docs/amplitude.md#user-activity: User Activity returns at most 1000 events per page by default.
ACTIVITY_MAX_LIMIT = 1000


class World:
    """All emulated state. Build one with ``World.seeded(seed)``."""

    def __init__(
        self,
        seed: int = 0,
        start: datetime | None = None,
        clock_speed: float = 1.0,
        rate_scale: float = 1.0,
    ) -> None:
        from .deletions import DeletionBook
        from .dsar import DsarBook
        from .faults import Faults

        self.seed = seed
        self.lock = threading.RLock()
        self.clock = Clock(start, clock_speed)
        self.rng = random.Random(seed)
        self.org = Org(org_id=0, api_key="", secret_key="")
        self.projects: dict[str, Project] = {}
        self.catalog: dict[str, dict[str, Any]] = {}
        self.log = RequestLog()
        self.limits = Limits(rate_scale)
        self.faults: Faults = Faults()
        self.deletions: DeletionBook = DeletionBook(self)
        self.dsar: DsarBook = DsarBook(self)
        self.stopping = threading.Event()
        self._by_id: dict[str, dict[int, User]] = {}
        self._next_event_id = 1

    @classmethod
    def seeded(
        cls,
        seed: int = 0,
        start: datetime | None = None,
        clock_speed: float = 1.0,
        rate_scale: float = 1.0,
    ) -> World:
        """A world populated deterministically from ``seed`` (times relative to the clock start)."""
        from .seed import populate

        world = cls(seed, start, clock_speed, rate_scale)
        populate(world)
        return world

    # -- identifiers ------------------------------------------------------------------------
    def new_key(self) -> str:
        """A 32-hex-digit key, deterministic for the seed."""
        return f"{self.rng.getrandbits(128):032x}"

    def new_amplitude_id(self) -> int:
        """A fresh, unused, deterministic 12-digit Amplitude ID."""
        while True:
            candidate = self.rng.randrange(100_000_000_000, 999_999_999_999)
            if not any(candidate in ids for ids in self._by_id.values()):
                return candidate

    def new_event_id(self) -> int:
        """A fresh event id (unique within the world)."""
        self._next_event_id += 1
        return self._next_event_id

    # -- users ------------------------------------------------------------------------------
    def add_project(self, project: Project) -> None:
        """Register a project."""
        self.projects[project.name] = project
        self._by_id[project.name] = {}

    def index_user(self, user: User) -> None:
        """Add a (new or changed) user to its project's indices."""
        project = self.projects[user.project]
        project.users[user.amplitude_id] = user
        for aid in user.all_ids:
            self._by_id[user.project][aid] = user
        user.touch()

    def unindex_user(self, user: User, day: str) -> None:
        """Make a user unreachable (its deletion job was submitted)."""
        user.deleted = True
        user.deleted_on = day
        project = self.projects[user.project]
        project.users.pop(user.amplitude_id, None)

    def find_by_amplitude_id(self, project: str, amplitude_id: int) -> User | None:
        """The user holding this (canonical or merged) ID, deleted or not."""
        return self._by_id[project].get(amplitude_id)

    def live_users(self, project: str) -> list[User]:
        """Users of a project that are not deleted."""
        return [u for u in self.projects[project].users.values() if not u.deleted]

    def users_with_user_id(self, project: str, user_id: str) -> list[User]:
        """Live users whose user_id equals ``user_id`` exactly."""
        return [u for u in self.live_users(project) if u.user_id == user_id]

    def add_events(self, user: User, count: int, session_events: int, end: datetime) -> None:
        """Append ``count`` events ending at ``end``, in sessions of ``session_events``."""
        end_ms = to_ms(end)
        step = 45_000
        for s_start in range(0, count, max(1, session_events)):
            size = min(session_events, count - s_start)
            first_ms = end_ms - (count - s_start) * step
            for k in range(size):
                eid = self.new_event_id()
                user.events.append(
                    Event(
                        event_id=eid,
                        amplitude_id=user.amplitude_id,
                        device_id=user.device_ids[0],
                        time_ms=first_ms + k * step,
                        session_id=first_ms,
                        event_type=EVENT_TYPES[eid % len(EVENT_TYPES)],
                        uuid=stable_uuid(self.seed, user.amplitude_id, eid),
                        properties={"seq": k},
                    )
                )
        user.touch()

    # -- lifecycle --------------------------------------------------------------------------
    def refresh(self) -> datetime:
        """Apply lifecycle transitions due at the emulated now; return now."""
        now = self.clock.now()
        with self.lock:
            self.deletions.apply_due(now)
        return now

    # -- read paths -------------------------------------------------------------------------
    def search(self, project: str, query: str) -> dict[str, Any]:
        """User Search (docs/amplitude.md#user-search): amplitude_id, then exact ids, then prefix."""
        with self.lock:
            if query.isdigit():
                user = self._by_id[project].get(int(query))
                if user is not None and not user.deleted:
                    return {"matches": [match_entry(user)], "type": "match_amplitude_id"}
            users = sorted(self.live_users(project), key=lambda u: u.amplitude_id)
            exact = [u for u in users if u.user_id == query or query in u.device_ids]
            prefix = [u for u in users if u.user_id is not None and u.user_id != query and u.user_id.startswith(query)]
            if exact:
                # Exact matches first, but Amplitude mixes in prefix matches: filter client-side.
                matches = [match_entry(u) for u in exact + prefix]
                return {"matches": matches, "type": "match_user_or_device_id"}
            if prefix:
                return {"matches": [match_entry(u) for u in prefix], "type": "match_user_prefix"}
            return {"matches": [], "type": "nomatch"}

    def activity(self, project: str, amplitude_id: int, offset: int, limit: int, direction: str) -> dict[str, Any]:
        """User Activity (docs/amplitude.md#user-activity): whole sessions, so pages may exceed ``limit``."""
        with self.lock:
            user = self._by_id[project].get(amplitude_id)
            app = self.projects[project].app
            if user is None or user.deleted:
                return {"userData": empty_user_data(amplitude_id), "events": []}
            total = user.num_events()
            if offset >= total or limit <= 0:
                return {"userData": user_data(user), "events": []}
            if direction == "earliest":
                lo_old, hi_old = offset, min(total, offset + limit)
                lo, hi = total - hi_old, total - lo_old  # translate to newest-first indexes
            else:
                lo, hi = offset, min(total, offset + limit)
            lo = user.session_bounds(lo)[0]
            hi = user.session_bounds(hi - 1)[1]
            indexes = range(lo, hi) if direction != "earliest" else range(hi - 1, lo - 1, -1)
            events = [event_json(user, user.event_at(i), app) for i in indexes]
            return {"userData": user_data(user), "events": events}


def empty_user_data(amplitude_id: int) -> dict[str, Any]:
    """userData for an Amplitude ID with no data: nulls and Long.MAX/Long.MIN sentinels."""
    return {
        "user_id": None,
        "canonical_amplitude_id": amplitude_id,
        "merged_amplitude_ids": [],
        "merge_times": {},
        "num_events": 0,
        "num_sessions": 0,
        "usage_time": 0,
        "first_used": None,
        "last_used": None,
        "firstSeen": LONG_MIN,
        "lastSeen": LONG_MIN,
        "device_ids": [],
        "last_location": {"lat": LONG_MAX, "lng": LONG_MAX},
        "lastLocationLat": LONG_MAX,
        "lastLocationLong": LONG_MAX,
        "properties": {},
    }
