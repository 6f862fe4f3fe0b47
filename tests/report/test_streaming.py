"""Memory stays constant in the number of events; CSV guard and recent-event window properties."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from report_builders import access_result, event

from amplitude_dsr.dsr.report import csv_safe, write_access_package
from amplitude_dsr.dsr.report._events import RecentEvents

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def test_memory_is_constant_in_the_number_of_events(tmp_path: Path) -> None:
    # Few large events keep tracemalloc's per-allocation overhead (and the test's time) low; the
    # memory ratio is what matters. Throughput on a 1 GB export belongs in bench/.
    n = 20_000
    pad = "x" * 1500
    events = (event(i, event_properties={"n": i, "pad": pad}) for i in range(n))
    result = access_result(tmp_path, events)
    size = Path(result.subjects[0].events_path or "").stat().st_size
    tracemalloc.start()
    try:
        final = write_access_package(result, tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The report keeps the 200 most recent events (~0.3 MB here); everything else streams.
    assert size > 30_000_000
    assert peak < size / 20, (peak, size)
    with (final / "events.csv").open(newline="") as rows:
        assert sum(1 for _ in csv.reader(rows)) == n + 1
    with (final / "export.json").open() as export:
        assert json.load(export)["subjects"][0]["events_in_export"] == n


@given(st.text())
def test_csv_safe_never_starts_a_formula_and_is_reversible(text: str) -> None:
    cell = csv_safe(text)
    assert not cell.startswith(DANGEROUS)
    restored = cell[1:] if cell.startswith("'") and cell[1:].startswith(DANGEROUS) else cell
    assert restored == text


@given(st.lists(st.text(), max_size=5))
def test_csv_cells_survive_a_round_trip(cells: list[str]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_safe(c) for c in cells])
    (row,) = list(csv.reader(io.StringIO(buffer.getvalue(), newline=""))) or [[]]
    assert row == [csv_safe(c) for c in cells]


@given(st.integers() | st.floats(allow_nan=False))
def test_numbers_are_not_quoted(number: float) -> None:
    assert csv_safe(number) == repr(number)


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=60), st.integers(0, 10))
def test_recent_events_keeps_the_newest(times: list[int], limit: int) -> None:
    recent = RecentEvents(limit)
    for t in times:
        recent.add("p", {"event_time": f"{t:06d}"})
    kept = [int(e["event_time"]) for _, e in recent.newest_first()]
    assert kept == sorted(times, reverse=True)[:limit]
    assert recent.seen == len(times)
