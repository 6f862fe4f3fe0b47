"""A database made by an older version gains the columns this one needs when it opens it."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from amplitude_dsr.store import repo
from amplitude_dsr.store.db import make_engine


def test_an_older_requests_table_gains_purged_at_and_keeps_its_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        repo.create_tables(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE dsr_requests DROP COLUMN purged_at")  # as an older version made it
            conn.exec_driver_sql(
                "INSERT INTO dsr_requests (id, kind, status, regulation, created_at, updated_at, deadline, "
                "identifiers, options) VALUES ('r1', 'access', 'completed', 'gdpr', '2026-01-01', '2026-01-01', "
                "'2026-02-01', '[]', '{}')"
            )
        assert "purged_at" not in {c["name"] for c in sa.inspect(engine).get_columns("dsr_requests")}
        repo.create_tables(engine)
        repo.create_tables(engine)  # idempotent
        assert "purged_at" in {c["name"] for c in sa.inspect(engine).get_columns("dsr_requests")}
        assert repo.get_request(engine, "r1").status == "completed"
    finally:
        engine.dispose()


def test_an_older_audit_table_gains_its_write_key_and_keeps_its_chain(tmp_path: Path) -> None:
    from amplitude_dsr.store import audit

    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        repo.create_tables(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_dsr_audit_write_key")
            conn.exec_driver_sql("ALTER TABLE dsr_audit DROP COLUMN write_key")  # as an older version made it
            conn.exec_driver_sql(
                "INSERT INTO dsr_audit (request_id, at, kind, detail, prev_hash, hash) "
                "VALUES ('r1', '2026-01-01T00:00:00+00:00', 'received', '{}', '', '')"
            )
        repo.create_tables(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM dsr_audit")  # the hand-made row above is not chained
            first = audit.append(conn, "r1", "received", {}, write_key="wf#1")
            assert audit.append(conn, "r1", "received", {}, write_key="wf#1") == first  # once
            audit.append(conn, "r1", "other", {})
        with engine.connect() as conn:
            audit.verify(conn)
            assert [e.kind for e in audit.entries(conn, "r1")] == ["received", "other"]
    finally:
        engine.dispose()
