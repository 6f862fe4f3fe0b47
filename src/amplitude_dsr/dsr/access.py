"""The access workflow: resolve, collect (project keys, and DSAR with org keys), report.

Durable: every Amplitude call is a checkpointed step; DSAR polling sleeps durably between polls
(the run may take days and survives restarts).
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dbos import DBOS

from amplitude_dsr.amplitude.models import DsarRequest
from amplitude_dsr.dsr import steps
from amplitude_dsr.dsr.completeness import assess
from amplitude_dsr.dsr.dbfaults import db_step
from amplitude_dsr.dsr.failures import failure_reason
from amplitude_dsr.dsr.identity_map import build as build_identity_map
from amplitude_dsr.dsr.model import (
    DSAR_EARLIEST,
    AccessResult,
    DsarInfo,
    Identifier,
    IdentifierKind,
    Subject,
    SubjectData,
)
from amplitude_dsr.dsr.progress import record_step, start_step
from amplitude_dsr.dsr.report import write_access_package
from amplitude_dsr.dsr.resolve import Resolved, resolve
from amplitude_dsr.dsr.runtime import Runtime, torn_down
from amplitude_dsr.errors import AuthenticationError, FatalError, NotFound, OutputUnwritable, ShuttingDown
from amplitude_dsr.store import repo

DSAR_DONE = "done"
DSAR_FAILED = "failed"


@db_step
def load_step(rt: Runtime, request_id: str) -> repo.RequestRow:
    return repo.get_request(rt.engine, request_id)


@DBOS.step()
def identity_map_step(rt: Runtime, source: str | None, emails: list[str]) -> dict[str, list[str]]:
    return build_identity_map(source, emails)


@DBOS.step()
def write_package_step(rt: Runtime, result: AccessResult, out_dir: str) -> tuple[str, datetime]:
    """Write the package, stamped as completed now; returns its directory and that time (one
    checkpoint for both). A refusal of the file system is :class:`OutputUnwritable`, which
    :func:`steps.call` retries durably (the Amplitude answers are already paid for)."""
    stamped = result.model_copy(update={"completed_at": datetime.now(UTC)})
    try:
        out = write_access_package(stamped, Path(out_dir), operator_dir=rt.data_dir / "operator")
    except OSError as exc:  # the package writer leaves nothing half-written behind
        raise OutputUnwritable(exc.errno, exc.strerror or type(exc).__name__) from None
    return str(out), stamped.completed_at


def projects_for(rt: Runtime, options: dict[str, Any]) -> list[str]:
    names = options.get("projects") or [p.name for p in rt.settings.projects]
    return list(names)


def load_identity_map(rt: Runtime, identifiers: list[Identifier], options: dict[str, Any]) -> dict[str, list[str]]:
    emails = [i.value for i in identifiers if i.kind is IdentifierKind.EMAIL]
    if not options.get("identity_map") or not emails:
        return {}  # nothing to look up: no step, no checkpoint
    return steps.call(rt, identity_map_step, options.get("identity_map"), emails)


def access_workflow(rt: Runtime, request_id: str) -> str:
    """Run one access request to its report; returns the final status (the body of
    ``Workflows.access``)."""
    req: repo.RequestRow | None = None
    rounds = 0
    while True:
        try:
            again = req is not None  # a round after a database fault: from resolving once more
            if req is None:
                req = start_step(rt, request_id, "resolving")
            # Transient Amplitude faults (outages, 5xx, unreadable bodies) are retried durably until
            # the request's deadline; only a cause retrying cannot fix ends it failed.
            with steps.retry_policy(steps.RetryPolicy(horizon=req.deadline)):
                return _answer(rt, request_id, req, again=again)
        except ShuttingDown:
            raise
        except Exception as exc:  # deliberate errors and unexpected ones alike end the request (dsr/failures.py)
            if torn_down(exc):  # a step outlived DBOS (this process is stopping): nothing failed
                raise ShuttingDown("this process is shutting down; the workflow resumes from its last step") from exc
            if steps.wait_out_database_fault(rt, request_id, exc, rounds):
                rounds += 1  # resolution and collection run again (a new DSAR export at worst)
                continue
            reason = failure_reason("access", request_id, exc)
            record_step(rt, request_id, "failed", kind="failed", detail={"reason": reason}, fields={"error": reason},
                        unless=())  # fmt: skip
            remove_work(rt, request_id)  # only once the failure is recorded: a replay may still need them
            return "failed"


def _answer(rt: Runtime, request_id: str, req: repo.RequestRow, *, again: bool) -> str:
    """Resolve, collect and write the package; the request's status on the way (``again``: a
    round after a database fault, which starts from ``resolving`` once more)."""
    if again:
        record_step(rt, request_id, "resolving", unless=())
    identifiers = [Identifier.model_validate(i) for i in req.identifiers]
    imap = load_identity_map(rt, identifiers, req.options)
    full = bool(req.options.get("full_history"))
    resolved = resolve(
        rt, request_id, identifiers, projects_for(rt, req.options), identity_map=imap,
        keep_events=True, full_history=full,
    )  # fmt: skip
    resolved_entry = ("resolved", {"subjects": len(resolved.resolution.subjects)})
    notes: list[str] = []
    window = _dsar_window(req.options)
    subjects = _collect(rt, request_id, resolved, full, notes, window=window, resolved_entry=resolved_entry)
    if not subjects:
        notes.append("No data held: no Amplitude user matched any identifier exactly.")
    result = AccessResult(
        request_id=request_id, created_at=req.created_at, completed_at=req.created_at,  # stamped by the writer
        regulation=req.regulation if req.regulation in ("gdpr", "ccpa") else "gdpr",
        identifiers=identifiers, resolution=resolved.resolution, subjects=subjects, notes=notes,
    )  # fmt: skip
    out_dir = req.options.get("out_dir") or str(rt.data_dir / "output")
    out, completed_at = steps.call(rt, write_package_step, result, out_dir)
    result = result.model_copy(update={"completed_at": completed_at})
    summary = {
        "subjects": [_subject_summary(s) for s in subjects],
        "unresolved": len(resolved.resolution.unresolved()),
        "ambiguous": sum(1 for d in resolved.resolution.unresolved_details() if d.ambiguous),
        "data_held": bool(subjects),
        "completeness": assess(result).model_dump(mode="json"),
    }
    remove_work(rt, request_id)
    record_step(
        rt, request_id, "completed", kind="completed", detail={"subjects": len(subjects), "out_dir": out},
        fields={"out_dir": out, "result": summary, "completed_at": completed_at}, unless=(),
        before=[] if _dsar_phase(rt, subjects) else [resolved_entry],
    )  # fmt: skip
    return "completed"


def remove_work(rt: Runtime, request_id: str) -> None:
    """Delete the request's work files (copies of the subject's events) once the package is
    written or the request failed: personal data is kept only in the package itself. Not a
    step: removing what is already gone changes nothing, so a replay may do it again, and it
    runs only after the package step's checkpoint (nothing later reads the work files)."""
    shutil.rmtree(rt.data_dir / "work" / request_id, ignore_errors=True)


