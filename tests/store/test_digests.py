"""The indexed identifier digests (``store/digests.py``): written with each request, found by
digest, and filled once from the audit trail on a database made before the table."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from amplitude_dsr.store import audit, digests, repo
from amplitude_dsr.store.tables import identifier_digests


def test_backfill_from_received_entries_runs_once(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'digests.sqlite'}")
    repo.create_tables(engine)
    email = audit.identifier_digest("email", "someone@example.com")
    device = audit.identifier_digest("device_id", "d-1")
    with engine.begin() as conn:  # what an older version wrote: the audit entry only
        audit.append(conn, "dsr_old_1", "received", {"kind": "access", "identifiers": [email, device]})
        audit.append(conn, "dsr_old_2", "received", {"kind": "deletion", "identifiers": [email]})
        audit.append(conn, "dsr_old_2", "queued", {"identifiers": [device]})  # not a received entry
    with engine.connect() as conn:
        assert digests.requests_with(conn, [email]) == []
    assert digests.backfill(engine) == 3
    with engine.connect() as conn:
        assert sorted(digests.requests_with(conn, [email])) == ["dsr_old_1", "dsr_old_2"]
        assert digests.requests_with(conn, [device]) == ["dsr_old_1"]
        assert digests.requests_with(conn, []) == []
    with engine.begin() as conn:
        conn.execute(identifier_digests.delete())
    assert digests.backfill(engine) == 0  # recorded as done: it does not scan the trail again
    with engine.begin() as conn:
        assert digests.record(conn, [("dsr_new", [email, email])]) == 1
        assert digests.record(conn, [("dsr_new", [email])]) == 1  # again: ignored, no error
        assert digests.requests_with(conn, [email]) == ["dsr_new"]
    engine.dispose()
