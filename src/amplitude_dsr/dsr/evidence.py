"""Assemble the evidence of a deletion request from the store: receipts, status history (from
the hash-chained audit trail) and verification, as a :class:`DeletionResult`."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from amplitude_dsr.dsr.model import DeletionResult, Identifier, Receipt, Resolution, StatusChange, Verification
from amplitude_dsr.store import audit, repo
from amplitude_dsr.store.tables import deletion_batches, deletion_items

HISTORY_KINDS = {
    "received", "resolved", "queued", "deletion_receipt", "deletion_reconciled", "deletion_post_uncertain",
    "deletion_post_failed", "job_status", "verified", "recollected", "still_present", "cancelled", "failed",
    "nothing_scheduled", "deletion_lookup", "follow_up",
}  # fmt: skip


def receipts_for(engine: sa.Engine, request_id: str) -> list[Receipt]:
    """One receipt per (batch, job) that holds any of this request's Amplitude IDs.

    A batch carries the IDs of many requests (many people): a receipt keeps only this request's
    own IDs, in ``amplitude_ids`` and in ``invalid_ids`` alike."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deletion_batches, deletion_items.c.amplitude_id)
            .join(deletion_items, deletion_items.c.batch_id == deletion_batches.c.id)
            .where(deletion_items.c.request_id == request_id)
        ).all()
    mine: dict[str, set[int]] = {}
    batches: dict[str, sa.Row[tuple[object, ...]]] = {}
    for row in rows:
        mine.setdefault(row.id, set()).add(int(row.amplitude_id))
        batches[row.id] = row
    receipts: list[Receipt] = []
    for batch_id, row in batches.items():
        for job in row.receipt or []:
            entries = [e for e in job.get("amplitude_ids", []) if int(e["amplitude_id"]) in mine[batch_id]]
            own = {str(i) for i in mine[batch_id]}
            if not entries:
                continue
            receipts.append(
                Receipt(
                    project=row.project, batch_id=batch_id, job_day=job["day"], status=job["status"],
                    amplitude_ids=sorted(int(e["amplitude_id"]) for e in entries),
                    requested_on_day=entries[0].get("requested_on_day"),
                    invalid_ids=[str(i) for i in job.get("invalid_ids", []) if str(i) in own], app=job.get("app"),
                    recorded_at=row.posted_at or row.created_at, reconciled=row.state == "reconciled",
                )
            )  # fmt: skip
    return receipts


def history_for(engine: sa.Engine, request_id: str, chain: audit.ChainWatch) -> tuple[list[StatusChange], str]:
    """Status changes of the request from its audit entries, and the verified chain head (what
    was appended since ``chain`` last verified it is walked, not the whole chain)."""
    head = chain.verified_head(engine)
    with engine.connect() as conn:
        entries = audit.entries(conn, request_id)
    history = []
    for entry in entries:
        if entry.kind not in HISTORY_KINDS:
            continue
        detail = entry.detail
        if entry.kind == "job_status":
            scope = f"job {detail.get('project')} {detail.get('day')}"
            status = str(detail.get("status"))
            scrubbed = detail.get("active_scrub_done_date")
            text = f"active scrub done {scrubbed}" if scrubbed else ""
        else:
            scope, status = "request", entry.kind
            text = ", ".join(f"{k}={v}" for k, v in sorted(detail.items()) if k != "resolution")
        history.append(StatusChange(at=entry.at, scope=scope, status=status, detail=text))
    return history, head


def build_deletion_result(
    engine: sa.Engine, request_id: str, status: str, verifications: list[Verification], chain: audit.ChainWatch
) -> DeletionResult:
    """Everything the certificate states, read back from the store."""
    req = repo.get_request(engine, request_id)
    resolution = Resolution.model_validate((req.result or {}).get("resolution", {}))
    history, head = history_for(engine, request_id, chain)
    return DeletionResult(
        request_id=request_id, created_at=req.created_at, completed_at=datetime.now(UTC),
        regulation="ccpa" if req.regulation == "ccpa" else "gdpr",
        requester=str(req.options.get("requester") or "amplitude-dsr"),
        org_wide=bool(req.options.get("org_wide")), status=status,
        identifiers=[Identifier.model_validate(i) for i in req.identifiers], resolution=resolution,
        receipts=receipts_for(engine, request_id), history=history, verifications=verifications,
        audit_head=head, failure_reason=req.error if status == "failed" else None,
    )  # fmt: skip
