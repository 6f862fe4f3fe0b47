"""How our share of a pool adapts after a 429: additive increase, multiplicative decrease.

A 429 in a pool we pace at 75 % of the documented limit means somebody else (a dashboard, another
integration on the same project) is spending the rest. Pausing alone does not help: we would
resume at 75 % and hit the same wall one window later. So the budget also keeps a *factor* per
pool and scope (in the database, shared by every process):

* a 429 that starts a new pause multiplies the factor by :data:`DECREASE` (never below
  :data:`MIN_FACTOR`); further 429s from calls that were already in flight during that pause
  change nothing, so a burst of simultaneous refusals counts once;
* the factor then grows back by :data:`RECOVERY_PER_WINDOW` per documented window (the pool's
  window divided by ``rate_scale``), but never faster than once per :data:`MIN_RECOVERY_WINDOW`
  (a pool counted per second, like deletions, would otherwise be back at full rate ten seconds
  after a 429 and hit the other consumer again at once), counted from the end of the pause, up
  to 1.

The steady rate is ``factor x fraction x documented rate``. If the other consumer keeps taking a
share ``s`` of the pool, the next 429 can only come once the factor has climbed back above
``(1 - s) / fraction``, which takes whole windows: the number of 429s is bounded by the recovery
speed, not by how often the pause ends.
"""

from __future__ import annotations

DECREASE = 0.5  # factor multiplier after a 429
MIN_FACTOR = 0.1  # never below 10 % of our configured rate: progress continues
RECOVERY_PER_WINDOW = 0.1  # factor regained per documented window after the pause ends
MIN_RECOVERY_WINDOW = 60.0  # documented seconds: the shortest window the factor recovers over


def current_factor(
    factor: float, since: float, now: float, window: float | None, min_window: float = MIN_RECOVERY_WINDOW
) -> float:
    """The factor at ``now``, given it was ``factor`` at ``since`` and recovers linearly by
    :data:`RECOVERY_PER_WINDOW` per ``max(window, min_window)`` seconds (``window`` ``None``:
    pool without a rate). Both are in the same (possibly scaled) seconds."""
    if window is None or window <= 0:
        return 1.0
    return min(1.0, factor + max(0.0, now - since) * RECOVERY_PER_WINDOW / max(window, min_window))


def decreased(factor: float) -> float:
    """The factor after a 429 that starts a new pause."""
    return max(MIN_FACTOR, factor * DECREASE)
