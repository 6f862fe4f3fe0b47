"""What a request's state means in OpenDSR terms: pure functions of our stored rows.

OpenDSR knows four statuses; ours are finer (``states.py``). The mapping:

=====================  ===========================================================
OpenDSR                ours
=====================  ===========================================================
``pending``            ``received`` (stored, not started), ``held`` (waiting for approval)
``in_progress``        everything between (resolving, collecting, queued, staging,
                       submitted, done, verifying, ...)
``completed``          final and not cancelled: ``completed`` (access),
                       ``verified``, ``recollected``, ``still_present``,
                       ``nothing_found`` (deletion), and ``failed``
``cancelled``          ``cancelled``
=====================  ===========================================================

OpenDSR has no "failed": a failed request is ``completed`` with our extension saying
``"state": "failed"`` and the reason, so a controller that reads only the standard fields stops
waiting, and one that reads the extension knows to act. The extension (keyed by the processor's
domain) always carries our detailed state.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from amplitude_dsr.dsr import api
from amplitude_dsr.states import RequestStatus as S
from amplitude_dsr.states import is_final
from amplitude_dsr.store import repo

API_VERSION = "2.0"
# A deletion job is `done` about 2 days (scrub) + 5 days (backups expire) after its `day`
# (docs/amplitude.md#job-lifecycle): what we promise for an erasure once its job day is known.
DONE_AFTER_JOB_DAY = timedelta(days=7)


def opendsr_status(kind: str, status: str) -> str:
    """``pending``, ``in_progress``, ``completed`` or ``cancelled`` for one of our statuses."""
    if status in (S.RECEIVED, S.HELD):
        return "pending"
    if status == S.CANCELLED:
        return "cancelled"
    if is_final(kind, status):
        return "completed"
    return "in_progress"


def expected_completion(row: repo.RequestRow, items: list[repo.Item]) -> datetime:
    """When we expect the request to be fulfilled: once final, when it was; an erasure with
    known job days, the latest job day plus the scrub and backup days; else the regulation's
    deadline."""
    if is_final(row.kind, row.status) and row.completed_at is not None:
        return row.completed_at
    days = sorted({i.job_day for i in items if i.job_day})
    if row.kind == "deletion" and days:
        last = datetime.combine(datetime.fromisoformat(days[-1]).date(), time(), tzinfo=row.created_at.tzinfo)
        return last + DONE_AFTER_JOB_DAY
    return row.deadline


def results_count(row: repo.RequestRow) -> int | None:
    """Access: the events found (all subjects); deletion: the Amplitude IDs handled."""
    result = row.result or {}
    if row.kind == "access" and row.status == S.COMPLETED:
        return sum(int(s.get("events") or 0) for s in result.get("subjects") or [])
    return None


def evidence_sha256(out_dir: str | None) -> str | None:
    """SHA-256 of the evidence: the access package's ``manifest.json`` (which holds every file's
    hash) or the deletion certificate; ``None`` before it exists."""
    if not out_dir:
        return None
    path = Path(out_dir)
    target = path / "manifest.json" if path.is_dir() else path
    try:
        return hashlib.sha256(target.read_bytes()).hexdigest()
    except OSError:
        return None


def detail(row: repo.RequestRow, items: list[repo.Item]) -> dict[str, Any]:
    """Our extension block: what OpenDSR cannot say. No identifier values, only counts."""
    doc: dict[str, Any] = {
        "request_id": row.id,
        "kind": row.kind,
        "state": row.status,
        "regulation": row.regulation,
        "deadline": row.deadline.isoformat(),
        "created_at": row.created_at.isoformat(),
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
    }
    if row.status == S.FAILED:
        doc["error"] = row.error or "the request failed"
    result = row.result or {}
    if row.kind == "access" and "subjects" in result:
        doc["data_held"] = bool(result.get("data_held", bool(result["subjects"])))
        doc["subjects"] = len(result["subjects"])
        completeness = result.get("completeness")
        if isinstance(completeness, dict):
            doc["complete"] = bool(completeness.get("complete", True))
            doc["partial_reasons"] = [str(r) for r in completeness.get("reasons") or []]
    if row.kind == "deletion":
        doc["amplitude_ids"], doc["jobs"] = api.deletion_summary(items)
        doc["verified"] = row.status == S.VERIFIED
        doc["recollected"] = row.status == S.RECOLLECTED
        doc["no_data_held"] = row.status == S.NOTHING_FOUND
    doc["evidence_sha256"] = evidence_sha256(row.out_dir) if is_final(row.kind, row.status) else None
    return doc


def status_body(
    *,
    subject_request_id: str,
    controller_id: str,
    domain: str,
    row: repo.RequestRow,
    items: list[repo.Item],
    callback_url: str | None = None,
    results_url: str | None = None,
) -> dict[str, Any]:
    """The OpenDSR status document of a request (``GET /requests/{id}``, and each callback with
    its ``status_callback_url``), JSON-ready."""
    doc: dict[str, Any] = {
        "controller_id": controller_id,
        "expected_completion_time": expected_completion(row, items).isoformat(),
        "subject_request_id": subject_request_id,
        "request_status": opendsr_status(row.kind, row.status),
        "api_version": API_VERSION,
        "results_url": results_url,
        "results_count": results_count(row),
        "extensions": {domain: detail(row, items)},
    }
    if callback_url is not None:
        doc["status_callback_url"] = callback_url
    return doc
