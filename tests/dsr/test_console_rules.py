"""The rules behind the console's retry and hold actions, as tables (``dsr/retry.py``,
``dsr/holding.py``), and the flusher's claim skipping held IDs (``store/repo.py claim_batch``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from amplitude_dsr.dsr import holding, retry
from amplitude_dsr.errors import DomainError
from amplitude_dsr.store import repo
from amplitude_dsr.store.tables import deletion_items

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def row(kind: str = "deletion", status: str = "failed") -> repo.RequestRow:
    return repo.RequestRow(
        id="dsr_x", kind=kind, status=status, regulation="gdpr", created_at=NOW, updated_at=NOW, deadline=NOW,
        completed_at=None, identifiers=[], options={}, result=None, out_dir=None, error=None, idempotency_key=None,
    )  # fmt: skip


def item(state: str, job_status: str | None = None, batch: str | None = "b1") -> repo.Item:
    return repo.Item("web", 1, state, batch, "2030-01-01" if job_status else None, job_status, False)


@pytest.mark.parametrize(
    ("kind", "status", "items", "names", "errors", "expected"),
    [
        ("access", "failed", [], 0, [], "resolution"),
        ("deletion", "failed", [], 0, [], "resolution"),
        ("deletion", "failed", [item("receipted", "done"), item("failed")], 0, ["x (409 /api)"], "submission"),
        ("deletion", "failed", [item("receipted", "done"), item("invalid")], 0, [], "verification"),
        ("deletion", "failed", [item("failed")], 0, ["Amplitude refused (400 /api/2/deletions/users)"], "bad request"),
        ("deletion", "failed", [item("failed")], 0, ["refused (422 /api)"], "bad request"),
        ("deletion", "failed", [item("receipted", "done")], 2, [], "not kept"),
        ("deletion", "failed", [item("receipted", "staging")], 0, [], "not done yet"),
        ("deletion", "verified", [], 0, [], "only a failed request"),
        ("access", "completed", [], 0, [], "only a failed request"),
    ],
)
def test_where_a_retry_restarts(
    kind: str, status: str, items: list[repo.Item], names: int, errors: list[str | None], expected: str
) -> None:
    if expected in ("resolution", "submission", "verification"):
        assert retry.plan(row(kind, status), items, names, errors).restart == expected
    else:
        with pytest.raises(DomainError, match=expected):
            retry.plan(row(kind, status), items, names, errors)


@pytest.mark.parametrize(
    ("kind", "status", "items", "expected"),
    [
        ("access", "received", [], None),
        ("deletion", "received", [], None),
        ("deletion", "queued", [item("queued", batch=None)], None),
        ("deletion", "queued", [item("queued", batch=None), item("batched")], "cannot be paused"),
        ("deletion", "resolving", [], "hold it once its IDs are queued"),
        ("access", "resolving", [], "cannot be paused half-way"),
        ("access", "collecting", [], "only before collection"),
        ("deletion", "staging", [item("receipted", "staging")], "cannot be paused"),
        ("deletion", "held", [], "already on hold"),
        ("deletion", "verified", [], "nothing is left to hold"),
    ],
)
def test_what_can_be_held(kind: str, status: str, items: list[repo.Item], expected: str | None) -> None:
    found = holding.refusal(row(kind, status), items)
    assert (found is None) if expected is None else (found is not None and expected in found)


def test_a_claim_skips_held_ids(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'claim.sqlite'}")
    repo.create_tables(engine)
    (held_request, _), (other, _) = (
        repo.insert_request(engine, kind="deletion", identifiers=[], options={}, regulation="gdpr", deadline_days=30)
        for _ in range(2)
    )
    repo.queue_items(engine, held_request.id, "web", [11, 12], org_wide=False)
    repo.queue_items(engine, other.id, "web", [12, 13], org_wide=False)
    with engine.begin() as conn:
        holding.hold_items(conn, held_request.id)
    batch = repo.claim_batch(engine, "web", False)
    assert batch is not None and sorted(batch.amplitude_ids) == [12, 13]  # 11 is only the held request's
    with engine.connect() as conn:
        states = dict(
            conn.execute(
                sa.select(deletion_items.c.amplitude_id, deletion_items.c.state).where(
                    deletion_items.c.request_id == held_request.id
                )
            ).all()
        )
    assert states == {11: "held", 12: "held"}  # never in the batch, though 12 is in it for the other request
    assert repo.claim_batch(engine, "web", False) is None
    engine.dispose()
