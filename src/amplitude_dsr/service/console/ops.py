"""``/ui/budgets``, ``/ui/workers`` and ``/ui/audit``: what the database knows of the Amplitude
budgets, the executors and DBOS's queues, and the audit chain's check.

Only figures the database holds are shown: the budget's buckets, and its history of calls and
429s per five minutes that every process records (``amplitude/budget_history.py``), drawn as a
24-hour chart per pool (``charts.py``, server-rendered SVG).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from amplitude_dsr.amplitude.adaptive import MIN_RECOVERY_WINDOW, current_factor
from amplitude_dsr.amplitude.hosts import scope_key
from amplitude_dsr.amplitude.limits import bucket_capacity, bucket_rate, min_call_cost, pool_spec
from amplitude_dsr.dsr.connections import advisory_key
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.errors import AuditTamperDetected
from amplitude_dsr.service.console import charts
from amplitude_dsr.service.console.charts import Chart
from amplitude_dsr.service.console.session import Viewer
from amplitude_dsr.service.console.web import render, viewer
from amplitude_dsr.service.context import service_of
from amplitude_dsr.store import audit, console_repo, pauses

router = APIRouter(prefix="/ui", include_in_schema=False)
# How long a request may stay in a state before the workers page lists it as stuck: states a
# running executor leaves in seconds or minutes (a DSAR export may keep `collecting` for hours).
STUCK_AFTER = {
    "received": timedelta(minutes=15), "resolving": timedelta(hours=1), "resolved": timedelta(hours=1),
    "queued": timedelta(hours=1), "collecting": timedelta(hours=24), "verifying": timedelta(hours=1),
}  # fmt: skip
UNSTICK = {
    "received": "No executor has started it: check that a worker (or `serve` without --no-worker) runs.",
}
UNSTICK_DEFAULT = (
    "Its workflow stopped moving: a running worker resumes workflows that stopped after a database fault "
    "(its stall watch) and takes over those of a dead executor, from their last checkpoint; with no "
    "worker running, start `amplitude-dsr worker`. A deletion can also be cancelled from its page."
)


@dataclass(frozen=True)
class Pool:
    """One budget bucket as the database holds it, and what follows from it now."""

    pool: str
    scope: str
    owner: str  # the configured project (or the organisation) whose keys the scope is
    room: float | None  # tokens available now (None: the pool has no rate limit)
    capacity: float
    rate_per_hour: float | None  # our refill rate now (configured rate x adaptive factor)
    factor: float
    paused_until: datetime | None
    throttled_last_hour: int = 0  # 429s every process met in the buckets begun in the last hour
    chart: Chart | None = None  # calls and 429s per hour, the last 24 hours


def room_now(tokens: float, updated_at: float, rate: float | None, capacity: float, now: float) -> float | None:
    """The bucket's balance refilled at ``rate`` tokens/s since ``updated_at``, capped."""
    if rate is None:
        return None
    return min(capacity, tokens + max(0.0, now - updated_at) * rate)


def owners(rt: Runtime) -> dict[str, str]:
    """Budget scope (a short digest of an API key) -> the project or organisation it belongs to."""
    names = {scope_key(p): f"project {p.name}" for p in rt.settings.projects}
    if rt.settings.org is not None:
        names[scope_key(rt.settings.org)] = "organisation (DSAR)"
    return names


