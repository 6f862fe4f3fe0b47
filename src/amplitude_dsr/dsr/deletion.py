"""The deletion workflow: resolve, queue, submit (batched, exactly once), track for days or
weeks, verify, and write the certificate.

Every wait is a durable DBOS sleep; every Amplitude call a checkpointed step. A restart at any
point resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dbos import DBOS

from amplitude_dsr.amplitude.models import DeletionJob
from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr import steps
from amplitude_dsr.dsr.access import DBOS_now, load_identity_map, load_step, projects_for, set_status_step
from amplitude_dsr.dsr.evidence import build_deletion_result
from amplitude_dsr.dsr.identity import judge, search_terms
from amplitude_dsr.dsr.model import Identifier, Subject, Verification
from amplitude_dsr.dsr.report import write_certificate
from amplitude_dsr.dsr.resolve import resolve
from amplitude_dsr.dsr.runtime import current
from amplitude_dsr.dsr.submission import flush_step
from amplitude_dsr.errors import DsrError
from amplitude_dsr.store import repo

SUBMIT_CHECK_INTERVAL = 2.0  # seconds between checks for this request's receipt
FINAL = ("verified", "recollected", "still_present", "nothing_found", "cancelled", "failed")


@DBOS.step()
def queue_step(request_id: str, subjects: list[Subject], org_wide: bool) -> int:
    total = 0
    for subject in subjects:
        total += repo.queue_items(current().engine, request_id, subject.project, subject.all_amplitude_ids, org_wide=org_wide)
    return total


@DBOS.step()
def items_step(request_id: str) -> list[repo.Item]:
    return repo.items_for(current().engine, request_id)


@DBOS.step()
def status_step(request_id: str) -> str:
    return repo.get_request(current().engine, request_id).status


@DBOS.step(retries_allowed=False)
def list_jobs_step(project: str, day: str) -> list[DeletionJob]:
    start, end = logic.job_window(day)
    return current().client(project).list_deletions(start, end)


@DBOS.step()
def job_status_step(request_id: str, project: str, day: str, status: str) -> None:
    repo.set_job_status(current().engine, request_id, project, day, status)


@DBOS.step()
def certificate_step(request_id: str, status: str, verifications: list[Verification], out_dir: str) -> str:
    result = build_deletion_result(current().engine, request_id, status, verifications)
    return str(write_certificate(result, Path(out_dir)))


@DBOS.workflow()
def deletion_workflow(request_id: str) -> str:
    """Run one deletion request to a final state; returns it."""
    req = load_step(request_id)
    out_dir = req.options.get("out_dir") or str(current().data_dir / "output")
    verifications: list[Verification] = []
    try:
        status, verifications = _run(request_id, req.identifiers, req.options)
    except DsrError as exc:
        steps.audit_step(request_id, "failed", {"reason": steps.fatal_message(exc)})
        set_status_step(request_id, "failed", {"error": steps.fatal_message(exc)})
        status = "failed"
    if status == "cancelled":
        return status
    path = certificate_step(request_id, status, verifications, out_dir)
    set_status_step(request_id, status, {"out_dir": path})
    return status


def _run(
    request_id: str, raw_identifiers: list[dict[str, str]], options: dict[str, Any]
) -> tuple[str, list[Verification]]:
    set_status_step(request_id, "resolving")
    identifiers = [Identifier.model_validate(i) for i in raw_identifiers]
    imap = load_identity_map(identifiers, options)
    projects = projects_for(options)
    resolved = resolve(request_id, identifiers, projects, identity_map=imap)
    subjects = resolved.resolution.subjects
    steps.audit_step(
        request_id, "resolved",
        {"subjects": len(subjects), "amplitude_ids": sum(len(s.all_amplitude_ids) for s in subjects),
         "resolution": resolved.resolution.model_dump(mode="json")},
    )  # fmt: skip
    set_status_step(request_id, "resolved", {"result": {"resolution": resolved.resolution.model_dump(mode="json")}})
    if not subjects:
        return "nothing_found", []
    queue_step(request_id, subjects, bool(options.get("org_wide")))
    set_status_step(request_id, "queued")
    steps.audit_step(request_id, "queued", {"amplitude_ids": sum(len(s.all_amplitude_ids) for s in subjects)})
    items = _submit(request_id)
    if items is None:
        return "cancelled", []
    receipted = [i for i in items if i.state == "receipted"]
    if not receipted:
        steps.audit_step(request_id, "nothing_scheduled", {"items": len(items)})
        return ("failed" if any(i.state == "failed" for i in items) else "nothing_found"), []
    if not _track(request_id, receipted):
        return "cancelled", []
    set_status_step(request_id, "verifying")
    verifications = _verify(identifiers, projects, receipted, imap)
    outcomes = {v.outcome for v in verifications}
    final = "verified" if outcomes <= {"verified"} else ("still_present" if "still_present" in outcomes else "recollected")
    steps.audit_step(request_id, final, {"checked": len(verifications)})
    return final, verifications


def _submit(request_id: str) -> list[repo.Item] | None:
    while True:
        if status_step(request_id) == "cancelled":
            return None
        steps.call(flush_step)
        items = items_step(request_id)
        if not any(i.state in ("queued", "batched") for i in items):
            return items
        DBOS.sleep(min(SUBMIT_CHECK_INTERVAL, current().settings.poll_interval))


def _track(request_id: str, items: Sequence[repo.Item]) -> bool:
    jobs: dict[tuple[str, str], list[int]] = {}
    for item in items:
        assert item.job_day is not None
        jobs.setdefault((item.project, item.job_day), []).append(item.amplitude_id)
    known = {key: next(i.job_status for i in items if (i.project, i.job_day) == key) for key in jobs}
    set_status_step(request_id, _aggregate(known.values()))
    while True:
        for (project, day), ids in jobs.items():
            listing = steps.call(list_jobs_step, project, day)
            job = logic.job_status(listing, day, ids)
            if job is not None and job.status != known[(project, day)]:
                known[(project, day)] = job.status
                job_status_step(request_id, project, day, job.status)
                steps.audit_step(
                    request_id, "job_status",
                    {"project": project, "day": day, "status": job.status,
                     "active_scrub_done_date": job.active_scrub_done_date},
                )  # fmt: skip
        if status_step(request_id) == "cancelled":
            return False
        set_status_step(request_id, _aggregate(known.values()))
        if all(s == logic.FINAL_JOB_STATUS for s in known.values()):
            return True
        DBOS.sleep(current().settings.poll_interval)


def _aggregate(statuses: Any) -> str:
    values = [s or "staging" for s in statuses]
    return min(values, key=lambda s: logic.STATUS_ORDER.get(s, 0)) if values else "staging"


def _verify(
    identifiers: list[Identifier], projects: list[str], items: Sequence[repo.Item], imap: dict[str, list[str]]
) -> list[Verification]:
    deleted: dict[str, set[int]] = {}
    for item in items:
        deleted.setdefault(item.project, set()).add(item.amplitude_id)
    results: dict[tuple[Identifier, str], Verification] = {}
    for project in projects:
        for term in search_terms(identifiers, imap):
            result = steps.call(steps.search_step, project, term.term)
            accepted = [c for c in judge(term, result) if c.accepted]
            outcome, found, detail = logic.verification_outcome(accepted, deleted.get(project, set()))
            key = (term.identifier, project)
            previous = results.get(key)
            if previous is None or previous.outcome == "verified":
                results[key] = Verification(
                    identifier=term.identifier, project=project, outcome=outcome, checked_at=DBOS_now(),
                    deleted_amplitude_ids=sorted(deleted.get(project, set())), found_amplitude_ids=found,
                    detail=detail,
                )  # fmt: skip
    return [v for v in results.values() if v.deleted_amplitude_ids or v.outcome != "verified"]

