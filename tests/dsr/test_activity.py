"""Pure paging decisions and statistics over User Activity pages."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplitude_dsr.amplitude.models import Event
from amplitude_dsr.dsr.activity import PAGE_SIZE, EventStats, most_recent_session, needs_next_page


def ev(i: int, session: int | None, *, uuid: str | None = None, etype: str = "Play") -> Event:
    """Event ``i`` (higher is newer) in ``session``."""
    data: dict[str, Any] = {
        "uuid": uuid or f"u{i}",
        "event_type": etype,
        "event_time": f"2024-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}.000000",
        "session_id": session,
    }
    return Event.model_validate(data)


def page(sessions: list[tuple[int, int]], start: int = 10_000) -> list[Event]:
    """A newest-first page: ``(session_id, count)`` groups, newest session first."""
    events: list[Event] = []
    i = start
    for session, count in sessions:
        for _ in range(count):
            events.append(ev(i, session))
            i -= 1
    return events


def test_most_recent_session_is_that_of_the_newest_sessioned_event() -> None:
    events = [ev(5, -1), ev(4, 200), ev(3, 200), ev(9, None), ev(1, 100)]
    assert most_recent_session(events) == 200
    assert most_recent_session([ev(1, -1), ev(2, None)]) is None
    assert most_recent_session([]) is None


NEXT_PAGE: list[tuple[str, list[tuple[int, int]], bool, bool]] = [
    ("short page: history exhausted", [(2, 10)], False, False),
    ("short page even with full history", [(2, 999)], True, False),
    ("full page, full history: keep paging", [(2, 500), (1, 500)], True, True),
    ("full page ending in an older session: last session complete", [(2, 500), (1, 500)], False, False),
    ("full page, all one session: it may continue", [(2, 1000)], False, True),
    ("0-indexed limit quirk (limit + 1 events), one session: may continue", [(2, 1001)], False, True),
    ("page widened past limit + 1: it ends where the session ends", [(2, 1100)], False, False),
    ("full page of out-of-session events only", [(-1, 1000)], False, False),
]


@pytest.mark.parametrize(("groups", "full", "expected"), [c[1:] for c in NEXT_PAGE], ids=[c[0] for c in NEXT_PAGE])
def test_needs_next_page(groups: list[tuple[int, int]], full: bool, expected: bool) -> None:
    events = page(groups)
    recent = most_recent_session(events)
    assert needs_next_page(events, limit=PAGE_SIZE, full_history=full, recent_session=recent) is expected


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 400)), min_size=1, max_size=8))
def test_a_page_never_needs_more_once_an_older_session_is_in_it(groups: list[tuple[int, int]]) -> None:
    # Sessions newest first with distinct, decreasing IDs.
    sessions = [(1000 - i, n) for i, (_, n) in enumerate(groups)]
    events = page(sessions)
    recent = most_recent_session(events)
    more = needs_next_page(events, limit=PAGE_SIZE, full_history=False, recent_session=recent)
    if len(sessions) > 1:
        assert not more
    else:
        assert more is (PAGE_SIZE <= len(events) <= PAGE_SIZE + 1)


def test_event_stats_deduplicate_overlapping_pages_by_uuid() -> None:
    stats = EventStats()
    first = [ev(3, 2, etype="A"), ev(2, 2, etype="B"), ev(1, 1, etype="A")]
    second = [ev(1, 1, etype="A"), ev(0, 1, etype="C")]  # overlaps the first page by one event
    assert len(stats.add(first)) == 3
    fresh = stats.add(second)
    assert [e.uuid for e in fresh] == ["u0"]
    assert stats.count == 4
    assert dict(stats.by_type) == {"A": 2, "B": 1, "C": 1}
    summaries = stats.session_summaries()
    assert [(s.session_id, s.event_count) for s in summaries] == [(2, 2), (1, 2)]
    assert summaries[0].start is not None and summaries[0].start <= (summaries[0].end or "")


def test_event_stats_fall_back_to_insert_id_then_payload() -> None:
    a = Event.model_validate({"$insert_id": "i1", "event_type": "X", "session_id": 1})
    b = Event.model_validate({"$insert_id": "i1", "event_type": "X", "session_id": 1})
    c = Event.model_validate({"amplitude_id": 5, "event_time": "t", "event_type": "Y", "session_id": -1})
    stats = EventStats()
    assert len(stats.add([a, b, c, c])) == 2
    assert stats.session_summaries()[0].session_id == 1  # -1 is "no session"


def test_event_stats_without_dedupe_keep_every_event() -> None:
    stats = EventStats(dedupe=False)
    stats.add([ev(1, 1), ev(1, 1)])
    assert stats.count == 2 and not stats.seen


@given(st.lists(st.integers(0, 30), max_size=60), st.integers(1, 10))
def test_stats_count_unique_uuids_whatever_the_paging(ids: list[int], page_size: int) -> None:
    events = [ev(i, i // 5) for i in ids]
    stats = EventStats()
    for start in range(0, len(events), page_size):
        stats.add(events[start : start + page_size])
    assert stats.count == len(set(ids)) == sum(stats.by_type.values())
    assert sum(s.event_count for s in stats.session_summaries()) == len(set(ids))
