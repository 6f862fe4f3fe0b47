"""User Privacy API v1 routes: create, list and remove deletions (docs/amplitude.md#deletion-api-v1)."""

from __future__ import annotations

import calendar
import json
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .routes_dashboard import bad_request
from .world import World

# docs/amplitude.md#creating-deletions: no more than 100 IDs in total per request.
MAX_IDS_PER_REQUEST = 100
# docs/amplitude.md#listing-deletion-jobs: the largest allowed GET range is 6 months.
MAX_WINDOW_MONTHS = 6


class BadRequest(Exception):
    """A 400 with this message."""


def parse_day(raw: str | None, name: str) -> date:
    """``YYYY-MM-DD`` (or ``YYYYMMDD``, as one doc sample shows)."""
    if not raw:
        raise BadRequest(f"missing required parameter: {name}")
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise BadRequest(f"{name} must be a date formatted YYYY-MM-DD")


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months (clamped to the target month's last day)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def string_bool(body: dict[str, Any], *names: str) -> bool:
    """A boolean sent as the string 'True'/'False' (case-insensitive); JSON booleans are 400."""
    for name in names:
        if name in body:
            value = body[name]
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise BadRequest(f"{names[0]} can only be 'True' or 'False'")
    return False


def _loose_bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


async def read_body(request: Request) -> dict[str, Any]:
    """JSON, or form-encoded with repeated ``amplitude_ids``/``user_ids`` keys."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in ctype:
        form = parse_qs(raw.decode(), keep_blank_values=True)
        body: dict[str, Any] = {k: v if k.rstrip("[]") in ("amplitude_ids", "user_ids") else v[-1]
                                for k, v in form.items()}  # fmt: skip
        return {k.rstrip("[]"): v for k, v in body.items()}
    try:
        parsed = json.loads(raw or b"null")
    except ValueError as exc:
        raise BadRequest("request body must be JSON") from exc
    if not isinstance(parsed, dict):
        raise BadRequest("request body must be a JSON object")
    return parsed


def id_lists(body: dict[str, Any]) -> tuple[list[int], list[str]]:
    """Validated ``amplitude_ids`` and ``user_ids``."""
    aids_raw = body.get("amplitude_ids") or []
    uids_raw = body.get("user_ids") or []
    if not isinstance(aids_raw, list) or not isinstance(uids_raw, list):
        raise BadRequest("amplitude_ids and user_ids must be arrays")
    amplitude_ids: list[int] = []
    for value in aids_raw:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise BadRequest(f"invalid amplitude_id: {value!r}")
        amplitude_ids.append(int(value))
    user_ids = [str(v) for v in uids_raw if v is not None]
    if not amplitude_ids and not user_ids:
        raise BadRequest("amplitude_ids or user_ids is required")
    if len(amplitude_ids) + len(user_ids) > MAX_IDS_PER_REQUEST:
        raise BadRequest(f"at most {MAX_IDS_PER_REQUEST} ids per request")
    return amplitude_ids, user_ids


def register(app: FastAPI, world: World) -> None:
    """Add the deletion routes."""

    @app.post("/api/2/deletions/users")
    async def create(request: Request) -> JSONResponse:
        try:
            body = await read_body(request)
            amplitude_ids, user_ids = id_lists(body)
            ignore = string_bool(body, "ignore_invalid_id", "ignore_invalid_ids")
            org_wide = string_bool(body, "delete_from_org")
        except BadRequest as exc:
            return bad_request(str(exc))
        requester = body.get("requester")
        requester = None if requester is None else str(requester)
        mapped = _loose_bool(body.get("include_mapped_user_ids"))
        project_name: str = request.state.project
        asked = [str(a) for a in amplitude_ids] + user_ids
        with world.lock:
            today = world.clock.today()
            region = world.projects[project_name].region
            names = [project_name]
            if org_wide:
                ignore = True  # docs/amplitude.md#org-wide-deletion: forced by delete_from_org
                names = [n for n, p in world.projects.items() if p.region == region]
            book = world.deletions
            resolved = {n: book.resolve(n, amplitude_ids, user_ids, requester, today) for n in names}
            found = set().union(*(r.found for r in resolved.values()))
            invalid: list[Any] = [a for a in amplitude_ids if str(a) not in found]
            invalid += [u for u in user_ids if u not in found]
            if invalid and not ignore:
                message = f"{len(invalid)} of {len(asked)} ids are invalid"
                return JSONResponse({"error": message, "invalid_ids": invalid}, status_code=400)
            jobs: list[dict[str, Any]] = []
            for name in names:
                entries = resolved[name].entries
                if org_wide and not entries:
                    continue
                job = book.schedule(name, entries, today, org_wide) if entries else None
                job = job or book.open_job(name, today)
                out = job.wire(today, entries)
                out["amplitude_ids"] = [e.wire(mapped) for e in entries]
                if org_wide:
                    out["app"] = job.app
                if ignore:
                    out["invalid_ids"] = invalid
                jobs.append(out)
        return JSONResponse(jobs if org_wide else jobs[0])

    @app.get("/api/2/deletions/users")
    async def list_jobs(request: Request) -> JSONResponse:
        try:
            start = parse_day(request.query_params.get("start_day"), "start_day")
            end = parse_day(request.query_params.get("end_day"), "end_day")
        except BadRequest as exc:
            return bad_request(str(exc))
        if end < start:
            return bad_request("end_day must not be before start_day")
        if end > add_months(start, MAX_WINDOW_MONTHS):
            return bad_request("the range between start_day and end_day is at most 6 months")
        with world.lock:
            jobs = world.deletions.list(request.state.project, start, end, world.clock.today())
        return JSONResponse(jobs)

    @app.delete("/api/2/deletions/users/{amplitude_id}/{day}")
    async def remove(request: Request, amplitude_id: str, day: str) -> JSONResponse:
        if not amplitude_id.isdigit():
            return bad_request("amplitude_id must be numeric")
        try:
            job_day = parse_day(day, "day")
        except BadRequest as exc:
            return bad_request(str(exc))
        with world.lock:
            status, body = world.deletions.remove(
                request.state.project, int(amplitude_id), job_day, world.clock.today()
            )
        return JSONResponse(body, status_code=status)
