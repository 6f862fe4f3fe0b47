"""Retry decisions and exact waits (the random part is injected)."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplitude_dsr.amplitude.limits import POOLS
from amplitude_dsr.amplitude.retry import (
    JITTER_SPREAD,
    Backoff,
    backoff_delay,
    is_concurrency_limit,
    out_of_retries,
    rate_limit_backoff,
    should_retry,
)
from amplitude_dsr.errors import (
    AuthenticationError,
    BadRequest,
    BudgetExhausted,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UncertainOutcome,
)


def _sent_failure() -> TransportError:
    error = TransportError("read timeout")
    error.__cause__ = httpx.ReadTimeout("slow")
    return error


def _unsent_failure() -> TransportError:
    error = TransportError("refused")
    error.__cause__ = httpx.ConnectError("refused")
    return error


@pytest.mark.parametrize(
    ("exc", "safe", "expected"),
    [
        (RateLimited("429"), True, True),
        (RateLimited("429"), False, True),  # refused: nothing happened, even for a POST
        (ServerError("500", status=500), True, True),
        (ServerError("500", status=500), False, False),
        (_sent_failure(), True, True),
        (_sent_failure(), False, False),
        (_unsent_failure(), False, True),  # never left: safe to send again
        (BadRequest("400"), True, False),
        (AuthenticationError("401"), True, False),
        (NotFound("404"), True, False),
        (MalformedResponse("junk"), True, True),  # transient, like a 5xx
        (MalformedResponse("junk"), False, False),  # a POST: uncertain, never re-sent
        (UncertainOutcome("?"), True, False),
        (ValueError("x"), True, False),
    ],
)
def test_should_retry(exc: BaseException, safe: bool, expected: bool) -> None:
    assert should_retry(exc, safe=safe) is expected


def test_budget_exhausted_is_not_retried_inline() -> None:
    from datetime import UTC, datetime

    assert not should_retry(BudgetExhausted("later", resume_at=datetime.now(UTC)), safe=True)


@pytest.mark.parametrize(("attempt", "expected"), [(1, 10.0), (2, 20.0), (3, 40.0), (4, 60.0), (5, 60.0)])
def test_backoff_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    assert backoff_delay(attempt, None, base=10.0, cap=60.0, jitter=0.0) == expected


def test_jitter_shortens_by_at_most_the_spread() -> None:
    assert backoff_delay(1, None, base=10.0, cap=60.0, jitter=1.0) == pytest.approx(10.0 * (1 - JITTER_SPREAD))
    assert backoff_delay(2, None, base=10.0, cap=60.0, jitter=0.5) == pytest.approx(20.0 * (1 - JITTER_SPREAD / 2))


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(0.0, 0.0), (3.0, 3.0), (59.0, 59.0), (600.0, 60.0), (-5.0, 0.0)]
)
def test_retry_after_wins_clamped_and_unjittered(retry_after: float, expected: float) -> None:
    assert backoff_delay(3, retry_after, base=10.0, cap=60.0, jitter=0.9) == expected


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, None, 1.0, 2.0)


@given(
    attempt=st.integers(1, 60),
    base=st.floats(0.01, 100),
    cap=st.floats(0.01, 10_000),
    jitter=st.floats(0, 1),
)
def test_backoff_never_exceeds_cap(attempt: int, base: float, cap: float, jitter: float) -> None:
    delay = backoff_delay(attempt, None, base, cap, jitter)
    assert 0 < delay <= max(cap, 0.01)


@pytest.mark.parametrize(
    ("pool", "scale", "concurrency", "expected"),
    [
        ("user", 1.0, False, Backoff(300.0, 3600.0)),  # hourly window: 5 min, up to the hour
        ("user", 1.0, True, Backoff(10.0, 60.0)),  # "about 10 s for the concurrency pool"
        ("dsar", 1.0, False, Backoff(300.0, 3600.0)),
        ("deletion", 1.0, False, Backoff(10.0, 60.0)),
        ("rest", 1.0, False, Backoff(10.0, 60.0)),
        ("user", 100.0, False, Backoff(3.0, 36.0)),  # emulator at 100x
    ],
)
def test_rate_limit_backoff(pool: str, scale: float, concurrency: bool, expected: Backoff) -> None:
    got = rate_limit_backoff(POOLS[pool], scale, concurrency)
    assert got.base == pytest.approx(expected.base)
    assert got.cap == pytest.approx(expected.cap)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"limit": "rest: 5 concurrent requests"}', True),
        ('{"limit": "deletions: 8 requests in flight"}', True),
        ('{"limit": "usersearch/useractivity: 360 queries per hour"}', False),
        ("", False),
    ],
)
def test_concurrency_limit_detection(body: str, expected: bool) -> None:
    assert is_concurrency_limit(body) is expected


@pytest.mark.parametrize(
    ("attempt", "elapsed", "delay", "expected"),
    [(1, 0.0, 1.0, False), (5, 0.0, 1.0, True), (2, 119.0, 0.5, False), (2, 119.0, 2.0, True)],
)
def test_out_of_retries(attempt: int, elapsed: float, delay: float, expected: bool) -> None:
    assert out_of_retries(attempt, elapsed, delay, max_attempts=5, max_retry_time=120.0) is expected
