"""``GET /metrics``: Prometheus text exposition of what the service knows from the database:
requests by kind and state, callback deliveries by outcome, the depth of the workflow queues, and
each Amplitude budget pool's room and 429s. Counts only, no identifier (a budget is labelled by
its configured project's name); no token (scrape it from inside your network).

Every figure is read from the database, shared by every process of a deployment, so any service
process (API-only or not) reports the same numbers."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from amplitude_dsr.dsr import operations
from amplitude_dsr.service.context import Service, service_of
from amplitude_dsr.store import service_repo

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "amplitude_dsr"
router = APIRouter(tags=["Operations"])


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def family(name: str, kind: str, text: str, samples: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    """One metric family: its HELP and TYPE lines, then one line per sample."""
    lines = [f"# HELP {PREFIX}_{name} {text}", f"# TYPE {PREFIX}_{name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{PREFIX}_{name}{{{inner}}} {_number(value)}" if inner else f"{PREFIX}_{name} {_number(value)}")
    return lines


def exposition(service: Service) -> str:
    """The metrics document (Prometheus text format 0.0.4)."""
    rt = service.rt
    engine = rt.engine
    lines = family(
        "requests", "gauge", "Requests by kind and state (docs/cli.md, the request document).",
        (({"kind": k, "state": s}, n) for k, s, n in sorted(service_repo.requests_by_state(engine))),
    )  # fmt: skip
    lines += family(
        "callbacks", "gauge", "Status callback deliveries by outcome (failing: pending after a failed try).",
        (({"outcome": o}, n) for o, n in sorted(service_repo.delivery_counts(engine).items())),
    )  # fmt: skip
    lines += family(
        "callback_failed_attempts_total", "counter",
        "Callback POSTs that failed (non-2xx, timeout, connection error), over the deliveries recorded.",
        [({}, service_repo.failed_attempts(engine))],
    )  # fmt: skip
    lines += family(
        "queue_workflows", "gauge",
        "Workflows per DBOS queue: enqueued (waiting for a worker) or pending (running).",
        (({"queue": q.queue, "status": q.status.lower()}, q.count) for q in operations.queue_depth(rt)),
    )  # fmt: skip
    rooms = operations.budget_room(rt)

    def per_pool(value: str) -> Iterable[tuple[dict[str, str], float]]:
        for b in rooms:
            number = getattr(b.room, value)
            if number is not None:  # tokens and capacity: pools with a rate only
                yield {"project": b.project, "pool": b.room.pool}, number

    lines += family(
        "budget_tokens", "gauge",
        "Budget room: tokens free now per Amplitude pool (negative: reserved by waiting calls).", per_pool("tokens"),
    )  # fmt: skip
    lines += family("budget_capacity", "gauge", "The most tokens a pool's bucket holds.", per_pool("capacity"))
    lines += family(
        "budget_rate_factor", "gauge", "Share of the configured rate a pool runs at (below 1 after 429s).",
        per_pool("factor"),
    )  # fmt: skip
    lines += family(
        "budget_paused_seconds", "gauge", "Seconds a pool stays paused after a 429.", per_pool("paused_for")
    )
    lines += family(
        "budget_slots_held", "gauge", "Concurrency slots of a pool held by calls in flight.", per_pool("slots_held")
    )
    lines += family(
        "amplitude_429_total", "counter",
        "HTTP 429 answers from Amplitude per pool, counted in the database by every process since the pool's "
        "first use.",
        per_pool("throttled"),
    )  # fmt: skip
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics (text format)."""
    text = await run_in_threadpool(exposition, service_of(request))
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
