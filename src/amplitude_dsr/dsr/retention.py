"""Retention: personal data of a final request is kept only for ``retention_days``.

After that, :func:`purge_due` (run by every worker about every ten minutes) removes what names the
person from our side while keeping the evidence:

* the request's DBOS checkpoints (workflow inputs, step outputs, events: User Search answers,
  activity) are deleted (``DBOS.delete_workflows``);
* its identifiers in ``dsr_requests`` become their digests, its full resolution leaves the result
  (a digest of it stays), ``store/retention.py``;
* its operator record (``<data_dir>/operator/<request_id>``, other users' candidates) is deleted;
* one ``purged`` entry is appended to the audit trail, in the same transaction as the row change.

Kept: the audit trail (digests only), counts, statuses, dates, the deletion items' Amplitude IDs
(pseudonymous, as in the certificate) and the files delivered to the operator (the access package,
the certificate), which are the operator's to keep or delete. A request whose workflow is still
finishing is left for the next round. See docs/operations.md, "Retention".
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dbos import DBOS

from amplitude_dsr.dsr.finish import verification_id
from amplitude_dsr.dsr.periodic import PeriodicCheck
from amplitude_dsr.dsr.report._operator import operator_record_path
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.states import ACCESS_FINAL, DELETION_FINAL, WORKFLOW_ACTIVE
from amplitude_dsr.store import audit
from amplitude_dsr.store import retention as store

log = logging.getLogger(__name__)
PURGE_INTERVAL = 600.0  # seconds between a worker's purge rounds
PURGE_BATCH = 500  # requests per round


def purge_due(rt: Runtime, *, now: datetime | None = None, limit: int = PURGE_BATCH) -> int:
    """Purge every request final for longer than the retention period; returns how many."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=rt.settings.retention_days)
    final = {"access": ACCESS_FINAL, "deletion": DELETION_FINAL}
    purged = 0
    for request_id in store.due(rt.engine, final, cutoff, limit):
        status: Any = DBOS.get_workflow_status(request_id)
        if status is not None and status.status in WORKFLOW_ACTIVE:
            continue  # still writing its certificate or final status: next round
        verification: Any = DBOS.get_workflow_status(verification_id(request_id))
        if verification is not None and verification.status in WORKFLOW_ACTIVE:
            continue
        gone = [w.workflow_id for w in (status, verification) if w is not None]
        if gone:
            DBOS.delete_workflows(gone, delete_children=True)
        with rt.engine.begin() as conn:
            if not store.purge(conn, request_id, now):
                continue
            audit.append(
                conn, request_id, "purged",
                {"retention_days": rt.settings.retention_days, "checkpoints_deleted": bool(gone)},
            )  # fmt: skip
        shutil.rmtree(operator_record_path(rt.data_dir / "operator", request_id).parent, ignore_errors=True)
        shutil.rmtree(rt.data_dir / "work" / request_id, ignore_errors=True)
        purged += 1
    if purged:
        log.info("retention: purged %d request(s) final for more than %g days", purged, rt.settings.retention_days)
    return purged


class RetentionWatch(PeriodicCheck):
    """Run :meth:`tick` from a worker's main loop: a purge round every ``interval`` seconds (the
    first a minute after start)."""

    name = "retention round"

    def __init__(self, rt: Runtime, notice: Callable[[str], None], interval: float = PURGE_INTERVAL) -> None:
        super().__init__(interval, first=min(interval, 60.0))
        self.rt = rt
        self.notice = notice

    def check(self) -> int:
        purged = purge_due(self.rt)
        if purged:
            days = self.rt.settings.retention_days
            self.notice(f"retention: {purged} request(s) purged (final for more than {days:g} days)")
        return purged
