"""Streaming over a subject's events file, CSV rows for them, and the most recent few.

An events file is JSON lines, one Amplitude event object per line. It is never loaded whole:
exports can be a gigabyte. Event content is untrusted (the product sends whatever it likes).

``events.csv`` carries every field of every event: :data:`CSV_COLUMNS` first (always, in that
order), then every other top-level field found in any event, sorted by name. Because the header
comes first, :func:`event_fields` reads the files once beforehand (keeping only the set of field
names). Nested values (objects, lists) are compact JSON text.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

CSV_COLUMNS = (
    "project",
    "amplitude_id",
    "user_id",
    "device_id",
    "event_time",
    "event_type",
    "session_id",
    "uuid",
    "platform",
    "country",
    "city",
    "event_properties",
    "user_properties",
)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class EventsFileError(ValueError):
    """An events file is missing or holds a line that is not a JSON object."""


def iter_events(path: str | None, expected: int) -> Iterator[dict[str, Any]]:
    """Yield the events of one subject, one line at a time.

    ``None`` means no events. A missing file also means no events, but only when the collector
    reported none (``expected == 0``); otherwise collected data went missing and this refuses.
    """
    if path is None:
        return
    file = Path(path)
    if not file.exists():
        if expected:
            raise EventsFileError(f"events file is missing although {expected} events were collected")
        return
    with file.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                raise EventsFileError(f"events file line {number} is not valid JSON") from None
            if not isinstance(event, dict):
                raise EventsFileError(f"events file line {number} is not a JSON object")
            yield event


def compact_json(value: Any) -> str:
    """One-line JSON with no spaces, non-ASCII kept readable."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def csv_safe(value: Any) -> str:
    """Render one CSV cell; text starting with ``= + - @``, tab or CR gets a leading ``'`` so
    spreadsheets show it as text instead of running it as a formula. Numbers are left alone
    (``-1`` is a session ID, not a formula)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = value if isinstance(value, str) else compact_json(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def event_fields(files: Iterable[tuple[str | None, int]]) -> list[str]:
    """The CSV header for events in ``files`` (``(path, expected count)`` pairs):
    :data:`CSV_COLUMNS`, then every other top-level field seen, sorted."""
    seen: set[str] = set()
    for path, expected in files:
        for event in iter_events(path, expected):
            seen.update(event)
    return [*CSV_COLUMNS, *sorted(seen - set(CSV_COLUMNS))]


def csv_row(
    project: str, default_amplitude_id: int, event: dict[str, Any], columns: Sequence[str] = CSV_COLUMNS
) -> list[str]:
    """The CSV cells of one event in ``columns`` order (``project`` is ours, not the event's)."""
    values: dict[str, Any] = {"amplitude_id": default_amplitude_id, **event, "project": project}
    for column in ("event_properties", "user_properties"):
        values[column] = values.get(column) or {}
    return [csv_safe(values.get(column)) for column in columns]


class RecentEvents:
    """Keeps the ``limit`` most recent events seen (by ``event_time``) in bounded memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self._heap: list[tuple[str, int, str, dict[str, Any]]] = []

    def add(self, project: str, event: dict[str, Any]) -> None:
        """Offer one event; it is kept only if it is among the most recent ``limit``."""
        self.seen += 1
        if self.limit <= 0:
            return
        item = (str(event.get("event_time") or ""), self.seen, project, event)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, item)

    def newest_first(self) -> list[tuple[str, dict[str, Any]]]:
        """The kept events as ``(project, event)``, newest first."""
        ordered = sorted(self._heap, key=lambda item: item[:2], reverse=True)
        return [(project, event) for _, _, project, event in ordered]
