"""The database-backed budget with a fake clock: exact waits, pauses, slots, leases.

Runs on SQLite by default and on PostgreSQL when ``AMPLITUDE_DSR_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from amp_helpers import FakeClock

from amplitude_dsr.amplitude import Budget, normalize_database_url
from amplitude_dsr.amplitude import budget as budget_module
from amplitude_dsr.amplitude.adaptive import MIN_RECOVERY_WINDOW
from amplitude_dsr.amplitude.handoff import Handoff
from amplitude_dsr.errors import BudgetExhausted

SCOPE = "abc123def456"
MakeBudget = Callable[..., Budget]


def spend(budget: Budget, pool: str, times: int, cost: int = 1) -> None:
    for _ in range(times):
        with budget.acquire(pool, SCOPE, cost):
            pass


def test_deletions_are_spaced_at_three_quarters_of_one_per_second(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep)
    spend(budget, "deletion", 5)
    assert clock.sleeps == pytest.approx([4 / 3] * 4)


def test_user_pool_bursts_then_waits_for_each_token(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=60)
    spend(budget, "user", 18)
    assert clock.sleeps == []
    spend(budget, "user", 2)
    assert clock.sleeps == pytest.approx([3600 / 270] * 2)


def test_rate_scale_speeds_the_bucket(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, rate_scale=100.0)
    spend(budget, "user", 19)
    assert clock.sleeps == pytest.approx([36 / 270])


def test_dsar_post_waits_for_eight_tokens(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep)
    spend(budget, "dsar", 90, cost=8)  # 720 = the burst
    assert clock.sleeps == []
    spend(budget, "dsar", 1, cost=8)
    assert clock.sleeps == pytest.approx([8 / 3.0])  # 14,400 x 0.75 per hour = 3 per second


def test_too_long_a_wait_raises_without_spending(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=5)
    spend(budget, "user", 18)
    start = clock.now
    with pytest.raises(BudgetExhausted) as info:
        spend(budget, "user", 1)
    assert info.value.pool == "user"
    assert info.value.resume_at == datetime.fromtimestamp(start + 3600 / 270, UTC)
    assert clock.sleeps == []
    clock.now = start + 3600 / 270
    spend(budget, "user", 1)  # nothing was reserved by the refused call
    assert clock.sleeps == []


def test_pause_stops_every_budget_on_the_database_then_resumes_empty(make_budget: MakeBudget, clock: FakeClock) -> None:
    first = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=200)
    second = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=200)
    spend(first, "user", 1)
    until = clock.now + 100
    first.pause("user", SCOPE, until)
    assert second.paused_until("user", SCOPE) == until
    spend(second, "user", 1)
    # Waits out the pause, then one token's worth at half the rate (the bucket restarts empty:
    # no burst, and the 429 halved the factor).
    assert clock.sleeps == pytest.approx([100, 2 * 3600 / 270])


def test_pause_longer_than_the_inline_wait_raises_with_its_end(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=30)
    until = clock.now + 300
    budget.pause("deletion", SCOPE, until)
    with pytest.raises(BudgetExhausted) as info:
        spend(budget, "deletion", 1)
    assert info.value.resume_at == datetime.fromtimestamp(until, UTC)


def test_pause_never_shortens_an_existing_pause(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep)
    budget.pause("user", SCOPE, clock.now + 100)
    budget.pause("user", SCOPE, clock.now + 10)
    assert budget.paused_until("user", SCOPE) == clock.now + 100


def test_a_429_halves_the_rate_for_every_budget_then_it_recovers_window_by_window(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    first = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=200)
    second = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=200)
    spend(first, "deletion", 1)
    assert second.rate_factor("deletion", SCOPE) == 1.0
    until = clock.now + 2
    first.pause("deletion", SCOPE, until)
    assert second.rate_factor("deletion", SCOPE) == pytest.approx(0.5)
    clock.now = until
    spend(second, "deletion", 2)
    # 0.75 per second halved: 8/3 s per call (the factor regains 0.1 per minimum recovery window
    # of 60 s meanwhile, not per 1 s window: a per-second pool recovers slowly).
    assert clock.sleeps[0] == pytest.approx(1 / (0.75 * 0.5))
    assert sum(clock.sleeps[1:]) < clock.sleeps[0]  # already faster: the factor recovers
    clock.now = until + 5 * MIN_RECOVERY_WINDOW  # five minimum recovery windows: +0.5
    assert first.rate_factor("deletion", SCOPE) == pytest.approx(1.0)


def test_429s_during_a_pause_lower_the_rate_once(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep)
    budget.pause("user", SCOPE, clock.now + 300)
    for _ in range(7):  # the other calls that were in flight when the first 429 came back
        budget.pause("user", SCOPE, clock.now + 300)
    assert budget.rate_factor("user", SCOPE) == pytest.approx(0.5)
    clock.now += 300  # a new 429 right after the pause: a new episode
    budget.pause("user", SCOPE, clock.now + 300)
    assert budget.rate_factor("user", SCOPE) == pytest.approx(0.25)
    for _ in range(10):
        clock.now += 300
        budget.pause("user", SCOPE, clock.now + 300)
    assert budget.rate_factor("user", SCOPE) == pytest.approx(0.1)  # the floor
    clock.now += 300 + 3600 * 3  # three hourly windows after the pause: +0.3
    assert budget.rate_factor("user", SCOPE) == pytest.approx(0.4)


def test_an_old_bucket_table_gains_the_factor_columns(
    make_budget: MakeBudget, database_url: str, table_prefix: str
) -> None:
    engine = sa.create_engine(normalize_database_url(database_url))
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f'CREATE TABLE "{table_prefix}_bucket" (pool VARCHAR(32) NOT NULL, scope VARCHAR(128) NOT NULL, '
            "tokens FLOAT NOT NULL, updated_at FLOAT NOT NULL, paused_until FLOAT NOT NULL, "
            "last_fire FLOAT NOT NULL, PRIMARY KEY (pool, scope))"
        )
        conn.exec_driver_sql(f"INSERT INTO \"{table_prefix}_bucket\" VALUES ('user', '{SCOPE}', 3.0, 0.0, 0.0, 0.0)")
    engine.dispose()
    budget = make_budget()
    assert budget.rate_factor("user", SCOPE) == 1.0
    spend(budget, "user", 1)
    budget.pause("user", SCOPE, budget.clock() + 1)
    assert budget.rate_factor("user", SCOPE) == pytest.approx(0.5)


def test_scopes_are_independent(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep)
    spend(budget, "deletion", 1)
    with budget.acquire("deletion", "another-project"):
        pass
    assert clock.sleeps == []


def test_concurrency_slots_are_capped_and_released(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=1.0)
    with ExitStack() as stack:
        for _ in range(4):  # rest: 5 documented, 4 at 0.75
            stack.enter_context(budget.acquire("rest", SCOPE))
        with pytest.raises(BudgetExhausted):
            spend(budget, "rest", 1)
        # A user call also needs a rest slot; so does a deletion.
        with pytest.raises(BudgetExhausted):
            spend(budget, "deletion", 1)
    spend(budget, "rest", 4)


def test_a_slot_is_released_when_the_call_fails(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=1.0)
    for _ in range(6):
        with pytest.raises(RuntimeError), budget.acquire("rest", SCOPE):
            raise RuntimeError("call failed")
    spend(budget, "rest", 4)


def test_leases_of_crashed_holders_expire(make_budget: MakeBudget, clock: FakeClock) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=1.0, lease_seconds=10)
    crashed = [budget.acquire("rest", SCOPE) for _ in range(4)]
    for holder in crashed:
        holder.__enter__()  # never exited: a process that died mid-call
    with pytest.raises(BudgetExhausted):
        spend(budget, "rest", 1)
    clock.now += 11
    spend(budget, "rest", 1)


def test_deletion_spacing_gate_holds_even_with_spare_tokens(
    make_budget: MakeBudget, clock: FakeClock, table_prefix: str, database_url: str
) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep)
    spend(budget, "deletion", 1)
    engine = sa.create_engine(normalize_database_url(database_url))
    with engine.begin() as conn:  # a late reservation: tokens are there, last call 0.2 s ago
        conn.execute(sa.text(f'UPDATE "{table_prefix}_bucket" SET tokens = 5'))
    engine.dispose()
    clock.now += 0.2
    spend(budget, "deletion", 1)
    assert clock.sleeps == pytest.approx([4 / 3 - 0.2])  # our own spacing, not just 1 s


def test_argument_checks(make_budget: MakeBudget) -> None:
    budget = make_budget()
    with pytest.raises(ValueError, match="unknown budget pool"):
        budget.acquire("nope", SCOPE)
    with pytest.raises(ValueError, match="at least 1"):
        budget.acquire("user", SCOPE, 0)
    with pytest.raises(ValueError, match="exceeds"):
        budget.acquire("deletion", SCOPE, 2)
    with pytest.raises(ValueError):
        make_budget(fraction=0)
    with pytest.raises(ValueError):
        make_budget(rate_scale=0)


def test_create_tables_is_idempotent(make_budget: MakeBudget) -> None:
    budget = make_budget()
    budget.create_tables()
    budget.create_tables()
    spend(budget, "rest", 1)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://127.0.0.1:5432/test", "postgresql+psycopg://127.0.0.1:5432/test"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:///x.sqlite", "sqlite:///x.sqlite"),
    ],
)
def test_normalize_database_url(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


def test_threads_never_exceed_the_slot_count(make_budget: MakeBudget) -> None:
    budget = make_budget(max_inline_wait=120)
    inside = 0
    peak = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal inside, peak
        for _ in range(3):
            with budget.acquire("rest", SCOPE):
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.02)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak <= 4


def test_a_slot_freed_in_this_process_is_handed_to_a_waiter_at_once(
    make_budget: MakeBudget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the poll interval stretched to a minute, a waiter gets the slot only because the
    caller that frees it wakes it (amplitude/handoff.py); polling alone would time the test out."""
    monkeypatch.setattr(budget_module, "SLOT_POLL_MIN", 60.0)
    monkeypatch.setattr(budget_module, "SLOT_POLL_MAX", 60.0)
    budget = make_budget(max_inline_wait=600)
    got = threading.Event()
    with ExitStack() as stack:
        for _ in range(4):  # every rest slot (5 documented, 4 at 0.75) is held
            stack.enter_context(budget.acquire("rest", SCOPE))

        def waiter() -> None:
            with budget.acquire("rest", SCOPE):
                got.set()

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        assert not got.wait(0.5)  # every slot is busy: it waits
    # the ExitStack released the four slots: the waiter is woken and claims one
    assert got.wait(20), "the waiter slept out the poll interval instead of being handed the slot"
    thread.join(20)


def test_a_handoff_wakes_only_its_own_scope() -> None:
    handoff = Handoff()
    seen = handoff.mark("a")
    handoff.freed("b")
    assert handoff.mark("a") == seen  # another scope's release changes nothing here
    handoff.freed("a")
    handoff.wait("a", seen, timeout=60)  # returns at once: a slot was freed since `seen`
    assert handoff.mark("a") == seen + 1
