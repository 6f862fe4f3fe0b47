"""The access workflow: resolve, collect (project keys, and DSAR with org keys), report.

Durable: every Amplitude call is a checkpointed step; DSAR polling sleeps durably between polls
(the run may take days and survives restarts).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dbos import DBOS

from amplitude_dsr.dsr import steps
from amplitude_dsr.dsr.identity_map import build as build_identity_map
from amplitude_dsr.dsr.model import AccessResult, DsarInfo, Identifier, IdentifierKind, Subject, SubjectData
from amplitude_dsr.dsr.report import write_access_package
from amplitude_dsr.dsr.resolve import Resolved, resolve
from amplitude_dsr.dsr.runtime import current
from amplitude_dsr.errors import DsrError
from amplitude_dsr.store import repo

DSAR_EARLIEST = date(2012, 1, 1)  # Amplitude holds no data before its launch
DSAR_DONE = "done"
DSAR_FAILED = "failed"


@DBOS.step()
def load_step(request_id: str) -> repo.RequestRow:
    return repo.get_request(current().engine, request_id)


@DBOS.step()
def set_status_step(request_id: str, status: str, fields: dict[str, Any] | None = None) -> None:
    extra = dict(fields or {})
    if status in ("completed", "failed", "verified", "recollected", "cancelled", "nothing_found"):
        extra.setdefault("completed_at", datetime.now(UTC))
    repo.update_request(current().engine, request_id, status=status, **extra)


@DBOS.step()
def identity_map_step(source: str | None, emails: list[str]) -> dict[str, list[str]]:
    return build_identity_map(source, emails)


@DBOS.step()
def write_package_step(result: AccessResult, out_dir: str) -> str:
    return str(write_access_package(result, Path(out_dir)))


def projects_for(options: dict[str, Any]) -> list[str]:
    names = options.get("projects") or [p.name for p in current().settings.projects]
    return list(names)


def load_identity_map(identifiers: list[Identifier], options: dict[str, Any]) -> dict[str, list[str]]:
    emails = [i.value for i in identifiers if i.kind is IdentifierKind.EMAIL]
    return steps.call(identity_map_step, options.get("identity_map"), emails)


@DBOS.workflow()
def access_workflow(request_id: str) -> str:
    """Run one access request to its report; returns the final status."""
    req = load_step(request_id)
    try:
        set_status_step(request_id, "resolving")
        identifiers = [Identifier.model_validate(i) for i in req.identifiers]
        imap = load_identity_map(identifiers, req.options)
        full = bool(req.options.get("full_history"))
        resolved = resolve(
            request_id, identifiers, projects_for(req.options), identity_map=imap,
            keep_events=True, full_history=full,
        )  # fmt: skip
        steps.audit_step(request_id, "resolved", {"subjects": len(resolved.resolution.subjects)})
        set_status_step(request_id, "collecting")
        notes: list[str] = []
        subjects = [_collect(request_id, s, resolved, full, notes) for s in resolved.resolution.subjects]
        if not subjects:
            notes.append("No data held: no Amplitude user matched any identifier exactly.")
        result = AccessResult(
            request_id=request_id, created_at=req.created_at, completed_at=DBOS_now(),
            regulation=req.regulation if req.regulation in ("gdpr", "ccpa") else "gdpr",  # type: ignore[arg-type]
            identifiers=identifiers, resolution=resolved.resolution, subjects=subjects, notes=notes,
        )  # fmt: skip
        out = write_package_step(result, req.options.get("out_dir") or str(current().data_dir / "output"))
        summary = {
            "subjects": [
                {"project": s.subject.project, "events": s.event_count, "sources": s.sources} for s in subjects
            ],
            "unresolved": len(resolved.resolution.unresolved()),
        }
        steps.audit_step(request_id, "completed", {"subjects": len(subjects), "out_dir": out})
        set_status_step(request_id, "completed", {"out_dir": out, "result": summary})
        return "completed"
    except DsrError as exc:
        steps.audit_step(request_id, "failed", {"reason": steps.fatal_message(exc)})
        set_status_step(request_id, "failed", {"error": steps.fatal_message(exc)})
        return "failed"


@DBOS.step()
def _now_step() -> datetime:
    return datetime.now(UTC)


def DBOS_now() -> datetime:  # noqa: N802 - reads like a clock
    """The current time, checkpointed so a replayed workflow sees the same value."""
    return _now_step()


def _collect(
    request_id: str, subject: Subject, resolved: Resolved, full: bool, notes: list[str]
) -> SubjectData:
    act = resolved.activity.get(subject.key)
    data = SubjectData(
        subject=subject,
        summary=act.user_data.model_dump(mode="json") if act else {},
        sources=["user_activity_full_history" if full else "user_activity"],
        event_count=act.event_count if act else 0,
        events_by_type=act.events_by_type if act else {},
        sessions=act.sessions if act else [],
        events_path=act.events_path if act else None,
    )
    if current().dsar() is None:
        return data
    dsar, urls = _run_dsar(request_id, subject, act.user_data.first_used if act else None)
    if dsar.status == DSAR_DONE:
        download = steps.call(steps.dsar_download_step, request_id, subject.project, subject.amplitude_id, urls)
        dsar = dsar.model_copy(update={"files": download.files, "events": download.event_count})
        return data.model_copy(
            update={
                "dsar": dsar, "sources": ["dsar", "user_activity"], "event_count": download.event_count,
                "events_by_type": download.events_by_type, "sessions": download.sessions,
                "events_path": download.path,
            }
        )  # fmt: skip
    notes.append(
        f"The DSAR export for one subject ended as {dsar.status!r}"
        f"{': ' + dsar.fail_reason if dsar.fail_reason else ''}; "
        "the report falls back to the project-key data (summary, recent events, last session)."
    )
    return data.model_copy(update={"dsar": dsar.model_copy(update={"fell_back_to_project_keys": True})})


def _run_dsar(request_id: str, subject: Subject, first_used: str | None) -> tuple[DsarInfo, list[str]]:
    """Create the subject's DSAR export over its lifetime and poll it (durable sleeps between
    polls, within the DSAR cost budget) until it is done or failed."""
    start = DSAR_EARLIEST
    if first_used:
        try:
            start = min(date.fromisoformat(first_used[:10]), DBOS_now().date())
        except ValueError:
            start = DSAR_EARLIEST
    dsar_id = steps.call(steps.dsar_create_step, subject.amplitude_id, start, DBOS_now().date())
    steps.audit_step(request_id, "dsar_created", {"dsar_request_id": dsar_id})
    poll = current().settings.poll_interval
    while True:
        state = steps.call(steps.dsar_get_step, dsar_id)
        if state.status in (DSAR_DONE, DSAR_FAILED):
            break
        DBOS.sleep(poll)
    steps.audit_step(request_id, f"dsar_{state.status}", {"dsar_request_id": dsar_id, "files": len(state.urls)})
    info = DsarInfo(request_id=dsar_id, status=state.status, fail_reason=state.fail_reason, files=len(state.urls))
    return info, list(state.urls)
