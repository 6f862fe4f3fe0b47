"""DSAR routes (docs/amplitude.md#dsar-export-api) and the storage host that serves the outputs."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from .routes_dashboard import bad_request
from .world import World


def base_url(request: Request) -> str:
    """The URL root the client used, including ``/eu`` for the EU region."""
    root = f"{request.url.scheme}://{request.url.netloc}"
    return root + ("/eu" if request.state.region == "eu" else "")


def storage_host(request: Request) -> str:
    """A different host name on the same port: 127.0.0.1 <-> localhost."""
    host = request.url.hostname or "127.0.0.1"
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host, host)
    port = request.url.port
    return f"{other}:{port}" if port else other


def _date(body: dict[str, Any], name: str) -> date | None:
    value = body.get(name)
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def register(app: FastAPI, world: World) -> None:
    """Add the DSAR and storage routes."""

    @app.post("/api/2/dsar/requests")
    async def create(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return bad_request("request body must be JSON")
        if not isinstance(body, dict):
            return bad_request("request body must be a JSON object")
        user_id, amplitude_id = body.get("userId"), body.get("amplitudeId")
        if isinstance(amplitude_id, str) and amplitude_id.isdigit():
            amplitude_id = int(amplitude_id)
        if user_id is None and amplitude_id is None:
            return bad_request("userId or amplitudeId is required")
        if amplitude_id is not None and (not isinstance(amplitude_id, int) or isinstance(amplitude_id, bool)):
            return bad_request("amplitudeId must be an integer")
        start, end = _date(body, "startDate"), _date(body, "endDate")
        if start is None or end is None:
            return bad_request("startDate and endDate are required, formatted YYYY-MM-DD")
        if end < start:
            return bad_request("endDate must not be before startDate")
        with world.lock:
            req = world.dsar.create(
                request.state.region,
                None if user_id is None else str(user_id),
                amplitude_id,
                start,
                end,
            )
        return JSONResponse({"requestId": req.request_id}, status_code=202)

    @app.get("/api/2/dsar/requests/{request_id}")
    async def status(request: Request, request_id: str) -> JSONResponse:
        with world.lock:
            req = world.dsar.requests.get(int(request_id)) if request_id.isdigit() else None
            if req is None or req.region != request.state.region:
                return JSONResponse({"error": "DSAR request not found"}, status_code=404)
            now = world.clock.now()
            if now >= req.done_at:
                world.dsar.finish(req)
            return JSONResponse(world.dsar.wire(req, now, base_url(request)))

    @app.get("/api/2/dsar/requests/{request_id}/outputs/{output_id}")
    async def output(request: Request, request_id: str, output_id: str) -> Response:
        with world.lock:
            req = world.dsar.requests.get(int(request_id)) if request_id.isdigit() else None
            if req is None or req.region != request.state.region:
                return JSONResponse({"error": "DSAR request not found"}, status_code=404)
            now = world.clock.now()
            if now >= req.done_at:
                world.dsar.finish(req)
            if req.status(now) != "done" or req.outputs is None:
                return JSONResponse({"error": "DSAR request is not done"}, status_code=404)
            if not output_id.isdigit() or int(output_id) >= len(req.outputs):
                return JSONResponse({"error": "output not found"}, status_code=404)
            if now >= req.expires_at:
                return JSONResponse({"error": "output link expired"}, status_code=403)
        location = (
            f"{request.url.scheme}://{storage_host(request)}/_storage/dsar/"
            f"{req.request_id}/{output_id}?X-Amz-Signature={req.token}"
        )
        return RedirectResponse(location, status_code=302)

    @app.get("/_storage/dsar/{request_id}/{output_id}")
    async def storage(request: Request, request_id: str, output_id: str) -> Response:
        if "authorization" in request.headers:
            body = {
                "Error": "InvalidArgument",
                "Message": "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                "parameter, Signature query string parameter or the Authorization header "
                "should be specified",
            }
            return JSONResponse(body, status_code=400)
        with world.lock:
            req = world.dsar.requests.get(int(request_id)) if request_id.isdigit() else None
            outputs = req.outputs if req is not None else None
            if req is None or outputs is None or request.query_params.get("X-Amz-Signature") != req.token:
                return JSONResponse({"Error": "AccessDenied"}, status_code=403)
            if world.clock.now() >= req.expires_at:
                return JSONResponse({"Error": "AccessDenied", "Message": "expired"}, 403)
            if not output_id.isdigit() or int(output_id) >= len(outputs):
                return JSONResponse({"Error": "NoSuchKey"}, status_code=404)
            out = outputs[int(output_id)]
        name = f"dsar-{req.request_id}-{out.project}-{out.month}-{output_id}.json.gz"
        return StreamingResponse(
            world.dsar.stream(out),
            media_type="application/gzip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
