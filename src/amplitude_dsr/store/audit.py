"""Append-only, hash-chained audit trail of every privacy request (table ``dsr_audit``).

Each row stores ``hash = sha256(canonical_json([prev_hash, request_id, at, kind, detail]))`` where
``prev_hash`` is the hash of the row before it (``"0" * 64`` for the first row). There is one chain
for the whole database, ordered by ``id``. Editing a row breaks its own hash; deleting or
re-ordering rows breaks the ``prev_hash`` link of the row after the gap; :func:`verify` walks the
chain and raises :class:`AuditTamperDetected` at the first row that does not check out. Removing
rows from the *end* is only visible against a head hash recorded elsewhere (the deletion
certificate records it), so compare :func:`verify`'s result with such an anchor.

Appenders never fork the chain: the previous hash is read inside the same write transaction that
inserts the new row, after taking the database's writer lock (PostgreSQL: a transaction-scoped
advisory lock; SQLite: the INSERT itself takes the single write lock, and the previous row is read
after it). The lock is held until the caller commits, so keep audit transactions short. On
PostgreSQL use the default READ COMMITTED isolation for audit transactions.

``detail`` is evidence for the data subject, so it may name identifiers, but prefer
:func:`identifier_digest` (an unkeyed SHA-256 a data subject can recompute from their own
identifier) over clear values. Keys that look like secrets are refused.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from amplitude_dsr.errors import AuditTamperDetected

__all__ = [
    "AUDIT_METADATA",
    "GENESIS_HASH",
    "AuditEntry",
    "ChainWatch",
    "add_missing_columns",
    "append",
    "append_many",
    "canonical_json",
    "chain_hash",
    "content_digest",
    "create_audit_tables",
    "dsr_audit",
    "entries",
    "head",
    "identifier_digest",
    "verify",
    "written",
]

GENESIS_HASH = "0" * 64
# Arbitrary constant key of the PostgreSQL advisory lock that serialises audit appenders.
_PG_LOCK_KEY = 0x414D_5044_5352_4155  # "AMPDSRAU"
_SECRET_WORDS = ("secret", "password", "api_key", "apikey", "token", "authorization")

AUDIT_METADATA = MetaData()

dsr_audit = Table(
    "dsr_audit",
    AUDIT_METADATA,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", String(200), nullable=False, index=True),
    Column("at", String(40), nullable=False),  # ISO 8601 UTC, hashed exactly as stored
    Column("kind", String(100), nullable=False),
    Column("detail", Text, nullable=False),  # canonical JSON of the detail object
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # The identity of the write (a workflow step): the same key is appended once. Not hashed.
    Column("write_key", String(200)),
    Index("ix_dsr_audit_write_key", "write_key", unique=True),
)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit trail."""

    id: int
    request_id: str
    at: datetime
    kind: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def canonical_json(value: Any) -> str:
    """Serialise ``value`` deterministically: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_hash(prev_hash: str, request_id: str, at: str, kind: str, detail: Mapping[str, Any]) -> str:
    """The hash of one audit row: SHA-256 over the canonical JSON of its linked fields."""
    payload = canonical_json([prev_hash, request_id, at, kind, detail])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def content_digest(value: Any) -> str:
    """``sha256:<hex>`` of ``value``'s canonical JSON: evidence of a document (a resolution) that
    the audit trail must not hold in clear, checkable against the document where it is kept."""
    return "sha256:" + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def identifier_digest(kind: str, value: str) -> str:
    """A pseudonymous form of an identifier for audit details: ``sha256:<hex>`` of ``kind:value``.

    Unkeyed on purpose, so the data subject (or a regulator) can recompute it from the identifier
    and find their entries. Emails are guessable, so this is pseudonymisation, not anonymisation.
    """
    return "sha256:" + hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def create_audit_tables(engine: Engine) -> None:
    """Create ``dsr_audit`` (and its index) if it does not exist."""
    AUDIT_METADATA.create_all(engine)


def append(
    conn_or_session: Connection | Session,
    request_id: str,
    kind: str,
    detail: Mapping[str, Any],
    *,
    at: datetime | None = None,
    write_key: str | None = None,
) -> AuditEntry:
    """Append one entry to the chain inside the caller's transaction (the caller commits).

    ``write_key`` makes the append idempotent: when an entry with that key exists (the same
    workflow step ran again after a crash), that entry is returned and nothing is written.
    Raises ``ValueError`` if ``detail`` is not JSON-serialisable or has a secret-looking key.
    """
    conn = conn_or_session.connection() if isinstance(conn_or_session, Session) else conn_or_session
    clean: dict[str, Any] = json.loads(canonical_json(dict(detail)))
    _refuse_secrets(clean)
    stamp = _iso(at or datetime.now(UTC))
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
    if write_key is not None and (done := written(conn, write_key)) is not None:
        return done
    # Insert first: on SQLite this takes the write lock, so the previous row read below is final.
    # Two executions of one step racing past the check above: the unique key refuses the second
    # (IntegrityError; the caller finds the first with :func:`written`).
    new_id = conn.execute(
        insert(dsr_audit)
        .values(
            request_id=request_id,
            at=stamp,
            kind=kind,
            detail=canonical_json(clean),
            prev_hash="",
            hash="",
            write_key=write_key,
        )
        .returning(dsr_audit.c.id)
    ).scalar_one()
    prev = conn.execute(
        select(dsr_audit.c.hash).where(dsr_audit.c.id < new_id).order_by(dsr_audit.c.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_hash = prev or GENESIS_HASH
    digest = chain_hash(prev_hash, request_id, stamp, kind, clean)
    conn.execute(update(dsr_audit).where(dsr_audit.c.id == new_id).values(prev_hash=prev_hash, hash=digest))
    return AuditEntry(new_id, request_id, datetime.fromisoformat(stamp), kind, clean, prev_hash, digest)


def append_many(
    conn: Connection,
    items: Sequence[tuple[str, str, Mapping[str, Any]]],
    *,
    at: datetime | None = None,
    write_keys: Sequence[str] | None = None,
) -> list[AuditEntry]:
    """Append several entries, ``(request_id, kind, detail)`` in order, inside the caller's
    transaction: the same chain as that many :func:`append` calls, in four statements instead of
    four per entry (a group of submissions appends its ``received`` entries at once). Same
    locking: the writer lock (PostgreSQL) or the inserts (SQLite) come before the previous hash
    is read, so no other appender can come between.

    ``write_keys`` (one per item) makes it idempotent as :func:`append` is: an item whose key is
    already written is skipped (its entry is not returned), so a page of a job's entries can be
    written again after a crash without a second entry for anyone."""
    if write_keys is not None and len(write_keys) != len(items):
        raise ValueError("append_many: one write key per item")
    if not items:
        return []
    stamp = _iso(at or datetime.now(UTC))
    cleans: list[dict[str, Any]] = []
    for _, _, detail in items:
        clean: dict[str, Any] = json.loads(canonical_json(dict(detail)))
        _refuse_secrets(clean)
        cleans.append(clean)
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
    keys: Sequence[str | None] = write_keys if write_keys is not None else [None] * len(items)
    if write_keys is not None:
        done = _written_keys(conn, write_keys)
        kept = [i for i, key in enumerate(write_keys) if key not in done]
        items, cleans, keys = [items[i] for i in kept], [cleans[i] for i in kept], [write_keys[i] for i in kept]
        if not items:
            return []
    rows = [
        {
            "request_id": rid,
            "at": stamp,
            "kind": kind,
            "detail": canonical_json(clean),
            "prev_hash": "",
            "hash": "",
            "write_key": key,
        }
        for (rid, kind, _), clean, key in zip(items, cleans, keys, strict=True)
    ]
    ids = [
        int(i)
        for i in conn.execute(insert(dsr_audit).returning(dsr_audit.c.id, sort_by_parameter_order=True), rows).scalars()
    ]
    prev = conn.execute(
        select(dsr_audit.c.hash).where(dsr_audit.c.id < ids[0]).order_by(dsr_audit.c.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_hash = prev or GENESIS_HASH
    out: list[AuditEntry] = []
    for new_id, (rid, kind, _), clean in zip(ids, items, cleans, strict=True):
        digest = chain_hash(prev_hash, rid, stamp, kind, clean)
        out.append(AuditEntry(new_id, rid, datetime.fromisoformat(stamp), kind, clean, prev_hash, digest))
        prev_hash = digest
    conn.execute(
        update(dsr_audit)
        .where(dsr_audit.c.id == bindparam("_id"))
        .values(prev_hash=bindparam("_prev"), hash=bindparam("_hash")),
        [{"_id": e.id, "_prev": e.prev_hash, "_hash": e.hash} for e in out],
    )
    return out


def _written_keys(conn: Connection, write_keys: Sequence[str]) -> set[str]:
    """Those of ``write_keys`` that an entry already carries (looked up 500 at a time)."""
    found: set[str] = set()
    for start in range(0, len(write_keys), 500):
        chunk = list(write_keys[start : start + 500])
        found.update(conn.execute(select(dsr_audit.c.write_key).where(dsr_audit.c.write_key.in_(chunk))).scalars())
    return found


def written(conn: Connection, write_key: str) -> AuditEntry | None:
    """The entry appended under ``write_key``, if any."""
    row = conn.execute(select(dsr_audit).where(dsr_audit.c.write_key == write_key)).first()
    return None if row is None else _entry(row)


def add_missing_columns(engine: Engine) -> None:
    """Give a ``dsr_audit`` table made by an older version its ``write_key`` column and unique
    index (idempotent; two processes doing it at once agree)."""
    present = {c["name"] for c in inspect(engine).get_columns(dsr_audit.name)}
    if "write_key" not in present:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'ALTER TABLE "{dsr_audit.name}" ADD COLUMN "write_key" VARCHAR(200)')
        except DBAPIError:
            if "write_key" not in {c["name"] for c in inspect(engine).get_columns(dsr_audit.name)}:
                raise
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "ix_dsr_audit_write_key" ON "{dsr_audit.name}" ("write_key")'
        )


def entries(conn: Connection, request_id: str | None = None) -> list[AuditEntry]:
    """Every entry (or those of one request) in chain order. Does not verify; see :func:`verify`."""
    query = select(dsr_audit).order_by(dsr_audit.c.id)
    if request_id is not None:
        query = query.where(dsr_audit.c.request_id == request_id)
    return [_entry(row) for row in conn.execute(query)]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        row.id,
        row.request_id,
        datetime.fromisoformat(row.at),
        row.kind,
        json.loads(row.detail),
        row.prev_hash,
        row.hash,
    )


def verify(conn: Connection) -> str:
    """Walk the whole chain; return the head hash, or raise :class:`AuditTamperDetected` at the
    first row whose link or content does not match (an edited, deleted or re-ordered row)."""
    return _walk(conn, 0, GENESIS_HASH)[1]


def _walk(conn: Connection, after_id: int, expected_prev: str) -> tuple[int, str]:
    """Verify the rows after ``after_id``, the first linking to ``expected_prev``: the last
    row's ``(id, hash)`` (``(after_id, expected_prev)`` when there is none)."""
    last_id = after_id
    query = (
        select(dsr_audit).where(dsr_audit.c.id > after_id).order_by(dsr_audit.c.id).execution_options(yield_per=1000)
    )
    for row in conn.execute(query):
        if row.prev_hash != expected_prev or not _hash_holds(row):
            raise AuditTamperDetected(row.id)
        expected_prev, last_id = row.hash, row.id
    return last_id, expected_prev


