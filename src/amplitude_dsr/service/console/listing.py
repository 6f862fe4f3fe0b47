"""``/ui/requests``: the request list (filters in the query string, keyset paging) and the search
(a POST, so an identifier typed in never reaches a URL, a log line or the browser's history)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from amplitude_dsr.service.console import views
from amplitude_dsr.service.console.session import Viewer
from amplitude_dsr.service.console.web import check_csrf, form, redirect, render, viewer
from amplitude_dsr.service.context import service_of
from amplitude_dsr.states import RequestStatus
from amplitude_dsr.store import console_repo

router = APIRouter(prefix="/ui", include_in_schema=False)
STATES = [s.value for s in RequestStatus]
KINDS = ["access", "deletion"]
REGULATIONS = ["gdpr", "ccpa"]


def _choice(value: str | None, allowed: list[str]) -> str | None:
    return value if value in allowed else None


def rows_of(page: console_repo.Page, now: datetime) -> list[dict[str, Any]]:
    """The list's rows, ready for the template."""
    return [
        {"r": r, "source": views.source(r.channel), "due": views.due(r.kind, r.status, r.deadline, now)}
        for r in page.rows
    ]


@router.get("")
def home() -> Response:
    return redirect("/ui/requests")


@router.get("/requests")
def request_list(
    request: Request,
    *,
    who: Viewer = Depends(viewer),
    state: str | None = Query(None, max_length=32),
    kind: str | None = Query(None, max_length=16),
    regulation: str | None = Query(None, max_length=8),
    overdue: str | None = Query(None, max_length=3),
    after: str | None = Query(None, max_length=200),
) -> Response:
    """A page of requests, newest first, with the filters of the query string."""
    filters = console_repo.Filters(
        state=_choice(state, STATES), kind=_choice(kind, KINDS), regulation=_choice(regulation, REGULATIONS),
        overdue=overdue == "1",
    )  # fmt: skip
    now = datetime.now(UTC)
    page = console_repo.list_page(service_of(request).rt.engine, filters, now=now, after=views.decode_key(after))
    pairs = (("state", filters.state), ("kind", filters.kind), ("regulation", filters.regulation))
    kept = {k: v for k, v in pairs if v}
    if filters.overdue:
        kept["overdue"] = "1"
    next_url = None
    if page.next_key is not None:
        next_url = "/ui/requests?" + urlencode({**kept, "after": views.encode_key(page.next_key)})
    context = {
        "rows": rows_of(page, now), "filters": filters, "states": STATES, "kinds": KINDS,
        "regulations": REGULATIONS, "next_url": next_url, "paged": after is not None,
        "first_url": "/ui/requests" + ("?" + urlencode(kept) if kept else ""), "searched": False,
    }  # fmt: skip
    return render(request, "requests.html", context, who=who)


@router.post("/requests/search")
async def search(request: Request) -> Response:
    """Find requests by our ID, a platform's request ID, or an identifier of the data subject
    (matched by its digest in the audit trail; the value itself is neither stored nor logged)."""
    who = await run_in_threadpool(viewer, request)
    fields = await form(request)
    check_csrf(request, who, fields)
    text = fields.get("q", "").strip()
    engine = service_of(request).rt.engine
    if text:
        found = await run_in_threadpool(console_repo.find_by_reference, engine, text)
        if found is not None:
            return redirect(f"/ui/requests/{found}")
    digests = views.search_digests(text) if text else []
    ids = await run_in_threadpool(console_repo.requests_with_digests, engine, digests)
    now = datetime.now(UTC)
    page = await run_in_threadpool(
        lambda: console_repo.list_page(engine, console_repo.Filters(), now=now, only_ids=ids, limit=len(ids))
    )
    context = {
        "rows": rows_of(page, now), "filters": console_repo.Filters(), "states": STATES, "kinds": KINDS,
        "regulations": REGULATIONS, "next_url": None, "paged": False, "first_url": "/ui/requests",
        "searched": True,
    }  # fmt: skip
    return render(request, "requests.html", context, who=who)
