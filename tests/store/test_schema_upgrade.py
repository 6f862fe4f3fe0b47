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
