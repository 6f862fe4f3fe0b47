"""Budget arithmetic: the burst never lets a documented window overflow."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplitude_dsr.amplitude import limits
from amplitude_dsr.amplitude.limits import (
    POOLS,
    bucket_capacity,
    bucket_rate,
    min_call_cost,
    min_interval,
    pool_spec,
    slot_count,
)


def test_documented_numbers() -> None:
    assert (limits.USER_POOL_LIMIT, limits.USER_POOL_WINDOW, limits.USER_POOL_CONCURRENCY) == (
        360,
        3600.0,
        10,
    )
    assert limits.REST_CONCURRENCY == 5
    assert (limits.DELETION_RATE_LIMIT, limits.DELETION_RATE_WINDOW, limits.DELETION_IN_FLIGHT) == (
        1,
        1.0,
        8,
    )
    assert limits.MAX_IDS_PER_DELETION == 100
    assert (limits.DSAR_COST_LIMIT, limits.DSAR_POST_COST, limits.DSAR_GET_COST) == (14_400, 8, 1)
    assert limits.COST_POOL_LIMIT == 108_000
    assert limits.CANCEL_FREEZE_DAYS == 3
    assert limits.DELETION_LIST_MAX_DAYS <= 181  # the shortest six months


@pytest.mark.parametrize(
    ("pool", "capacity", "per_second", "slots"),
    [
        ("user", 18.0, 0.075, 8),
        ("deletion", 1.0, 0.75, 6),
        ("dsar", 720.0, 3.0, 0),
        ("cost", 250.0, 22.5, 0),
        ("rest", 1.0, None, 4),
    ],
)
def test_defaults_at_three_quarters(pool: str, capacity: float, per_second: float | None, slots: int) -> None:
    spec = POOLS[pool]
    assert bucket_capacity(spec, 0.75, min_call_cost(pool)) == capacity
    rate = bucket_rate(spec, 0.75, 1.0)
    assert rate == (pytest.approx(per_second) if per_second is not None else None)
    assert slot_count(spec, 0.75) == slots


@given(
    pool=st.sampled_from(sorted(p for p, s in POOLS.items() if s.limit is not None)),
    fraction=st.floats(0.05, 1.0),
)
def test_no_window_exceeds_the_documented_count(pool: str, fraction: float) -> None:
    spec = POOLS[pool]
    assert spec.limit is not None
    capacity = bucket_capacity(spec, fraction, min_call_cost(pool))
    rate = bucket_rate(spec, fraction, 1.0, min_call_cost(pool))
    assert rate is not None and spec.window is not None
    # Spends in any window of the documented length <= capacity + rate x window, in whole units.
    if spec.limit > 1:
        assert math.floor(capacity + rate * spec.window + 1e-9) <= spec.limit
    else:  # one per window: the spacing gate holds it, whatever the bucket
        assert min_interval(spec, 1.0) == spec.window
    assert capacity >= min_call_cost(pool)


@given(pool=st.sampled_from(sorted(POOLS)), fraction=st.floats(0.01, 1.0))
def test_slots_never_exceed_documented_concurrency(pool: str, fraction: float) -> None:
    spec = POOLS[pool]
    slots = slot_count(spec, fraction)
    if spec.concurrency is None:
        assert slots == 0
    else:
        assert 1 <= slots <= spec.concurrency


def test_rate_scale_multiplies_rate() -> None:
    assert bucket_rate(POOLS["user"], 0.75, 100.0) == pytest.approx(7.5)


def test_only_one_per_window_pools_have_a_spacing_gate() -> None:
    assert min_interval(POOLS["deletion"], 1.0) == 1.0
    assert min_interval(POOLS["deletion"], 4.0) == 0.25
    assert min_interval(POOLS["deletion"], 1.0, 0.75) == pytest.approx(4 / 3)
    assert min_interval(POOLS["user"], 1.0) == 0.0
    assert min_interval(POOLS["rest"], 1.0) == 0.0


def test_every_call_holds_a_rest_slot_except_dsar() -> None:
    for name, spec in POOLS.items():
        assert ("rest" in spec.holds) is (name != "dsar")


def test_unknown_pool() -> None:
    with pytest.raises(ValueError, match="unknown budget pool"):
        pool_spec("nope")
