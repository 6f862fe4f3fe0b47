"""``dsr.evidence``: a receipt of a batch shared by several requests holds only this request's IDs."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from amplitude_dsr.dsr.evidence import receipts_for
from amplitude_dsr.store import repo


def _request(engine: sa.Engine, ids: list[int]) -> str:
    row, _ = repo.insert_request(
        engine, kind="deletion", identifiers=[], options={}, regulation="gdpr", deadline_days=30
    )
    repo.queue_items(engine, row.id, "web", ids, org_wide=False)
    return row.id


def test_a_shared_batch_receipt_keeps_only_this_requests_ids(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dsr.sqlite'}")
    repo.create_tables(engine)
    mine = _request(engine, [101, 102])
    theirs = _request(engine, [201, 202])
    batch = repo.claim_batch(engine, "web", False)
    assert batch is not None and sorted(batch.amplitude_ids) == [101, 102, 201, 202]
    assert repo.mark_posting(engine, batch.id, "test:boot")
    job = {
        "day": "2024-09-05", "status": "staging", "app": 1,
        "amplitude_ids": [{"amplitude_id": 101, "requested_on_day": "2024-08-05"},
                          {"amplitude_id": 201, "requested_on_day": "2024-08-05"}],
        "invalid_ids": [102, 202],
    }  # fmt: skip
    days = {101: ("2024-09-05", "staging"), 201: ("2024-09-05", "staging")}
    assert repo.record_receipt(engine, batch.id, [job], days, [102, 202])
    [receipt] = receipts_for(engine, mine)
    assert receipt.amplitude_ids == [101] and receipt.invalid_ids == ["102"]
    [other] = receipts_for(engine, theirs)
    assert other.amplitude_ids == [201] and other.invalid_ids == ["202"]
