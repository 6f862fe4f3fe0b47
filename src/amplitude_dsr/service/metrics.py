"""``GET /metrics``: Prometheus text exposition of what the service knows from the database:
requests by kind and state, and callback deliveries by outcome. Counts only, no identifier; no
token (scrape it from inside your network)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from amplitude_dsr.service.context import Service, service_of
from amplitude_dsr.store import service_repo

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
router = APIRouter(tags=["Operations"])


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(service: Service) -> str:
    """The metrics document (Prometheus text format 0.0.4)."""
    engine = service.rt.engine
    lines = [
        "# HELP amplitude_dsr_requests Requests by kind and state (docs/cli.md, the request document).",
        "# TYPE amplitude_dsr_requests gauge",
    ]
    for kind, state, count in sorted(service_repo.requests_by_state(engine)):
        lines.append(f'amplitude_dsr_requests{{kind="{_label(kind)}",state="{_label(state)}"}} {count}')
    lines += [
        "# HELP amplitude_dsr_callbacks Status callback deliveries by outcome (failing: pending after a failed try).",
        "# TYPE amplitude_dsr_callbacks gauge",
    ]
    for outcome, count in sorted(service_repo.delivery_counts(engine).items()):
        lines.append(f'amplitude_dsr_callbacks{{outcome="{outcome}"}} {count}')
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics (text format)."""
    text = await run_in_threadpool(exposition, service_of(request))
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
