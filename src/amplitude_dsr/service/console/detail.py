"""``/ui/requests/{id}``: one request's page (timeline, projects, jobs, verification, evidence,
downloads, callbacks) and its files. Its actions are in ``actions.py``."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from amplitude_dsr.dsr import api, deadlines, holding
from amplitude_dsr.errors import RequestNotFound
from amplitude_dsr.service.console import views
from amplitude_dsr.service.console.session import Viewer
from amplitude_dsr.service.console.web import HEADERS, render, viewer
from amplitude_dsr.service.context import Service, service_of
from amplitude_dsr.service.links import results_dir
from amplitude_dsr.service.status import evidence_sha256
from amplitude_dsr.states import is_final
from amplitude_dsr.store import audit, console_repo, repo, service_repo

router = APIRouter(prefix="/ui", include_in_schema=False)
REFUSED = "console_action_refused"  # the audit entry of an action the rules refused
MEDIA = {".json": "application/json", ".html": "text/html", ".csv": "text/csv", ".zip": "application/zip"}


def entry_intact(entry: audit.AuditEntry) -> bool:
    """Whether an entry's hash matches its own content and link (the whole chain: ``/ui/audit``)."""
    stamp = entry.at.astimezone(UTC).isoformat(timespec="microseconds")
    return audit.chain_hash(entry.prev_hash, entry.request_id, stamp, entry.kind, entry.detail) == entry.hash


def projects(row: repo.RequestRow, items: list[repo.Item]) -> list[dict[str, Any]]:
    """One row per project: what was found there."""
    if row.kind == "access":
        subjects = (row.result or {}).get("subjects") or []
        return [
            {"project": s.get("project"), "found": f"{s.get('events', 0)} events, {s.get('sessions', 0)} sessions",
             "ids": 1 + int(s.get("merged_amplitude_ids") or 0)}
            for s in subjects
        ]  # fmt: skip
    by_project: dict[str, list[repo.Item]] = {}
    for item in items:
        by_project.setdefault(item.project, []).append(item)
    return [
        {"project": p, "found": ", ".join(f"{n} {s}" for s, n in sorted(Counter(i.state for i in group).items())),
         "ids": len({i.amplitude_id for i in group})}
        for p, group in sorted(by_project.items())
    ]  # fmt: skip


def page_context(service: Service, request_id: str) -> dict[str, Any]:
    """Everything the request's page shows (a handful of queries, none per row)."""
    engine = service.rt.engine
    row = repo.get_request(engine, request_id)
    items = repo.items_for(engine, request_id) if row.kind == "deletion" else []
    with engine.connect() as conn:
        entries = audit.entries(conn, request_id)
    folder = results_dir(row)
    subject_id = console_repo.subject_request_of(engine, request_id)
    deliveries = service_repo.deliveries_for(engine, subject_id) if subject_id else []
    final = is_final(row.kind, row.status)
    timeline = [(e, entry_intact(e)) for e in entries]
    outcome = next((e for e in reversed(entries) if e.kind == row.status), None) if final else None
    return {
        "row": row, "source": views.source(_channel(engine, subject_id)), "subject_request_id": subject_id,
        "due": views.due(row.kind, row.status, row.deadline, datetime.now(UTC)),
        "timeline": timeline, "broken_entries": sum(1 for _, ok in timeline if not ok),
        "projects": projects(row, items),
        "jobs": api.deletion_summary(items)[1], "outcome": outcome, "final": final,
        "evidence": evidence_sha256(row.out_dir) if final else None,
        "files": sorted(p.name for p in folder.iterdir() if p.is_file()) if folder else [],
        "deliveries": deliveries, "cancellable": row.kind == "deletion" and not final,
        "extended_days": deadlines.extended_days(row.regulation, row.created_at, row.deadline),
        "max_extension": deadlines.MAX_EXTENSION_DAYS.get(row.regulation, 60),
        "held_by_console": holding.held_by_console(entries),
    }  # fmt: skip


def _channel(engine: Any, subject_id: str | None) -> str | None:
    if subject_id is None:
        return None
    mapped = service_repo.get_mapped(engine, subject_id)
    return mapped.channel if mapped else None


def show(
    request: Request, who: Viewer, request_id: str, *, message: str = "", status: int = 200, refused: int | None = None
) -> Response:
    try:
        context = page_context(service_of(request), request_id)
        if refused is not None:  # the reason, from the audit trail (the URL holds only the entry's number)
            entry = next((e for e, _ in context["timeline"] if e.id == refused), None)
            if entry is not None and entry.kind == REFUSED:
                message = str(entry.detail.get("refusal", ""))
    except RequestNotFound:
        gone = {"title": "Not found", "message": "No such request."}
        return render(request, "message.html", gone, who=who, status=404)
    return render(request, "request.html", {**context, "message": message}, who=who, status=status)


@router.get("/requests/{request_id}")
def request_page(
    request: Request, request_id: str, who: Viewer = Depends(viewer), refused: int | None = None
) -> Response:
    """One request's page (``refused``: the audit entry of a refused action, to show its reason)."""
    return show(request, who, request_id, refused=refused)


@router.get("/requests/{request_id}/files/{name}")
def request_file(request: Request, request_id: str, name: str, who: Viewer = Depends(viewer)) -> Response:
    """One file of the request's package or certificate (only names its folder lists)."""
    try:
        row = repo.get_request(service_of(request).rt.engine, request_id)
    except RequestNotFound:
        row = None
    folder = results_dir(row) if row is not None else None
    files = {p.name: p for p in folder.iterdir() if p.is_file()} if folder else {}
    path: Path | None = files.get(name)
    if path is None:
        return render(request, "message.html", {"title": "Not found", "message": "No such file."}, who=who, status=404)
    media = MEDIA.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, filename=f"{request_id}-{name}", headers=HEADERS)
