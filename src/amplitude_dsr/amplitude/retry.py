"""Retry decisions and waits as pure functions ("should we", "how long", "the random part").

Tests assert exact waits by passing ``jitter`` explicitly; the client passes ``random.random()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amplitude_dsr.amplitude.limits import (
    CONCURRENCY_BACKOFF_BASE,
    CONCURRENCY_BACKOFF_CAP,
    PoolSpec,
)
from amplitude_dsr.amplitude.transport import request_was_not_sent
from amplitude_dsr.errors import RateLimited, RetriableError

JITTER_SPREAD = 0.25  # a jittered wait lies in [0.75 x, 1.0 x] of the computed wait
SERVER_RETRY_BASE = 0.5  # seconds before the first retry of a 5xx / transport failure
SERVER_RETRY_CAP = 30.0
MIN_WAIT = 0.01  # never spin


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff parameters: the first wait ``base``, doubling, at most ``cap``."""

    base: float
    cap: float


def should_retry(exc: BaseException, *, safe: bool) -> bool:
    """Whether the call that raised ``exc`` may be repeated.

    A 429 means Amplitude refused the request and nothing happened, so it is retried even for
    a non-idempotent call. A 5xx or a transport failure is retried only for ``safe`` calls,
    or when the request provably never left (a connect failure). Everything else is final.
    """
    if isinstance(exc, RateLimited):
        return True
    if isinstance(exc, RetriableError):
        return safe or request_was_not_sent(exc)
    return False


def backoff_delay(attempt: int, retry_after: float | None, base: float, cap: float, jitter: float = 0.0) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

    ``Retry-After`` wins when present, clamped to ``[0, cap]`` and not jittered (the server
    said when). Otherwise ``min(cap, base * 2 ** (attempt - 1))``, shortened by up to
    :data:`JITTER_SPREAD` according to ``jitter`` in ``[0, 1)``.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return max(MIN_WAIT, delay * (1.0 - JITTER_SPREAD * min(max(jitter, 0.0), 1.0)))


def is_concurrency_limit(body_excerpt: str) -> bool:
    """True when a 429 body names a concurrency limit rather than a per-window count."""
    text = body_excerpt.lower()
    return "concurren" in text or "in flight" in text or "parallel" in text


def rate_limit_backoff(spec: PoolSpec, rate_scale: float, concurrency: bool) -> Backoff:
    """Backoff after a 429 in pool ``spec``.

    Concurrency limits free up as soon as requests finish: start at about 10 s
    (``docs/amplitude.md#throttling-and-backoff``). A per-window count frees up only as the window slides: start at a
    twelfth of the window (5 min for an hourly pool) and allow up to the whole window. Both are
    divided by ``rate_scale`` (faster windows in the emulator or under a bigger contract).
    """
    scale = max(rate_scale, 1e-9)
    if concurrency or spec.window is None:
        return Backoff(CONCURRENCY_BACKOFF_BASE / scale, CONCURRENCY_BACKOFF_CAP / scale)
    base = max(spec.window / 12.0, CONCURRENCY_BACKOFF_BASE)
    cap = max(spec.window, CONCURRENCY_BACKOFF_CAP)
    return Backoff(base / scale, cap / scale)


SERVER_BACKOFF = Backoff(SERVER_RETRY_BASE, SERVER_RETRY_CAP)


def out_of_retries(attempt: int, elapsed: float, next_delay: float, max_attempts: int, max_retry_time: float) -> bool:
    """True when another attempt would exceed ``max_attempts`` or ``max_retry_time`` seconds."""
    return attempt >= max_attempts or elapsed + next_delay > max_retry_time
