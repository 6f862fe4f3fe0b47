"""``Budget.snapshot``: what ``/metrics`` reports of each pool (room, factor, pause, slots, 429s),
read from the shared tables; and the 429 counter added to a bucket table of an earlier version."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from amp_helpers import FakeClock

from amplitude_dsr.amplitude import Budget, normalize_database_url

MakeBudget = Callable[..., Budget]


def test_a_snapshot_shows_room_slots_and_the_429s_every_process_met(make_budget: MakeBudget, clock: FakeClock) -> None:
    one = make_budget(clock=clock, sleep=clock.sleep)
    other = make_budget(clock=clock, sleep=clock.sleep)  # another process sharing the tables
    with one.acquire("user", "p1"):
        [room] = [r for r in other.snapshot() if r.pool == "user"]
        assert room.capacity is not None and room.tokens == room.capacity - 1
        assert room.slots_held == 1 and room.slots > 1
        assert (room.factor, room.paused_for, room.throttled) == (1.0, 0.0, 0)
    one.pause("user", "p1", clock() + 30)
    other.pause("user", "p1", clock() + 30)  # a second 429 during the same pause
    [room] = [r for r in one.snapshot() if r.pool == "user"]
    assert room.throttled == 2 and room.paused_for == 30.0 and room.tokens == 0.0
    assert room.factor == 0.5  # halved once: the second 429 came during the pause
    rest = [r for r in one.snapshot() if r.pool == "rest"]
    assert rest and rest[0].tokens is None and rest[0].capacity is None  # no rate: only slots


def test_the_429_counter_is_added_to_a_bucket_table_of_an_earlier_version(
    make_budget: MakeBudget, clock: FakeClock, database_url: str, table_prefix: str
) -> None:
    engine = sa.create_engine(normalize_database_url(database_url))
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f'CREATE TABLE "{table_prefix}_bucket" (pool VARCHAR(32) NOT NULL, scope VARCHAR(128) NOT NULL, '
            "tokens FLOAT NOT NULL, updated_at FLOAT NOT NULL, paused_until FLOAT NOT NULL, last_fire FLOAT NOT NULL, "
            "factor FLOAT NOT NULL DEFAULT 1.0, factor_at FLOAT NOT NULL DEFAULT 0.0, PRIMARY KEY (pool, scope))"
        )
        conn.exec_driver_sql(
            f"INSERT INTO \"{table_prefix}_bucket\" VALUES ('deletion', 'p1', 1.0, {clock()}, 0.0, 0.0, 1.0, 0.0)"
        )
    engine.dispose()
    budget = make_budget(clock=clock, sleep=clock.sleep)
    budget.create_tables()
    [room] = [r for r in budget.snapshot() if r.pool == "deletion"]
    assert room.throttled == 0
    budget.pause("deletion", "p1", clock() + 1)
    assert [r.throttled for r in budget.snapshot() if r.pool == "deletion"] == [1]
