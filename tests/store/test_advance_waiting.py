"""Requests waiting on their jobs move to their jobs' aggregate status in bulk
(``jobs_store.advance_waiting``): one statement per kind of move and 500 requests, and only
requests still waiting move (a verifying or final one is never touched)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from amplitude_dsr.store import jobs as jobs_store
from amplitude_dsr.store import repo
from amplitude_dsr.store.db import make_engine
from amplitude_dsr.store.tables import requests


def test_a_thousand_requests_move_in_a_few_statements_and_only_waiting_ones(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'dsr.sqlite'}")
    repo.create_tables(engine)
    ids = []
    for n in range(1_203):
        row, _ = repo.insert_request(
            engine, kind="deletion", identifiers=[], options={}, regulation="gdpr", deadline_days=30,
            request_id=f"req_{n:04d}",
        )  # fmt: skip
        ids.append(row.id)
    before = dict.fromkeys(ids[:1000], "staging") | dict.fromkeys(ids[1000:1200], "submitted")
    before |= {ids[1_200]: "verifying", ids[1_201]: "verified", ids[1_202]: "staging"}
    with engine.begin() as conn:
        for rid, status in before.items():
            conn.execute(requests.update().where(requests.c.id == rid).values(status=status))
    target = dict.fromkeys(ids, "done") | {ids[1_202]: "staging"}  # the last one is already there

    updates: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        changed = jobs_store.advance_waiting(engine, target)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sorted(changed) == sorted(
        [(rid, "staging", "done") for rid in ids[:1_000]] + [(rid, "submitted", "done") for rid in ids[1_000:1_200]]
    )
    assert len(updates) == 3  # 1,000 staging in two statements of 500, 200 submitted in one
    with engine.connect() as conn:
        now = dict(conn.execute(sa.select(requests.c.id, requests.c.status)).all())
    assert {now[rid] for rid in ids[:1_200]} == {"done"}
    assert (now[ids[1_200]], now[ids[1_201]], now[ids[1_202]]) == ("verifying", "verified", "staging")
    engine.dispose()
