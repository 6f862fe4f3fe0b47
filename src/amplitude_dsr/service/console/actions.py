"""The console's actions on a request (admin only): approve a held deletion, cancel a deletion,
extend a deadline, retry a failed request, put a started request on hold and release it, resume
a stuck request's workflow (its form is on the Workers page).

Each one is a POST form with the CSRF token and a reason. Before acting, a ``console_action``
audit entry records the action, who (the token's name) and why; a refusal by the rules is
recorded as ``console_action_refused`` with its reason, which the request's page then shows.
Every action answers with a redirect to the request's page (post/redirect/get: reloading it sends
nothing again); the URL then carries only the number of the refusal's audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from amplitude_dsr.dsr import api, deadlines, hold, holding, retry, unstick
from amplitude_dsr.errors import AmplitudeError, DomainError, RequestNotFound
from amplitude_dsr.service.console.detail import REFUSED, show
from amplitude_dsr.service.console.web import check_csrf, form, redirect, require_admin, viewer
from amplitude_dsr.service.context import Service, service_of
from amplitude_dsr.store import audit, repo

router = APIRouter(prefix="/ui", include_in_schema=False)
MAX_REASON = 500
MAX_DAYS = 366


def act(service: Service, request_id: str, action: str, *, by: str, reason: str, run: Callable[[], Any]) -> int | None:
    """Audit the attempt, ``run`` it, audit a refusal; returns the refusal's audit entry number
    (``None``: done, or no such request)."""
    engine = service.rt.engine
    try:
        repo.get_request(engine, request_id)
    except RequestNotFound:
        return None
    with engine.begin() as conn:
        audit.append(conn, request_id, "console_action", {"action": action, "by": by, "reason": reason})
    try:
        run()
    except (DomainError, AmplitudeError) as exc:
        refusal = str(exc) if isinstance(exc, DomainError) else "Amplitude did not answer; try again"
        with engine.begin() as conn:
            entry = audit.append(conn, request_id, REFUSED, {"action": action, "by": by, "refusal": refusal})
        return entry.id
    return None


async def _action(request: Request, request_id: str, action: str, make: Callable[..., Callable[[], Any]]) -> Response:
    """The shared shape of an action: viewer, CSRF, admin, a reason, then :func:`act`."""
    who = await run_in_threadpool(viewer, request)
    fields = await form(request)
    check_csrf(request, who, fields)
    require_admin(who)
    reason = " ".join(fields.get("reason", "").split())[:MAX_REASON]
    service = service_of(request)
    try:
        run = make(service, fields, who.name, reason)
    except ValueError as exc:
        message = str(exc)
        return await run_in_threadpool(lambda: show(request, who, request_id, message=message, status=400))
    if not reason:
        ask = f"Give a reason for the {action}."
        return await run_in_threadpool(lambda: show(request, who, request_id, message=ask, status=400))
    refused = await run_in_threadpool(lambda: act(service, request_id, action, by=who.name, reason=reason, run=run))
    return redirect(f"/ui/requests/{request_id}" + (f"?refused={refused}" if refused is not None else ""))


def _one_call(request_id: str, call: Callable[..., Any]) -> Callable[[Service, dict[str, str], str, str], Any]:
    """The ``make`` of an action that is one call ``call(rt, request_id, by=..., reason=...)``."""

    def make(service: Service, _fields: dict[str, str], by: str, reason: str) -> Callable[[], Any]:
        return lambda: call(service.rt, request_id, by=by, reason=reason)

    return make


@router.post("/requests/{request_id}/cancel")
async def cancel(request: Request, request_id: str) -> Response:
    """Cancel a deletion under today's rules (``dsr.api.cancel``)."""

    def make(service: Service, _fields: dict[str, str], _by: str, _reason: str) -> Callable[[], Any]:
        def run() -> None:
            api.cancel(service.rt, request_id)
            holding.drop_held(service.rt, request_id)  # IDs it held never go to Amplitude

        return run

    return await _action(request, request_id, "cancel", make)


@router.post("/requests/{request_id}/extend")
async def extend(request: Request, request_id: str) -> Response:
    """Extend the deadline by a number of days, within what the regulation allows
    (``dsr.deadlines``)."""

    def make(service: Service, fields: dict[str, str], by: str, reason: str) -> Callable[[], Any]:
        raw = fields.get("days", "").strip()
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
            raise ValueError("Give the number of days to extend by (a whole number from 1).")
        days = int(raw)
        return lambda: deadlines.extend(service.rt.engine, request_id, days, by=by, reason=reason)

    return await _action(request, request_id, "extend_deadline", make)


@router.post("/requests/{request_id}/approve")
async def approve(request: Request, request_id: str) -> Response:
    """Approve a held deletion (``serve --hold-erasures``): it starts (``dsr.hold.approve``)."""

    return await _action(request, request_id, "approve", _one_call(request_id, hold.approve))


@router.post("/requests/{request_id}/retry")
async def retry_request(request: Request, request_id: str) -> Response:
    """Retry a failed request from where it is safe to restart (``dsr.retry``)."""

    return await _action(request, request_id, "retry", _one_call(request_id, retry.retry))


@router.post("/requests/{request_id}/hold")
async def put_on_hold(request: Request, request_id: str) -> Response:
    """Put a started request on hold, where that is truthful (``dsr.holding``)."""

    return await _action(request, request_id, "hold", _one_call(request_id, holding.put_on_hold))


@router.post("/requests/{request_id}/release")
async def release(request: Request, request_id: str) -> Response:
    """Release a request the console put on hold, exactly where it was (``dsr.holding``)."""

    return await _action(request, request_id, "release", _one_call(request_id, holding.release))


@router.post("/requests/{request_id}/resume")
async def resume(request: Request, request_id: str) -> Response:
    """Resume a stuck request's workflow through ``DBOSClient`` (``dsr.unstick``); the form is
    on the Workers page, the outcome on the request's page."""

    return await _action(request, request_id, "resume", _one_call(request_id, unstick.resume))