def _hash_holds(row: Any) -> bool:
    """Whether ``row``'s hash is that of its own content and link."""
    try:
        detail = json.loads(row.detail)
    except ValueError:
        return False
    return bool(chain_hash(row.prev_hash, row.request_id, row.at, row.kind, detail) == row.hash)


class ChainWatch:
    """The chain verified once per process, then only what was appended since.

    Every certificate states the chain's head after verifying the chain. Walking every row each
    time cost O(rows) per certificate: at 100,000 deletions (400,000 rows) a certificate took
    about 70 s and held a database connection throughout (bench section 10, P-8). This keeps the
    last row it verified (ID and hash): the next call checks that row again (still there,
    content and hash unchanged: a truncated or rewritten tail shows there) and walks only the
    rows after it. Rows before it were verified by an earlier walk of this process, not again;
    :func:`verify` (the console's Operations page) walks them all. One walk at a time: callers
    meanwhile wait and then walk what is left, usually nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._upto: tuple[int, str] | None = None

    def verified_head(self, engine: Engine) -> str:
        """The head hash, every row after the last one verified checked; raises
        :class:`AuditTamperDetected` as :func:`verify` does."""
        with self._lock, engine.connect() as conn:
            last_id, last_hash = self._upto or (0, GENESIS_HASH)
            if last_id:
                row = conn.execute(select(dsr_audit).where(dsr_audit.c.id == last_id)).first()
                if row is None or row.hash != last_hash or not _hash_holds(row):
                    raise AuditTamperDetected(last_id)  # and again on every later call
            self._upto = _walk(conn, last_id, last_hash)
            return self._upto[1]


def head(conn: Connection) -> str:
    """The hash of the last row (``GENESIS_HASH`` when the trail is empty). Does not verify."""
    last = conn.execute(select(dsr_audit.c.hash).order_by(dsr_audit.c.id.desc()).limit(1)).scalar_one_or_none()
    return last or GENESIS_HASH


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _refuse_secrets(value: Any) -> None:
    items: Iterable[Any]
    if isinstance(value, dict):
        for key in value:
            lowered = str(key).lower()
            if any(word in lowered for word in _SECRET_WORDS):
                raise ValueError(f"audit detail key {key!r} looks like a secret; never audit secrets")
        items = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return
    for item in items:
        _refuse_secrets(item)
