"""The budget's history (``amplitude/budget_history.py``): calls started and 429s per five
minutes, written by every process in the budget's own transactions, read as hourly series, and
pruned after three days."""

from __future__ import annotations

from collections.abc import Callable

from amp_helpers import FakeClock

from amplitude_dsr.amplitude import Budget
from amplitude_dsr.amplitude.budget_history import (
    BUCKET_SECONDS,
    FLUSH_SECONDS,
    HOUR,
    KEEP_SECONDS,
    aggregate,
    bucket_of,
)

MakeBudget = Callable[..., Budget]


def spent(budget: Budget) -> dict[tuple[str, str], tuple[list[int], list[int], int]]:
    return {(s.pool, s.scope): (s.calls, s.throttled, s.throttled_last_hour) for s in budget.spent()}


def test_calls_and_429s_of_every_process_are_counted(make_budget: MakeBudget, clock: FakeClock) -> None:
    one = make_budget(clock=clock, sleep=clock.sleep)
    other = make_budget(clock=clock, sleep=clock.sleep)  # another process sharing the tables
    for budget in (one, other, one):
        with budget.acquire("user", "p1"):
            pass
    one.pause("user", "p1", clock() + 30)
    other.pause("user", "p1", clock() + 30)
    with other.acquire("rest", "p1"):
        pass
    found = spent(one)
    calls, throttled, last_hour = found[("user", "p1")]
    assert (sum(calls), calls[-1], sum(throttled), throttled[-1], last_hour) == (3, 3, 2, 2, 2)
    assert len(calls) == 24
    # Another process's calls reach the table within FLUSH_SECONDS (with its next call, or when it
    # reads or closes); its 429s at once.
    assert ("rest", "p1") not in found
    assert sum(spent(other)[("rest", "p1")][0]) == 1
    assert sum(spent(one)[("rest", "p1")][0]) == 1

    # Two hours later the 429s are history: in the chart, not in the last hour.
    clock.sleep(2 * HOUR)
    calls, throttled, last_hour = spent(one)[("user", "p1")]
    assert (calls[-3], throttled[-3], last_hour) == (3, 2, 0)


def test_call_counts_are_written_every_few_seconds_and_on_close(make_budget: MakeBudget, clock: FakeClock) -> None:
    one = make_budget(clock=clock, sleep=clock.sleep)
    reader = make_budget(clock=clock, sleep=clock.sleep)
    for _ in range(3):  # the first call writes (nothing written yet), the next two wait in memory
        with one.acquire("user", "p1"):
            pass
    assert sum(spent(reader)[("user", "p1")][0]) == 1
    clock.sleep(FLUSH_SECONDS)
    with one.acquire("user", "p1"):  # due: this call's transaction adds the three counted since
        pass
    assert sum(spent(reader)[("user", "p1")][0]) == 4
    with one.acquire("user", "p1"):
        pass
    one.close()
    assert sum(spent(reader)[("user", "p1")][0]) == 5


def test_rows_older_than_three_days_are_pruned(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep)
    with budget.acquire("user", "p1"):
        pass
    clock.sleep(KEEP_SECONDS + 2 * BUCKET_SECONDS)
    with budget.acquire("user", "p1"):  # the first call of a new bucket prunes
        pass
    [kept] = budget.spent(hours=100)  # the first call's row, 72 hours old, is gone
    assert sum(kept.calls) == 1 and kept.calls[-1] == 1


def test_hourly_series_from_five_minute_rows() -> None:
    now = 10 * HOUR + 100.0
    rows = [
        ("user", "p1", bucket_of(now), 5, 1),  # this hour
        ("user", "p1", bucket_of(now - HOUR + 400), 2, 1),  # began under an hour ago: the last hour
        ("user", "p1", bucket_of(now - 3 * HOUR), 7, 0),
        ("user", "p1", bucket_of(now - 30 * HOUR), 9, 9),  # older than the span: left out
    ]
    [series] = aggregate(rows, now, 24)
    assert series.calls[-1] == 5 + 2
    assert sum(series.calls) == 14 and sum(series.throttled) == 2
    assert series.calls[-4] == 7 and series.throttled_last_hour == 2
