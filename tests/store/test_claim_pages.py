"""A batch is claimed from pages of the queue (P-8): the same IDs and items as :func:`pick_batch`
over every queued row, whatever the duplicates and wherever they lie."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from amplitude_dsr.store import repo
from amplitude_dsr.store.db import make_engine
from amplitude_dsr.store.tables import deletion_items


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paged_claims_pick_what_the_whole_queue_would(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repo, "CLAIM_PAGE", 7)  # many pages for a small queue
    rnd = random.Random(seed)
    engine = make_engine(f"sqlite:///{tmp_path / 'dsr.sqlite'}")
    repo.create_tables(engine)
    now = datetime.now(UTC)
    ids = [rnd.randint(1, 150) for _ in range(400)]  # many IDs queued by several requests
    with engine.begin() as conn:
        conn.execute(deletion_items.insert(), [
            {"request_id": f"req_{i}", "project": "web", "amplitude_id": aid, "org_wide": False, "state": "queued",
             "created_at": now} for i, aid in enumerate(ids)
        ])  # fmt: skip
    posted: list[int] = []
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(deletion_items.c.id, deletion_items.c.amplitude_id)
                .where(deletion_items.c.state == "queued")
                .order_by(deletion_items.c.id)
            ).all()
        expected_ids, expected_items = repo.pick_batch([(int(r[0]), int(r[1])) for r in rows])
        batch = repo.claim_batch(engine, "web", False)
        if batch is None:
            assert expected_ids == []
            break
        assert batch.amplitude_ids == expected_ids
        with engine.connect() as conn:
            claimed = (
                conn.execute(
                    sa.select(deletion_items.c.id)
                    .where(deletion_items.c.batch_id == batch.id)
                    .order_by(deletion_items.c.id)
                )
                .scalars()
                .all()
            )
        assert list(claimed) == expected_items
        posted += batch.amplitude_ids
    assert sorted(posted) == sorted(set(ids))  # every ID in exactly one batch
    engine.dispose()


def test_cancel_drops_held_items_and_user_ids_too(tmp_path: Path) -> None:
    """A deletion put on hold in the console and then cancelled (CLI or console) has nothing left
    that a release could post: its held IDs and user IDs end cancelled, the user IDs forgotten."""
    from amplitude_dsr.store import names

    engine = make_engine(f"sqlite:///{tmp_path / 'dsr.sqlite'}")
    repo.create_tables(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(deletion_items.insert(), [
            {"request_id": "req_held", "project": "web", "amplitude_id": aid, "org_wide": False, "state": "held",
             "created_at": now} for aid in (1, 2)
        ])  # fmt: skip
    with repo.write_tx(engine) as conn:
        names.queue_names(conn, "req_held", "web", ["someone@example.org"], org_wide=False)
        conn.execute(names.deletion_names.update().values(state="held"))
    assert repo.cancel_items(engine, "req_held", only_queued=True) == 3
    with engine.connect() as conn:
        assert {r[0] for r in conn.execute(sa.select(deletion_items.c.state))} == {"cancelled"}
        assert conn.execute(sa.select(names.deletion_names.c.state, names.deletion_names.c.user_id)).all() == [
            ("cancelled", None)
        ]
