"""The concurrency slots a process keeps between calls (``amplitude/lease.py``): taken again without
a transaction, freed by the sweeper, and the caps they keep.

Statements are counted on the budget's own engine; "another process" is a second ``Budget`` on
the same tables. Runs on SQLite by default and on PostgreSQL when
``AMPLITUDE_DSR_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from amp_helpers import FakeClock

from amplitude_dsr.amplitude import Budget
from amplitude_dsr.amplitude.lease import LocalLease
from amplitude_dsr.errors import BudgetExhausted

SCOPE = "lease-scope"
MakeBudget = Callable[..., Budget]


@contextmanager
def statements(budget: Budget) -> Iterator[list[str]]:
    """The SQL the budget's engine runs inside the block."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    engine = budget._engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def room(budget: Budget, pool: str) -> tuple[float | None, int]:
    """Tokens free and slots held of ``pool`` in the shared tables (as any process reads them)."""
    [r] = [r for r in budget.snapshot() if r.pool == pool and r.scope == SCOPE]
    return r.tokens, r.slots_held


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """The sweeper is a thread: wait for what it does (bounded; not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the sweeper did not act"
        time.sleep(0.02)


def test_a_kept_slot_serves_the_next_calls_without_claiming_or_freeing(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, keep_slots=0.5)
    with statements(budget) as first, budget.acquire("rest", SCOPE):
        pass
    assert first, "the first call claims in the table"
    assert room(budget, "rest") == (None, 1)  # kept after the call
    with statements(budget) as later:
        for _ in range(5):
            with budget.acquire("rest", SCOPE):
                pass
    assert later == []  # ``rest`` has no rate: a kept slot is all a call needs
    with statements(budget) as user:
        with budget.acquire("user", SCOPE):
            pass
        with budget.acquire("user", SCOPE):
            pass
    # The user pool still takes its tokens in the bucket (a 429 anywhere stops the next call),
    # and claims a user slot once; the kept rest slot is reused and nothing is freed.
    assert sum(q.startswith("UPDATE") and "_slot" in q for q in user) == 1
    assert sum(q.startswith("UPDATE") and "_bucket" in q for q in user) == 2
    assert room(budget, "user") == (16, 1)


def test_the_sweeper_frees_idle_slots(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, keep_slots=0.5)
    with budget.acquire("user", SCOPE):
        pass
    assert room(budget, "user")[1] == 1 and room(budget, "rest")[1] == 1
    clock.now += 0.6
    wait_until(lambda: room(budget, "user")[1] == 0 and room(budget, "rest")[1] == 0)


def test_closing_frees_the_kept_slots(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, keep_slots=30.0)
    other = make_budget(clock=clock, sleep=clock.sleep)
    with budget.acquire("user", SCOPE):
        pass
    budget.close()
    assert room(other, "user")[1] == 0 and room(other, "rest")[1] == 0


def test_kept_slots_count_against_other_processes_until_given_back(make_budget: MakeBudget, clock: FakeClock) -> None:
    one = make_budget(clock=clock, sleep=clock.sleep, keep_slots=30.0, max_inline_wait=1.0)
    other = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=1.0)
    with one.acquire("rest", SCOPE), one.acquire("rest", SCOPE), one.acquire("rest", SCOPE), one.acquire("rest", SCOPE):
        pass
    assert room(other, "rest")[1] == 4  # all four idle, still this process's
    with pytest.raises(BudgetExhausted), other.acquire("rest", SCOPE):
        pass
    clock.now += 31
    wait_until(lambda: room(other, "rest")[1] == 0)
    with other.acquire("rest", SCOPE):
        pass


def test_a_slot_held_for_max_hold_goes_back_to_the_table_when_its_call_ends(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    one = make_budget(clock=clock, sleep=clock.sleep, keep_slots=30.0, lease_seconds=8.0)  # max_hold 2 s
    with one.acquire("rest", SCOPE):
        clock.now += 2.5
    assert room(one, "rest")[1] == 0
    with statements(one) as again, one.acquire("rest", SCOPE):
        pass
    assert again, "a fresh claim in the table"


def test_threads_of_one_process_never_exceed_the_slots(make_budget: MakeBudget) -> None:
    budget = make_budget(keep_slots=0.2, rate_scale=1e6)
    lock = threading.Lock()
    now_in = 0
    peak = 0

    def worker() -> None:
        nonlocal now_in, peak
        for _ in range(15):
            with budget.acquire("user", SCOPE):
                with lock:
                    now_in += 1
                    peak = max(peak, now_in)
                time.sleep(0.002)
                with lock:
                    now_in -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= peak <= 4  # a user call also holds one of the four rest slots


def test_a_stale_call_does_not_free_a_row_claimed_again_after_its_lease(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, keep_slots=30.0, lease_seconds=10.0, max_inline_wait=1.0)
    stuck = [budget.acquire("rest", SCOPE) for _ in range(4)]
    for call in stuck:
        call.__enter__()  # calls that hang past their lease
    clock.now += 11
    fresh = budget.acquire("rest", SCOPE)
    fresh.__enter__()  # claims an expired row again
    for call in stuck:
        call.__exit__(None, None, None)  # the hung calls end: only their own claims are let go
    other = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=1.0)
    assert room(other, "rest")[1] == 1  # the fresh claim stands; the stale ones (held 11 s) went back
    three = [other.acquire("rest", SCOPE) for _ in range(3)]
    for call in three:
        call.__enter__()
    with pytest.raises(BudgetExhausted), other.acquire("rest", SCOPE):
        pass
    for call in three:
        call.__exit__(None, None, None)
    fresh.__exit__(None, None, None)


def test_a_429_met_by_another_process_stops_the_next_call_even_with_a_kept_slot(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, keep_slots=30.0, max_inline_wait=60)
    other = make_budget(clock=clock, sleep=clock.sleep)
    with budget.acquire("user", SCOPE):
        pass
    other.pause("user", SCOPE, clock() + 30)
    with budget.acquire("user", SCOPE):
        pass
    assert clock.sleeps and clock.sleeps[0] == pytest.approx(30.0)  # waited the pause out


def test_nothing_is_kept_when_leasing_is_off() -> None:
    lease = LocalLease(keep_slots=0.0, max_hold=2.0)
    held = lease.claimed("rest", SCOPE, 0, now=0.0)
    assert lease.release(SCOPE, [held], now=0.1) == [held]
    assert lease.take_slots(("rest",), SCOPE, now=0.2) == {}
    assert not lease.active