def pools(rt: Runtime, now: float) -> list[Pool]:
    """Every bucket of the database (one query)."""
    budget = rt.budget
    names = owners(rt)
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(budget.bucket).order_by(budget.bucket.c.scope, budget.bucket.c.pool)).all()
    spent = {(s.pool, s.scope): s for s in budget.spent()}
    end = datetime.fromtimestamp(now, UTC)
    found = []
    for r in rows:
        try:
            spec = pool_spec(r.pool)
        except ValueError:  # a pool of another version
            continue
        cost = min_call_cost(r.pool)
        window = None if spec.window is None else spec.window / budget.rate_scale
        factor = current_factor(r.factor, r.factor_at, now, window, MIN_RECOVERY_WINDOW / budget.rate_scale)
        base = bucket_rate(spec, budget.fraction, budget.rate_scale, cost)
        rate = None if base is None else base * factor
        paused = r.paused_until > now
        capacity = bucket_capacity(spec, budget.fraction, cost)
        room = 0.0 if paused and rate is not None else room_now(r.tokens, r.updated_at, rate, capacity, now)
        history = spent.get((r.pool, r.scope))
        found.append(
            Pool(
                pool=r.pool,
                scope=r.scope,
                owner=names.get(r.scope, "keys not configured in this process"),
                room=room,
                capacity=capacity,
                rate_per_hour=None if rate is None else rate * 3600,
                factor=factor,
                paused_until=datetime.fromtimestamp(r.paused_until, UTC) if paused else None,
                throttled_last_hour=history.throttled_last_hour if history else 0,
                chart=charts.hourly_bars(history.calls, history.throttled, end) if history else None,
            )
        )
    return found


@router.get("/budgets")
def budgets(request: Request, who: Viewer = Depends(viewer)) -> Response:
    """Each Amplitude pool per project (and the DSAR pool per org), and paused projects."""
    rt = service_of(request).rt
    context = {"pools": pools(rt, time.time()), "pauses": pauses.active(rt.engine)}
    return render(request, "budgets.html", context, who=who)


def lock_holders(rt: Runtime, executor_ids: list[str]) -> dict[str, str]:
    """Per executor ID: whether its lock is held, as far as this process can tell without taking
    it (PostgreSQL: ``pg_locks``; SQLite: an OS file lock, which cannot be read)."""
    if rt.engine.dialect.name != "postgresql":
        return dict.fromkeys(executor_ids, "not readable here (SQLite file lock)")
    keys = {e: advisory_key(e) for e in executor_ids}
    with rt.engine.connect() as conn:
        held = {
            (int(c), int(o))
            for c, o in conn.execute(
                sa.text("SELECT classid, objid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1")
            )
        }
    return {
        e: "held (alive)" if ((k >> 32) & 0xFFFFFFFF, k & 0xFFFFFFFF) in held else "free (gone)"
        for e, k in keys.items()
    }


def span(value: timedelta) -> str:
    """``15 minutes``, ``1 hour``, ``24 hours``."""
    minutes = int(value.total_seconds() // 60)
    count, unit = (minutes // 60, "hour") if minutes % 60 == 0 else (minutes, "minute")
    return f"{count} {unit}{'s' if count != 1 else ''}"


@router.get("/workers")
def workers(request: Request, who: Viewer = Depends(viewer)) -> Response:
    """Executors running workflows, their latest recorded progress, queue depths, and requests
    stuck in one state longer than expected."""
    rt = service_of(request).rt
    seen = console_repo.executors(rt.engine)
    locks = lock_holders(rt, [e.executor_id for e in seen])
    now = datetime.now(UTC)
    stalled = console_repo.stuck(rt.engine, {state: now - after for state, after in STUCK_AFTER.items()})
    context: dict[str, Any] = {
        "executors": [(e, locks.get(e.executor_id, "")) for e in seen],
        "stuck": [(r, span(STUCK_AFTER[r.status]), UNSTICK.get(r.status, UNSTICK_DEFAULT)) for r in stalled],
        "queues": console_repo.queue_depths(rt.engine),
        "this_process": {"executor_id": rt.executor_id, "executor": rt.executor},
    }
    return render(request, "workers.html", context, who=who)


@router.get("/audit")
def audit_check(request: Request, who: Viewer = Depends(viewer)) -> Response:
    """Walk the whole audit chain (every entry's hash and link) and show its head."""
    started = time.monotonic()
    with service_of(request).rt.engine.connect() as conn:
        try:
            head, broken = audit.verify(conn), None
        except AuditTamperDetected as exc:
            head, broken = None, str(exc)
    context = {"head": head, "broken": broken, "seconds": time.monotonic() - started}
    return render(request, "audit.html", context, who=who)
