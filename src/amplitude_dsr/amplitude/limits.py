"""Every number Amplitude documents about its limits, named once (facts: ``docs/amplitude.md#rate-limits``).

Pools (what a call spends from, see ``docs/client.md``):

===========  ==========================================  ========================  ===========
pool         calls                                       documented rate           concurrency
===========  ==========================================  ========================  ===========
``user``     usersearch, useractivity                    360 per 3600 s, project   10
``rest``     every Dashboard/privacy call (held too)     none                      5
``cost``     events/list and other cost-based calls      108,000 cost per 3600 s   (1,000 cost)
``deletion`` ``/api/2/deletions/users`` (POST/GET/DEL)   1 per 1 s, project        8
``dsar``     ``/api/2/dsar/requests*``                   14,400 cost per 3600 s    none
===========  ==========================================  ========================  ===========
"""

from __future__ import annotations

from dataclasses import dataclass

# --- User Search + User Activity pool (docs/amplitude.md#rate-limits) ---
USER_POOL_LIMIT = 360  # queries per window, per project
USER_POOL_WINDOW = 3600.0  # seconds (one hour)
USER_POOL_CONCURRENCY = 10  # concurrent requests, per project

# --- General REST concurrency (docs/amplitude.md#rate-limits): all REST endpoints, per project ---
REST_CONCURRENCY = 5

# --- Cost-based Dashboard endpoints (docs/amplitude.md#rate-limits) ---
COST_POOL_LIMIT = 108_000  # cost per window, per project
COST_POOL_WINDOW = 3600.0
COST_CONCURRENCY = 1_000  # cost "at the same time" / "within five minutes": caps the burst
EVENTS_LIST_COST = 1  # /api/2/events/list, like every unlisted endpoint, costs 1

# --- User Privacy API v1 (docs/amplitude.md#deletion-limits) ---
DELETION_RATE_LIMIT = 1  # requests per window on /api/2/deletions/users, per project
DELETION_RATE_WINDOW = 1.0  # seconds
DELETION_IN_FLIGHT = 8  # parallel requests per project
MAX_IDS_PER_DELETION = 100  # amplitude_ids + user_ids per request
DELETION_LIST_MAX_MONTHS = 6  # largest start_day..end_day range of GET (docs/amplitude.md#listing-deletion-jobs)
DELETION_LIST_MAX_DAYS = 180  # a window of 180 days is inside 6 months whatever the months
CANCEL_FREEZE_DAYS = 3  # a staging job is frozen this many days before its ``day`` (docs/amplitude.md#job-lifecycle)

# --- DSAR API (docs/amplitude.md#dsar-limits-and-sla) ---
DSAR_COST_LIMIT = 14_400  # cost per window, per org, shared by every DSAR endpoint
DSAR_COST_WINDOW = 3600.0
DSAR_POST_COST = 8  # POST /api/2/dsar/requests
DSAR_GET_COST = 1  # every GET: status polls and output downloads
DSAR_LINK_LIFETIME_DAYS = 2  # output links expire after two days (docs/amplitude.md#dsar-limits-and-sla)

# --- User Activity paging (docs/amplitude.md#user-activity) ---
USER_ACTIVITY_MAX_LIMIT = 1000  # events per page

# --- Backoff after a 429 (docs/amplitude.md#throttling-and-backoff: no Retry-After is documented) ---
CONCURRENCY_BACKOFF_BASE = 10.0  # seconds, for a concurrency limit (our choice: no wait is documented)
CONCURRENCY_BACKOFF_CAP = 60.0

# Budget-specific choice (not Amplitude's): the largest burst, as a share of the documented count.
BURST_SHARE = 0.05


@dataclass(frozen=True)
class PoolSpec:
    """One documented pool: ``limit`` units per ``window`` seconds (``None``: no rate limit),
    ``concurrency`` simultaneous requests (``None``: no cap), the pools whose concurrency
    slots a call also holds, and an optional documented cap on a burst (``burst_limit``)."""

    name: str
    limit: int | None
    window: float | None
    concurrency: int | None
    holds: tuple[str, ...]
    burst_limit: int | None = None


