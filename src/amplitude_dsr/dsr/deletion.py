"""The deletion request workflow: resolve the person's identifiers, queue their Amplitude IDs,
and hand them over to Amplitude's own unit of work, the deletion job.

The workflow's thread-holding life ends once the IDs are queued (status ``queued``). From there
the project's flusher submits them in batches, exactly once (``dsr/submission.py``); the
project's tracker follows every job until it is ``done`` (``dsr/tracking.py``); then a short
verification workflow writes the certificate (``dsr/finish.py``). Threads and memory are bounded
by projects and queue limits, not by requests in flight (``docs/deletion.md``).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from amplitude_dsr.dsr import direct, steps
from amplitude_dsr.dsr.access import load_identity_map, projects_for
from amplitude_dsr.dsr.finish import conclude, fail, progress_step
from amplitude_dsr.dsr.model import Identifier, Resolution, Subject
from amplitude_dsr.dsr.progress import record_step, start_step
from amplitude_dsr.dsr.resolve import resolve
from amplitude_dsr.dsr.runtime import Runtime, torn_down
from amplitude_dsr.dsr.submission import start_flusher
from amplitude_dsr.errors import DomainError, ShuttingDown
from amplitude_dsr.states import RequestStatus
from amplitude_dsr.store import audit, repo

log = logging.getLogger("amplitude_dsr.dsr")
S = RequestStatus


def _queue_subjects(conn: Connection, request_id: str, subjects: list[Subject], org_wide: bool) -> int:
    total = 0
    for subject in subjects:
        ids = subject.all_amplitude_ids
        total += repo.queue_items_in(conn, request_id, subject.project, ids, org_wide=org_wide)
    return total


def deletion_workflow(rt: Runtime, request_id: str) -> str:
    """Resolve and queue one deletion request. Returns ``queued`` once its IDs wait for their
    project's flusher, or the final status when it ends here (nothing found, failed, cancelled).
    The body of ``Workflows.deletion``."""
    req: repo.RequestRow | None = None
    rounds = 0
    while True:
        try:
            again = req is not None  # a round after a database fault: from resolving once more
            if req is None:
                req = start_step(rt, request_id, S.RESOLVING)
            # Nothing Amplitude may already hold is given up on a fault that waiting fixes: transient
            # faults are retried until the deadline, refused credentials pause the project
            # (docs/operations.md, "Transient faults").
            with steps.retry_policy(steps.RetryPolicy(horizon=req.deadline, pause_on_auth=True)):
                status = _resolve_and_queue(rt, request_id, req.identifiers, req.options, again=again)
            break
        except ShuttingDown:
            raise
        except Exception as exc:  # deliberate errors and unexpected ones alike end the request (dsr/failures.py)
            if torn_down(exc):  # a step outlived DBOS (this process is stopping): nothing failed
                raise ShuttingDown("this process is shutting down; the workflow resumes from its last step") from exc
            if steps.wait_out_database_fault(rt, request_id, exc, rounds):
                rounds += 1  # every phase is driven by stored state: running it again resumes it
                continue
            status = fail(rt, request_id, exc)
            break
    if status == S.QUEUED:
        return status
    return conclude(rt, request_id, status, [], req.options.get("out_dir") if req is not None else None)


def _resolve_and_queue(
    rt: Runtime, request_id: str, raw_identifiers: list[dict[str, str]], options: dict[str, object], *, again: bool
) -> str:
    if again:  # a round after a database fault starts from resolving once more
        progress_step(rt, request_id, S.RESOLVING)
    identifiers = [Identifier.model_validate(i) for i in raw_identifiers]
    imap = load_identity_map(rt, identifiers, dict(options))
    projects = projects_for(rt, dict(options))
    if options.get("deletion_path") == direct.DIRECT:
        return _submit_as_given(rt, request_id, identifiers, projects, imap)
    with rt.resolve_gate:  # counted as resolving while it waits: more IDs are coming
        resolved = resolve(rt, request_id, identifiers, projects, identity_map=imap)
    subjects = resolved.resolution.subjects
    # The audit trail is permanent and hash-chained: it holds the resolution's digest, not the
    # resolution (which names identifiers and lives in the request's result until retention ends).
    detail = {"subjects": len(subjects), "amplitude_ids": sum(len(s.all_amplitude_ids) for s in subjects),
              "resolution_digest": audit.content_digest(resolved.resolution.model_dump(mode="json"))}  # fmt: skip
    fields = {"result": {"resolution": resolved.resolution.model_dump(mode="json")}}
    if not subjects:
        record_step(rt, request_id, S.RESOLVED, kind="resolved", detail=detail, fields=fields)
        _refuse_ambiguous(resolved.resolution)
        return S.NOTHING_FOUND
    org_wide = bool(options.get("org_wide"))
    queued = {"amplitude_ids": sum(len(s.all_amplitude_ids) for s in subjects)}
    # Resolved and queued in one step: the IDs, the status and both entries commit together, and
    # a request cancelled meanwhile has nothing queued.
    if not record_step(
        rt, request_id, S.QUEUED, kind="queued", detail=queued, fields=fields, before=[("resolved", detail)],
        then=lambda conn: _queue_subjects(conn, request_id, subjects, org_wide),
    ):  # fmt: skip
        return S.CANCELLED
    for project in sorted({s.project for s in subjects}):
        start_flusher(rt, project)
    return S.QUEUED


def _refuse_ambiguous(resolution: Resolution) -> None:
    unresolved = [d for d in resolution.unresolved_details() if d.ambiguous]
    if unresolved:
        # "Nothing found" would be false: Amplitude answered with somebody else.
        raise DomainError(
            f"{len(unresolved)} identifier(s) could not be resolved exactly (User Search answered with a "
            "different Amplitude user); nothing was submitted to Amplitude. Submit the person's Amplitude ID "
            "(--amplitude-id) or use an identity map"
        )


def _submit_as_given(
    rt: Runtime, request_id: str, identifiers: list[Identifier], projects: list[str], imap: dict[str, list[str]]
) -> str:
    """The direct path (``dsr/direct.py``): user IDs and Amplitude IDs are queued as they are;
    only device IDs are resolved first."""
    plan = direct.plan(identifiers, imap)
    resolution = Resolution(attempts=[], subjects=[])
    if plan.resolve_first:
        with rt.resolve_gate:
            resolution = resolve(rt, request_id, plan.resolve_first, projects, identity_map=imap).resolution
    subjects = resolution.subjects
    counts = {"user_ids": len(plan.user_ids), "amplitude_ids": len(plan.amplitude_ids), "subjects": len(subjects)}
    digest = audit.content_digest(resolution.model_dump(mode="json"))
    submitted = {"user_ids": plan.user_ids, "amplitude_ids": plan.amplitude_ids, "projects": projects}
    fields = {"result": {"resolution": resolution.model_dump(mode="json"), "submitted_as_given": submitted}}
    detail = {"path": direct.DIRECT, **counts, "resolution_digest": digest}
    if not (plan.user_ids or plan.amplitude_ids or subjects):
        record_step(rt, request_id, S.RESOLVED, kind="resolved", detail=detail, fields=fields)
        _refuse_ambiguous(resolution)
        return S.NOTHING_FOUND

    def queue(conn: Connection) -> int:
        return direct.queue_in(conn, request_id, projects, plan, False) + _queue_subjects(
            conn, request_id, subjects, False
        )

    if not record_step(
        rt, request_id, S.QUEUED, kind="queued", detail={"path": direct.DIRECT, **counts}, fields=fields,
        before=[("resolved", detail)], then=queue,
    ):  # fmt: skip
        return S.CANCELLED
    for project in sorted(set(projects) | {s.project for s in subjects}):
        start_flusher(rt, project)
    return S.QUEUED
