"""Admin routes that steer behaviour: faults, external load, limits, synthetic DSAR outputs."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import Fault
from .limits import POOL_ALIASES, WINDOWS
from .world import World


def error(status: int, message: str) -> JSONResponse:
    """A JSON error response."""
    return JSONResponse({"error": message}, status_code=status)


async def body_of(request: Request) -> dict[str, Any]:
    """The JSON object body of an admin call ({} when empty)."""
    raw = await request.body()
    parsed = json.loads(raw) if raw else {}
    if not isinstance(parsed, dict):
        raise ValueError("body must be a JSON object")
    return parsed


def register_ops(app: FastAPI, world: World) -> None:
    """Add the fault, load, limit and synthetic-output admin routes."""

    @app.post("/_admin/faults")
    async def inject(request: Request) -> JSONResponse:
        body = await body_of(request)
        count = body.get("count", 1)
        fault = Fault(
            kind=str(body.get("kind")),
            path=body.get("path"),
            method=body.get("method"),
            project=body.get("project"),
            count=None if count is None else int(count),
            delay=float(body.get("delay") or 1.0),
            retry_after=None if body.get("retry_after") is None else float(body["retry_after"]),
        )
        try:
            world.faults.add(fault)
        except ValueError as exc:
            return error(400, str(exc))
        return JSONResponse(asdict(fault))

    @app.get("/_admin/faults")
    async def list_faults() -> JSONResponse:
        return JSONResponse([asdict(f) for f in world.faults.active()])

    @app.delete("/_admin/faults")
    async def clear_faults() -> JSONResponse:
        world.faults.clear()
        return JSONResponse({"cleared": True})

    @app.post("/_admin/external_load")
    async def external_load(request: Request) -> JSONResponse:
        body = await body_of(request)
        pool = POOL_ALIASES.get(str(body.get("pool")), str(body.get("pool")))
        if pool not in WINDOWS:
            return error(400, f"unknown pool {pool!r}; expected one of {sorted(WINDOWS)}")
        scope = "org" if pool == "dsar" else body.get("project")
        if scope is not None and scope != "org" and scope not in world.projects:
            return error(404, f"unknown project {scope!r}")
        fraction = float(body.get("fraction") or 0)
        world.limits.set_external(pool, scope, fraction)
        return JSONResponse({"pool": pool, "project": scope, "fraction": fraction})

    @app.post("/_admin/move_job")
    async def move_job(request: Request) -> JSONResponse:
        body = await body_of(request)
        project = str(body.get("project"))
        if project not in world.projects:
            return error(404, f"unknown project {project!r}")
        try:
            day, to_day = date.fromisoformat(str(body.get("day"))), date.fromisoformat(str(body.get("to_day")))
        except ValueError:
            return error(400, "day and to_day must be YYYY-MM-DD")
        with world.lock:
            job = world.deletions.move(project, day, to_day)
        if job is None:
            return error(404, f"no pending deletion job of {project!r} on {day.isoformat()}")
        return JSONResponse({"project": project, "day": to_day.isoformat(), "moved_from": day.isoformat()})

    @app.post("/_admin/limits")
    async def limits(request: Request) -> JSONResponse:
        body = await body_of(request)
        if "rate_scale" in body:
            scale = float(body["rate_scale"])
            if scale <= 0:
                return error(400, "rate_scale must be > 0")
            world.limits.rate_scale = scale
        if "enforce" in body:
            world.limits.enforce = bool(body["enforce"])
        if body.get("reset"):
            world.limits.reset()
        return JSONResponse({"rate_scale": world.limits.rate_scale, "enforce": world.limits.enforce})

    @app.post("/_admin/dsar_synthetic")
    async def dsar_synthetic(request: Request) -> JSONResponse:
        body = await body_of(request)
        amplitude_id = int(body.get("amplitude_id", 0))
        approx = int(body.get("approx_bytes") or 0)
        with world.lock:
            known = any(world.find_by_amplitude_id(n, amplitude_id) for n in world.projects)
            if not known:
                return error(404, "unknown amplitude_id")
            if approx <= 0:
                world.dsar.synthetic.pop(amplitude_id, None)
            else:
                world.dsar.synthetic[amplitude_id] = approx
        return JSONResponse({"amplitude_id": amplitude_id, "approx_bytes": approx})