def _subject_summary(data: SubjectData) -> dict[str, Any]:
    """What ``status``/``--json`` show for one subject: counts and kinds, no identifier values."""
    return {
        "project": data.subject.project,
        "events": data.event_count,
        "sources": data.sources,
        "matched_by": sorted({i.kind.value for i in data.subject.matched_by}),
        "merged_amplitude_ids": len(data.subject.merged_amplitude_ids),
        "sessions": len(data.sessions),
        "most_recent_session_complete": data.most_recent_session_complete,
        "dsar": data.dsar.status if data.dsar else None,
    }


def _dsar_window(options: dict[str, Any]) -> tuple[date | None, date | None]:
    """The DSAR date range the request asked for (``dsar_start``, ``dsar_end``; either may be unset)."""
    start, end = options.get("dsar_start"), options.get("dsar_end")
    return (date.fromisoformat(start) if start else None, date.fromisoformat(end) if end else None)


def _collect(
    rt: Runtime,
    request_id: str,
    resolved: Resolved,
    full: bool,
    notes: list[str],
    *,
    window: tuple[date | None, date | None] = (None, None),
    resolved_entry: tuple[str, dict[str, Any]],
) -> list[SubjectData]:
    """Each subject's data from User Activity (fetched during resolution), and with org keys its
    DSAR export merged in (every export is created first, then all are polled together). Only a
    DSAR phase, which may last hours, shows the request as ``collecting``; without one the
    ``resolved`` entry goes in with the completion (one checkpoint fewer)."""
    collected = [_from_activity(s, resolved, full) for s in resolved.resolution.subjects]
    if not _dsar_phase(rt, collected):
        return collected
    kind, detail = resolved_entry
    record_step(rt, request_id, "collecting", kind=kind, detail=detail, unless=())
    pending: dict[int, int] = {}
    for index, data in enumerate(collected):
        try:
            pending[index] = _create_dsar(rt, request_id, data, window)
        except AuthenticationError:
            # The org keys are refused (wrong key, or the other region): the project-key data is
            # still an answer, a partial one that says why (dsr/completeness.py).
            refused = DsarInfo(status="refused", auth_error=True, fell_back_to_project_keys=True)
            collected[index] = data.model_copy(update={"dsar": refused})
            steps.audit_step(rt, request_id, "dsar_refused", {"reason": "organisation keys refused"})
    if any(d.dsar is not None and d.dsar.auth_error for d in collected):
        notes.append(
            "Amplitude refused the organisation keys for the DSAR export (check the org key, its secret and "
            "the region); the report holds the data available with project keys."
        )
    poll = rt.settings.poll_interval
    while True:
        for index, dsar_id in list(pending.items()):
            state = steps.call(rt, steps.dsar_get_step, dsar_id)
            if state.status in (DSAR_DONE, DSAR_FAILED):
                # Download at once: the links expire two days after the export is done.
                collected[index] = _finish_dsar(rt, request_id, collected[index], state, notes)
                del pending[index]
        if not pending:
            return collected
        steps.pause(rt, poll)


