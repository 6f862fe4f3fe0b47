"""The audit trail: append, verify, tamper detection, and one chain across concurrent processes.

Runs on SQLite always and on PostgreSQL when ``AMPLITUDE_DSR_TEST_DATABASE_URL`` is set; each
PostgreSQL test gets its own schema (via ``schema_translate_map``), so other tests' rows are safe.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, text

from amplitude_dsr.errors import AuditTamperDetected
from amplitude_dsr.store import audit
from amplitude_dsr.store.audit import GENESIS_HASH, append, entries, head, verify

PG_URL = os.environ.get("AMPLITUDE_DSR_TEST_DATABASE_URL")


@dataclass
class Db:
    engine: Engine
    url: str
    schema: str | None

    @property
    def table(self) -> str:
        return f'"{self.schema}".dsr_audit' if self.schema else "dsr_audit"


def _engine(url: str, schema: str | None) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 60})
    engine = create_engine(url)
    return engine.execution_options(schema_translate_map={None: schema})


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        engine = _engine(url, None)
        audit.create_audit_tables(engine)
        yield Db(engine, url, None)
        engine.dispose()
        return
    if not PG_URL:
        pytest.skip("AMPLITUDE_DSR_TEST_DATABASE_URL not set")
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = _engine(PG_URL, schema)
    audit.create_audit_tables(engine)
    try:
        yield Db(engine, PG_URL, schema)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _fill(db: Db, n: int = 5) -> list[audit.AuditEntry]:
    written = []
    for i in range(n):
        with db.engine.begin() as conn:
            written.append(append(conn, f"req-{i % 2}", "step", {"i": i, "ids": ["sha256:ab"]}))
    return written


def test_empty_trail_verifies_to_genesis(db: Db) -> None:
    with db.engine.connect() as conn:
        assert verify(conn) == GENESIS_HASH
        assert head(conn) == GENESIS_HASH


def test_append_links_rows_and_verifies(db: Db) -> None:
    written = _fill(db)
    assert written[0].prev_hash == GENESIS_HASH
    assert [w.prev_hash for w in written[1:]] == [w.hash for w in written[:-1]]
    with db.engine.connect() as conn:
        assert verify(conn) == head(conn) == written[-1].hash
        assert entries(conn) == written
        assert [e.detail["i"] for e in entries(conn, "req-1")] == [1, 3]


def test_append_many_continues_the_chain_like_single_appends(db: Db) -> None:
    before = _fill(db, 2)
    with db.engine.begin() as conn:
        group = audit.append_many(conn, [("req-a", "received", {"n": 1}), ("req-b", "received", {"n": 2})])
        assert audit.append_many(conn, []) == []
    after = _fill(db, 1)
    assert [e.prev_hash for e in group] == [before[-1].hash, group[0].hash]
    assert after[0].prev_hash == group[-1].hash
    with db.engine.connect() as conn:
        assert verify(conn) == after[0].hash
        assert entries(conn)[2:4] == group
    with pytest.raises(ValueError), db.engine.begin() as conn:
        audit.append_many(conn, [("req-c", "received", {"api_key": "x"})])


def test_append_many_with_write_keys_skips_what_is_written_and_keeps_the_chain(db: Db) -> None:
    items = [("req-a", "job_status", {"s": "done"}), ("req-b", "job_status", {"s": "done"})]
    keys = ["job_status:req-a:web:d:done", "job_status:req-b:web:d:done"]
    with db.engine.begin() as conn:
        first = audit.append_many(conn, items[:1], write_keys=keys[:1])
    with db.engine.begin() as conn:  # the page again after a crash, now with one more request
        second = audit.append_many(conn, items, write_keys=keys)
        assert audit.append_many(conn, items, write_keys=keys) == []
    assert [e.request_id for e in first] == ["req-a"] and [e.request_id for e in second] == ["req-b"]
    assert second[0].prev_hash == first[0].hash
    with db.engine.connect() as conn:
        assert [e.request_id for e in entries(conn)] == ["req-a", "req-b"]
        assert verify(conn) == second[0].hash
        assert audit.written(conn, keys[1]) == second[0]
    with pytest.raises(ValueError, match="one write key per item"), db.engine.begin() as conn:
        audit.append_many(conn, items, write_keys=keys[:1])


def test_append_inside_orm_session_and_explicit_time(db: Db) -> None:
    from sqlalchemy.orm import Session

    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with Session(db.engine) as session, session.begin():
        entry = append(session, "req", "created", {"regulation": "gdpr"}, at=at)
    assert entry.at == at
    with db.engine.connect() as conn:
        assert verify(conn) == entry.hash


def test_rolled_back_append_leaves_no_trace(db: Db) -> None:
    first = _fill(db, 1)[0]
    with pytest.raises(RuntimeError), db.engine.begin() as conn:
        append(conn, "req", "doomed", {})
        raise RuntimeError("rollback")
    with db.engine.connect() as conn:
        assert verify(conn) == first.hash


@pytest.mark.parametrize(
    "column, value",
    [
        ("detail", '{"i":99,"ids":["sha256:ab"]}'),
        ("kind", "other"),
        ("at", "2000-01-01T00:00:00.000000+00:00"),
    ],
)
def test_edited_row_is_detected_at_its_id(db: Db, column: str, value: str) -> None:
    written = _fill(db)
    target = written[2].id
    with db.engine.begin() as conn:
        conn.execute(text(f"UPDATE {db.table} SET {column} = :v WHERE id = :id"), {"v": value, "id": target})
    with db.engine.connect() as conn, pytest.raises(AuditTamperDetected) as caught:
        verify(conn)
    assert caught.value.row_id == target


def test_deleted_middle_row_is_detected(db: Db) -> None:
    written = _fill(db)
    with db.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {db.table} WHERE id = :id"), {"id": written[2].id})
    with db.engine.connect() as conn, pytest.raises(AuditTamperDetected) as caught:
        verify(conn)
    assert caught.value.row_id == written[3].id


def test_reordered_rows_are_detected(db: Db) -> None:
    written = _fill(db)
    a, b = written[1], written[2]
    swap = f"UPDATE {db.table} SET request_id=:r, kind=:k, detail=:d, at=:at, prev_hash=:p, hash=:h WHERE id=:id"
    with db.engine.begin() as conn:
        for src, dst in ((b, a.id), (a, b.id)):
            at = src.at.isoformat(timespec="microseconds")
            detail = audit.canonical_json(src.detail)
            params = {"r": src.request_id, "k": src.kind, "d": detail, "at": at}
            conn.execute(text(swap), {**params, "p": src.prev_hash, "h": src.hash, "id": dst})
    with db.engine.connect() as conn, pytest.raises(AuditTamperDetected) as caught:
        verify(conn)
    assert caught.value.row_id == a.id


def test_chain_watch_walks_only_what_was_appended_since_and_agrees_with_verify(db: Db) -> None:
    watch = audit.ChainWatch()
    assert watch.verified_head(db.engine) == GENESIS_HASH  # an empty trail
    first = _fill(db, 4)
    assert watch.verified_head(db.engine) == first[-1].hash
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    more = _fill(db, 3)
    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert watch.verified_head(db.engine) == more[-1].hash
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    with db.engine.connect() as conn:
        assert verify(conn) == more[-1].hash
    walks = [s for s in statements if "ORDER BY" in s.upper()]
    assert walks and all("id >" in " ".join(s.split()) for s in walks)  # from the last row verified


def test_chain_watch_finds_an_edit_among_new_rows_and_a_rewritten_or_truncated_tail(db: Db) -> None:
    watch = audit.ChainWatch()
    written = _fill(db, 5)
    watch.verified_head(db.engine)
    more = _fill(db, 2)
    with db.engine.begin() as conn:
        conn.execute(text(f"UPDATE {db.table} SET detail = :d WHERE id = :id"), {"d": '{"i":99}', "id": more[0].id})
    with pytest.raises(AuditTamperDetected) as caught:
        watch.verified_head(db.engine)
    assert caught.value.row_id == more[0].id
    with pytest.raises(AuditTamperDetected):  # still found on the next call
        watch.verified_head(db.engine)

    watch = audit.ChainWatch()
    with db.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {db.table} WHERE id >= :id"), {"id": more[0].id})
    assert watch.verified_head(db.engine) == written[-1].hash
    with db.engine.begin() as conn:  # the last row verified, rewritten (hash recomputed or not)
        conn.execute(text(f"UPDATE {db.table} SET kind = 'forged' WHERE id = :id"), {"id": written[-1].id})
    with pytest.raises(AuditTamperDetected) as caught:
        watch.verified_head(db.engine)
    assert caught.value.row_id == written[-1].id
    with pytest.raises(AuditTamperDetected):  # and on every later call
        watch.verified_head(db.engine)


def test_chain_watch_finds_the_tail_cut_off_below_the_last_row_it_verified(db: Db) -> None:
    watch = audit.ChainWatch()
    written = _fill(db, 5)
    assert watch.verified_head(db.engine) == written[-1].hash
    with db.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {db.table} WHERE id >= :id"), {"id": written[-2].id})
    with db.engine.connect() as conn:
        assert verify(conn) == written[-3].hash  # the shorter chain verifies on its own
    with pytest.raises(AuditTamperDetected) as caught:
        watch.verified_head(db.engine)
    assert caught.value.row_id == written[-1].id


def test_secret_looking_detail_is_refused(db: Db) -> None:
    with db.engine.begin() as conn, pytest.raises(ValueError, match="secret"):
        append(conn, "req", "cfg", {"nested": [{"secret_key": "x"}]})


def _worker(url: str, schema: str | None, name: str, count: int) -> None:
    engine = _engine(url, schema)
    for i in range(count):
        with engine.begin() as conn:
            append(conn, name, "step", {"i": i})
    engine.dispose()


def test_two_processes_append_one_valid_chain(db: Db) -> None:
    ctx = multiprocessing.get_context("spawn")
    count = 40
    procs = [ctx.Process(target=_worker, args=(db.url, db.schema, f"p{n}", count)) for n in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    with db.engine.connect() as conn:
        verify(conn)
        rows = entries(conn)
    assert len(rows) == 2 * count
    assert len({r.prev_hash for r in rows}) == len(rows)  # no fork: every hash is used once as prev
    for name in ("p0", "p1"):
        assert [r.detail["i"] for r in rows if r.request_id == name] == list(range(count))


def test_identifier_digest_is_recomputable_and_hides_value() -> None:
    digest = audit.identifier_digest("email", "jane@example.com")
    assert digest == audit.identifier_digest("email", "jane@example.com")
    assert digest.startswith("sha256:") and "jane" not in digest
    assert digest != audit.identifier_digest("user_id", "jane@example.com")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_chain_hash_is_independent_of_key_order(detail: dict[str, object]) -> None:
    reordered = dict(reversed(list(detail.items())))
    assert audit.chain_hash("0" * 64, "r", "t", "k", detail) == audit.chain_hash("0" * 64, "r", "t", "k", reordered)


@given(json_values, json_values)
def test_chain_hash_differs_when_detail_differs(a: object, b: object) -> None:
    same = audit.canonical_json(a) == audit.canonical_json(b)
    assert (
        audit.chain_hash(GENESIS_HASH, "r", "t", "k", {"v": a})
        == audit.chain_hash(GENESIS_HASH, "r", "t", "k", {"v": b})
    ) == same
