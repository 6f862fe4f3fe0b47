"""The rate factor after a 429 (pure functions): bounded, monotonic, and the 429 count it implies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplitude_dsr.amplitude.adaptive import (
    DECREASE,
    MIN_FACTOR,
    MIN_RECOVERY_WINDOW,
    RECOVERY_PER_WINDOW,
    current_factor,
    decreased,
)

factors = st.floats(min_value=MIN_FACTOR, max_value=1.0)
seconds = st.floats(min_value=0.0, max_value=1e7)
windows = st.floats(min_value=0.01, max_value=1e5)


@given(factors, seconds, seconds, windows)
def test_the_factor_stays_between_the_floor_and_one_and_never_falls_with_time(
    factor: float, a: float, b: float, window: float
) -> None:
    early, late = sorted((a, b))
    at_early = current_factor(factor, 0.0, early, window)
    at_late = current_factor(factor, 0.0, late, window)
    assert MIN_FACTOR <= at_early <= at_late <= 1.0


@given(factors)
def test_a_429_lowers_the_factor_but_not_below_the_floor(factor: float) -> None:
    lower = decreased(factor)
    assert MIN_FACTOR <= lower <= factor
    assert lower == pytest.approx(max(MIN_FACTOR, factor * DECREASE))


def test_recovery_is_linear_per_window_and_starts_at_since() -> None:
    assert current_factor(0.5, 100.0, 50.0, 10.0, 0.0) == 0.5  # before the pause ended
    assert current_factor(0.5, 100.0, 120.0, 10.0, 0.0) == pytest.approx(0.5 + 2 * RECOVERY_PER_WINDOW)
    assert current_factor(0.5, 100.0, 1e6, 10.0, 0.0) == 1.0


def test_a_per_second_pool_recovers_no_faster_than_the_minimum_window() -> None:
    """Deletions are counted per second: recovering a tenth per second would be back at full
    rate ten seconds after a 429. The factor recovers a tenth per MIN_RECOVERY_WINDOW instead."""
    assert current_factor(0.5, 0.0, 10.0, 1.0) == pytest.approx(0.5 + 10 / MIN_RECOVERY_WINDOW * RECOVERY_PER_WINDOW)
    assert current_factor(0.5, 0.0, MIN_RECOVERY_WINDOW, 1.0) == pytest.approx(0.5 + RECOVERY_PER_WINDOW)
    # An hourly pool is unaffected.
    assert current_factor(0.5, 0.0, 3600.0, 3600.0) == pytest.approx(0.5 + RECOVERY_PER_WINDOW)


def test_an_external_consumer_taking_90_percent_of_a_per_second_pool_costs_few_429s() -> None:
    """Simulate a 1-second pool for an hour: we run at 0.75 x factor, another consumer at 0.9;
    an episode (429, pause, halving) happens whenever the sum exceeds the limit. With the
    minimum recovery window the episodes stay at about one per minute or less, not one every
    few seconds (a tenth per second would recover to the wall in about a second)."""
    factor, since, episodes = 1.0, 0.0, 0
    for second in range(3600):
        now = float(second)
        if 0.75 * current_factor(factor, since, now, 1.0) + 0.9 > 1.0:
            episodes += 1
            factor, since = decreased(current_factor(factor, since, now, 1.0)), now + 1
    assert episodes <= 3600 // 20
    without_floor, since2, factor2 = 0, 0.0, 1.0
    for second in range(3600):
        now = float(second)
        if 0.75 * current_factor(factor2, since2, now, 1.0, 0.0) + 0.9 > 1.0:
            without_floor += 1
            factor2, since2 = decreased(current_factor(factor2, since2, now, 1.0, 0.0)), now + 1
    assert episodes * 5 < without_floor


def test_pools_without_a_rate_always_run_at_one() -> None:
    assert current_factor(0.1, 0.0, 0.0, None) == 1.0


def test_a_consumer_taking_half_the_pool_costs_a_bounded_number_of_episodes() -> None:
    """Simulate windows: we run at 0.75 x factor, another consumer at 0.5 of the limit; an
    episode (a pause and a halving) happens whenever the sum exceeds the limit. Over 100
    windows the episodes are at most one per (recovery to the wall) period, not one per window."""
    factor, since, episodes = 1.0, 0.0, 0
    for window in range(100):
        now = float(window)
        if 0.75 * current_factor(factor, since, now, 1.0, 0.0) + 0.5 > 1.0:
            episodes += 1
            factor, since = decreased(current_factor(factor, since, now, 1.0, 0.0)), now + 1
    # From 0.5 back above 2/3 takes two windows: an episode every third window at most.
    assert episodes <= 100 // 3 + 1
    assert episodes > 1  # and we keep probing for the freed share: the rate is not stuck low