POOLS: dict[str, PoolSpec] = {
    "user": PoolSpec("user", USER_POOL_LIMIT, USER_POOL_WINDOW, USER_POOL_CONCURRENCY, ("user", "rest")),
    "rest": PoolSpec("rest", None, None, REST_CONCURRENCY, ("rest",)),
    "cost": PoolSpec("cost", COST_POOL_LIMIT, COST_POOL_WINDOW, None, ("rest",), burst_limit=COST_CONCURRENCY),
    "deletion": PoolSpec(
        "deletion",
        DELETION_RATE_LIMIT,
        DELETION_RATE_WINDOW,
        DELETION_IN_FLIGHT,
        ("deletion", "rest"),
    ),
    "dsar": PoolSpec("dsar", DSAR_COST_LIMIT, DSAR_COST_WINDOW, None, ()),
}


def pool_spec(pool: str) -> PoolSpec:
    """The :class:`PoolSpec` named ``pool``; ``ValueError`` for an unknown name."""
    try:
        return POOLS[pool]
    except KeyError:
        raise ValueError(f"unknown budget pool {pool!r}; known: {sorted(POOLS)}") from None


def bucket_rate(spec: PoolSpec, fraction: float, rate_scale: float, min_cost: int = 1) -> float | None:
    """Tokens per second we allow ourselves: ``fraction`` x documented rate x ``rate_scale``.

    Near ``fraction = 1`` the fraction is lowered so that the burst plus one window of refill
    still fits the documented count (one-per-window pools rely on :func:`min_interval`)."""
    if spec.limit is None or spec.window is None:
        return None
    if spec.limit > 1:
        capacity = bucket_capacity(spec, fraction, min_cost)
        fraction = min(fraction, (spec.limit - capacity) / spec.limit)
    return fraction * spec.limit * rate_scale / spec.window


def bucket_capacity(spec: PoolSpec, fraction: float, min_cost: int = 1) -> float:
    """The largest burst. Small enough that no window of the documented length ever sees more
    than the documented count: ``capacity + fraction * limit <= limit`` (whole units), capped at
    :data:`BURST_SHARE` of the count and at the documented burst cap, but never below the cost
    of one call (``min_cost``)."""
    if spec.limit is None:
        return float(min_cost)
    headroom = int(spec.limit * (1.0 - fraction))
    capacity = min(headroom, max(1, int(spec.limit * BURST_SHARE)))
    if spec.burst_limit is not None:
        capacity = min(capacity, int(spec.burst_limit * (1.0 - fraction)))
    return float(max(capacity, min_cost, 1))


def slot_count(spec: PoolSpec, fraction: float) -> int:
    """Concurrency slots we use: ``fraction`` of the documented cap (rounded half up, at least
    one), leaving the rest to other consumers of the same project (dashboards, other tools)."""
    if spec.concurrency is None:
        return 0
    return max(1, int(spec.concurrency * fraction + 0.5))


def min_call_cost(pool: str) -> int:
    """The dearest single call in ``pool``: the bucket must hold at least that much."""
    return DSAR_POST_COST if pool == "dsar" else 1


def min_interval(spec: PoolSpec, rate_scale: float, fraction: float = 1.0) -> float:
    """Seconds that must separate the starts of two calls of a pool documented as one call per
    window (deletions: 1 per second): our own steady spacing, ``window / (fraction x
    rate_scale)``, so a call that starts late never bunches up with the next one and the
    documented window keeps a margin for network jitter. Zero for pools with a larger count,
    where the bucket's small capacity leaves enough slack."""
    if spec.limit is None or spec.window is None or spec.limit > 1:
        return 0.0
    return spec.window / spec.limit / (rate_scale * fraction)
