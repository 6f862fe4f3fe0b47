"""Pure logic about User Activity pages: sessions, paging decisions, statistics.

Facts (``docs/amplitude.md#user-activity``): events come newest first, grouped by session; a page is widened
so it never cuts a session in half, so pages overlap; ``session_id`` -1 means "no session".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from amplitude_dsr.amplitude.models import Event
from amplitude_dsr.dsr.model import SessionSummary

PAGE_SIZE = 1000  # documented maximum `limit` of useractivity (docs/amplitude.md#user-activity)
NO_SESSION = -1


def most_recent_session(events: Sequence[Event]) -> int | None:
    """The session ID of the newest event that belongs to a session."""
    newest: tuple[str, int] | None = None
    for event in events:
        if event.session_id is None or event.session_id == NO_SESSION:
            continue
        stamp = event.event_time or ""
        if newest is None or stamp > newest[0]:
            newest = (stamp, event.session_id)
    return newest[1] if newest else None


def needs_next_page(page: Sequence[Event], *, limit: int, full_history: bool, recent_session: int | None) -> bool:
    """Whether another (offset) page must be fetched.

    A short page means the history is exhausted. With ``full_history`` every page is fetched;
    otherwise only while the oldest event of the page still belongs to the most recent session
    (a session reaching past the page), so that the whole most recent session is present.

    A page holding more than ``limit + 1`` events was widened by Amplitude so that it ends where a
    session ends (``docs/amplitude.md#user-activity``; the ``+ 1`` allows for the documented 0-indexed
    ``limit``): its last session is whole, so no page is fetched again for the same session.
    """
    if len(page) < limit:
        return False
    if full_history:
        return True
    if recent_session is None or len(page) > limit + 1:
        return False
    oldest = min(page, key=lambda e: e.event_time or "")
    return oldest.session_id == recent_session


@dataclass
class EventStats:
    """Running statistics over a subject's de-duplicated events."""

    dedupe: bool = True
    seen: set[str] = field(default_factory=set)
    by_type: Counter[str] = field(default_factory=Counter)
    sessions: dict[int, list[str]] = field(default_factory=dict)
    count: int = 0

    def add(self, events: Iterable[Event]) -> list[Event]:
        """Record ``events``; return only those not seen before (by ``uuid``, when ``dedupe``;
        DSAR exports hold each event once, so they skip the memory of a seen-set)."""
        fresh = []
        for event in events:
            if self.dedupe:
                key = event.dedupe_key()
                if key in self.seen:
                    continue
                self.seen.add(key)
            fresh.append(event)
            self.count += 1
            self.by_type[event.event_type or "(unknown)"] += 1
            if event.session_id is not None and event.session_id != NO_SESSION:
                bounds = self.sessions.setdefault(
                    event.session_id, [event.event_time or "", event.event_time or "", "0"]
                )
                stamp = event.event_time or ""
                bounds[0] = min(bounds[0], stamp) if bounds[0] else stamp
                bounds[1] = max(bounds[1], stamp)
                bounds[2] = str(int(bounds[2]) + 1)
        return fresh

    def session_summaries(self) -> list[SessionSummary]:
        """Sessions, newest first."""
        return [
            SessionSummary(session_id=sid, start=b[0] or None, end=b[1] or None, event_count=int(b[2]))
            for sid, b in sorted(self.sessions.items(), key=lambda kv: kv[1][1], reverse=True)
        ]
