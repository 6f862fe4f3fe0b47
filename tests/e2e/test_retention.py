"""Retention: once a final request is older than the retention period, nothing on our side names
the person (our tables, DBOS's checkpoints, the operator record), while the evidence stays: the
audit trail still verifies, the delivered package and certificate are untouched, ``status`` works."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from amplitude_dsr.cli.requests import request_document
from amplitude_dsr.dsr import api, retention
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.store import audit, repo

from .test_sealing import dbos_values


def our_rows(engine: sa.Engine) -> str:
    """Every row of our own tables, as text."""
    text = []
    with engine.connect() as conn:
        for table in ("dsr_requests", "dsr_audit", "dsr_deletion_items", "dsr_deletion_batches"):
            text += [json.dumps(list(r), default=str) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]
    return "\n".join(text)


def test_a_final_request_past_its_retention_names_nobody_and_keeps_its_evidence(
    make_runtime: Callable[..., Runtime], catalog: dict[str, Any], db_url: str, tmp_path: Path
) -> None:
    person, other = catalog["web"]["ordinary"][2], catalog["web"]["ordinary"][3]
    rt = make_runtime(retention_days=30)
    access, _ = api.submit(
        rt, "access", [Identifier.parse("email", person["user_id"])], options={"out_dir": str(tmp_path)}
    )
    deletion, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", other["user_id"])])
    assert api.wait(rt, access, timeout=120) == "completed"
    assert api.wait(rt, deletion, timeout=120) == "verified"
    operator = rt.data_dir / "operator"
    assert (operator / access).exists() and (operator / deletion).exists()
    # Before: the request names its subject (sealed at rest, readable with the data key).
    assert repo.get_request(rt.engine, access).identifiers == [{"kind": "email", "value": person["user_id"]}]
    assert person["user_id"] not in our_rows(rt.engine)
    now = datetime.now(UTC)

    assert retention.purge_due(rt, now=now + timedelta(days=29)) == 0  # not yet
    assert retention.purge_due(rt, now=now + timedelta(days=31)) == 2
    assert retention.purge_due(rt, now=now + timedelta(days=32)) == 0  # once

    rows = our_rows(rt.engine)
    for user in (person, other):
        assert user["user_id"] not in rows and user["device_ids"][0] not in rows
    assert not [v for v in dbos_values(db_url) if access in v[1] or deletion in v[1]]
    assert DBOS.get_workflow_status(access) is None and DBOS.get_workflow_status(deletion) is None
    assert not (operator / access).exists() and not (operator / deletion).exists()
    for rid, who in ((access, person), (deletion, other)):
        row = repo.get_request(rt.engine, rid)
        kind = "email" if rid == access else "user_id"
        assert row.identifiers == [{"kind": kind, "digest": audit.identifier_digest(kind, who["user_id"])}]
        assert "resolution" not in (row.result or {})
        assert request_document(row, repo.items_for(rt.engine, rid))["identifier_kinds"] == [kind]
        with rt.engine.connect() as conn:
            assert [e.kind for e in audit.entries(conn, rid)][-1] == "purged"
    with rt.engine.connect() as conn:
        audit.verify(conn)  # the chain is intact: nothing in it was rewritten
    package = Path(repo.get_request(rt.engine, access).out_dir or "")
    assert (package / "export.json").exists()  # what was delivered is the operator's to keep
    certificate = Path(repo.get_request(rt.engine, deletion).out_dir or "")
    assert (certificate / "certificate.json").exists()


def test_requests_still_running_are_never_purged(
    make_runtime: Callable[..., Runtime], catalog: dict[str, Any], tmp_path: Path
) -> None:
    rt = make_runtime(retention_days=0)
    user = catalog["web"]["ordinary"][4]
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user["user_id"])])
    later = datetime.now(UTC) + timedelta(days=400)
    assert retention.purge_due(rt, now=later) == 0
    assert api.wait(rt, rid, timeout=120) == "verified"
    assert retention.purge_due(rt, now=later) == 1
