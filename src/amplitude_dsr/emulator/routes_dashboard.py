"""Dashboard REST routes: User Search, User Activity, events/list (facts: docs/amplitude.md)."""

from __future__ import annotations

from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .world import ACTIVITY_MAX_LIMIT, World


def bad_request(message: str) -> JSONResponse:
    """A 400 with a JSON error body."""
    return JSONResponse({"error": message}, status_code=400)


def _int_param(request: Request, name: str, default: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def register(app: FastAPI, world: World) -> None:
    """Add the dashboard routes."""

    @app.get("/api/2/usersearch")
    async def usersearch(request: Request) -> JSONResponse:
        query = request.query_params.get("user", "")
        if not query:
            return bad_request("missing required parameter: user")
        return JSONResponse(world.search(request.state.project, query))

    @app.get("/api/2/useractivity")
    async def useractivity(request: Request) -> JSONResponse:
        user = request.query_params.get("user", "")
        if not user.isdigit():
            return bad_request("user must be a numeric Amplitude ID")
        offset = _int_param(request, "offset", 0)
        limit = _int_param(request, "limit", ACTIVITY_MAX_LIMIT)
        if offset is None or offset < 0:
            return bad_request("offset must be a non-negative integer")
        if limit is None or limit < 1:
            return bad_request("limit must be a positive integer")
        if limit > ACTIVITY_MAX_LIMIT:
            return bad_request(f"limit must be at most {ACTIVITY_MAX_LIMIT}")
        direction = request.query_params.get("direction", "latest")
        if direction not in ("latest", "earliest"):
            return bad_request("direction must be 'latest' or 'earliest'")
        body = world.activity(request.state.project, int(user), offset, limit, direction)
        return JSONResponse(body)

    @app.get("/api/2/events/list")
    async def events_list(request: Request) -> JSONResponse:
        totals: Counter[str] = Counter()
        with world.lock:
            for user in world.live_users(request.state.project):
                totals.update(e.event_type for e in user.events)
        data = [
            {
                "value": name,
                "display": name,
                "totals": count,
                "hidden": False,
                "deleted": False,
                "non_active": False,
                "flow_hidden": False,
            }
            for name, count in sorted(totals.items())
        ]
        return JSONResponse({"data": data})