def _dsar_phase(rt: Runtime, subjects: list[SubjectData]) -> bool:
    """Whether the request collects DSAR exports (organisation keys, and someone to export)."""
    return bool(subjects) and rt.dsar() is not None


def _from_activity(subject: Subject, resolved: Resolved, full: bool) -> SubjectData:
    act = resolved.activity.get(subject.key)
    return SubjectData(
        subject=subject,
        summary=act.user_data.model_dump(mode="json") if act else {},
        sources=["user_activity_full_history" if full else "user_activity"],
        event_count=act.event_count if act else 0,
        events_by_type=act.events_by_type if act else {},
        sessions=act.sessions if act else [],
        most_recent_session_complete=act.recent_session_complete if act else True,
        events_path=act.events_path if act else None,
    )


def _create_dsar(
    rt: Runtime, request_id: str, data: SubjectData, window: tuple[date | None, date | None] = (None, None)
) -> int:
    """Create the subject's DSAR export over the request's date range; by default its whole
    lifetime (from its first use, or from :data:`DSAR_EARLIEST` when unknown, to today). A last
    day after today ends today."""
    today = steps.now_step().date()
    start = DSAR_EARLIEST
    first_used = data.summary.get("first_used")
    if isinstance(first_used, str):
        try:
            start = min(date.fromisoformat(first_used[:10]), today)
        except ValueError:
            start = DSAR_EARLIEST
    start = window[0] or start
    end = min(window[1] or today, today)
    start = min(start, end)
    dsar_id = steps.call(rt, steps.dsar_create_step, data.subject.amplitude_id, start, end)
    steps.audit_step(
        rt, request_id, "dsar_created", {"dsar_request_id": dsar_id, "start": start.isoformat(), "end": end.isoformat()}
    )
    return dsar_id


def _finish_dsar(rt: Runtime, request_id: str, data: SubjectData, state: DsarRequest, notes: list[str]) -> SubjectData:
    """Merge a finished export into the subject's data, or fall back to the project-key data."""
    steps.audit_step(
        rt, request_id, f"dsar_{state.status}", {"dsar_request_id": state.request_id, "files": len(state.urls)}
    )
    info = DsarInfo(
        request_id=state.request_id, status=state.status, fail_reason=state.fail_reason, files=len(state.urls)
    )
    if state.status == DSAR_DONE:
        s = data.subject
        try:
            got = steps.call(
                rt, steps.dsar_download_step, request_id, s.project, s.amplitude_id, list(state.urls), data.events_path
            )
        except FatalError as exc:
            # Output links are pre-signed and carry no key: a refusal (403/404) means they expired
            # or were withdrawn, never that the keys or the region are wrong.
            why = (
                f"HTTP {exc.status}: the download links expired or were refused"
                if isinstance(exc, (AuthenticationError, NotFound))
                else steps.fatal_message(exc)
            )
            notes.append(
                f"The DSAR export of one subject could not be downloaded ({why}); the report falls back to "
                "the project-key data. Run the request again for a new export."
            )
            info = info.model_copy(update={"status": "download_failed", "fell_back_to_project_keys": True})
            return data.model_copy(update={"dsar": info})
        info = info.model_copy(update={"files": got.files, "events": got.dsar_events})
        return data.model_copy(
            update={
                "dsar": info, "sources": ["dsar", *data.sources], "event_count": got.event_count,
                "events_by_type": got.events_by_type, "sessions": got.sessions, "events_path": got.path,
                "most_recent_session_complete": True,
            }
        )  # fmt: skip
    notes.append(
        f"The DSAR export for one subject ended as {state.status!r}"
        f"{': ' + state.fail_reason if state.fail_reason else ''}; "
        "the report falls back to the project-key data (summary, recent events, last session)."
    )
    return data.model_copy(update={"dsar": info.model_copy(update={"fell_back_to_project_keys": True})})
