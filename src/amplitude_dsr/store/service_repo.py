"""Reads and writes of the service's tables (``store/service_tables.py``): tokens, the OpenDSR
request map and callback deliveries. Plain values in, plain values out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from amplitude_dsr.store.service_tables import deliveries, service_requests, tokens
from amplitude_dsr.store.tables import requests


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _insert_ignoring(conn: sa.Connection, table: sa.Table, keys: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)


# --- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """A stored token: its public ID, name and scopes; never its secret."""

    id: str
    name: str
    scopes: frozenset[str]
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None


def _token(r: sa.Row[Any]) -> Token:
    m = r._mapping
    return Token(
        id=m["id"], name=m["name"], scopes=frozenset(str(m["scopes"]).split()), secret_sha256=m["secret_sha256"],
        created_at=_aware(m["created_at"]) or utcnow(), revoked_at=_aware(m["revoked_at"]),
    )  # fmt: skip


def insert_token(engine: sa.Engine, token_id: str, name: str, scopes: Sequence[str], secret_sha256: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            tokens.insert().values(
                id=token_id,
                name=name,
                scopes=" ".join(sorted(scopes)),
                secret_sha256=secret_sha256,
                created_at=utcnow(),
            )
        )


def get_token(engine: sa.Engine, token_id: str) -> Token | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
    return _token(row) if row is not None else None


def list_tokens(engine: sa.Engine) -> list[Token]:
    """Every token, oldest first (revoked ones included)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tokens).order_by(tokens.c.created_at, tokens.c.id)).all()
    return [_token(r) for r in rows]


def revoke_token(engine: sa.Engine, token_id: str) -> bool:
    """Revoke a token; False when there is no such token, or it was revoked already."""
    with engine.begin() as conn:
        res = conn.execute(
            tokens.update().where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
    return res.rowcount == 1


# --- request map (OpenDSR, DataGrail) --------------------------------------------------------------------


@dataclass(frozen=True)
class MappedRequest:
    """How a platform's request ID (OpenDSR ``subject_request_id``, DataGrail
    ``webhook_request_id``) maps to our request, and who to tell."""

    subject_request_id: str
    request_id: str
    controller_id: str
    request_type: str
    body_sha256: str
    callback_urls: list[str]
    received_time: datetime
    api_version: str
    notified_state: str | None
    channel: str = "opendsr"


def _mapped(r: sa.Row[Any]) -> MappedRequest:
    m = r._mapping
    return MappedRequest(
        subject_request_id=m["subject_request_id"], request_id=m["request_id"], controller_id=m["controller_id"],
        request_type=m["request_type"], body_sha256=m["body_sha256"], callback_urls=list(m["callback_urls"] or []),
        received_time=_aware(m["received_time"]) or utcnow(), api_version=m["api_version"],
        notified_state=m["notified_state"], channel=m["channel"],
    )  # fmt: skip


def get_mapped(engine: sa.Engine, subject_request_id: str) -> MappedRequest | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(service_requests).where(service_requests.c.subject_request_id == subject_request_id)
        ).first()
    return _mapped(row) if row is not None else None


def _mapping_values(new: MappedRequest) -> dict[str, Any]:
    return {
        "subject_request_id": new.subject_request_id, "request_id": new.request_id,
        "controller_id": new.controller_id, "request_type": new.request_type, "body_sha256": new.body_sha256,
        "callback_urls": new.callback_urls, "received_time": new.received_time, "api_version": new.api_version,
        "notified_state": new.notified_state, "channel": new.channel,
        # Nobody asked to hear about it: nothing to announce, so the callback loop never reads it.
        "notified_final": not new.callback_urls,
    }  # fmt: skip


def map_requests_in(conn: sa.Connection, new: Sequence[MappedRequest]) -> None:
    """Store each of ``new`` whose ``subject_request_id`` is not known yet, in the caller's
    transaction (``INSERT ... ON CONFLICT DO NOTHING``, in ``subject_request_id`` order so two
    groups inserting the same IDs on PostgreSQL cannot wait on each other in a cycle)."""
    unique = {n.subject_request_id: n for n in reversed(new)}  # the first of a repeated ID
    rows = [_mapping_values(unique[sid]) for sid in sorted(unique)]
    if rows:
        conn.execute(_insert_ignoring(conn, service_requests, ["subject_request_id"]), rows)


def mapped_with_deadlines(
    conn: sa.Connection, subject_request_ids: Sequence[str]
) -> dict[str, tuple[MappedRequest, datetime | None]]:
    """The stored mapping of each known ID among ``subject_request_ids``, with its request's
    deadline (one query)."""
    if not subject_request_ids:
        return {}
    query = (
        sa.select(service_requests, requests.c.deadline)
        .outerjoin(requests, requests.c.id == service_requests.c.request_id)
        .where(service_requests.c.subject_request_id.in_(sorted(set(subject_request_ids))))
    )
    return {
        str(r._mapping["subject_request_id"]): (_mapped(r), _aware(r._mapping["deadline"])) for r in conn.execute(query)
    }


def map_request(engine: sa.Engine, new: MappedRequest) -> MappedRequest:
    """Store ``new`` unless its ``subject_request_id`` is known; returns the stored row (the
    earlier one when another POST of the same ID got there first)."""
    values = _mapping_values(new)
    with engine.begin() as conn:
        conn.execute(_insert_ignoring(conn, service_requests, ["subject_request_id"]), [values])
    stored = get_mapped(engine, new.subject_request_id)
    assert stored is not None
    return stored


@dataclass(frozen=True)
class Change:
    """A mapped request whose status moved since its callbacks were last queued."""

    mapped: MappedRequest
    status: str
    final: bool = False  # the status is final: the last change of this request


def changed_requests(engine: sa.Engine, *, limit: int = 200) -> list[Change]:
    """Mapped requests whose status differs from the last notified one (final ones once
    announced, and those without callback URLs, are skipped by an indexed flag, so a round reads
    only requests someone waits to hear about that are still moving)."""
    query = (
        sa.select(service_requests, requests.c.status)
        .join(requests, requests.c.id == service_requests.c.request_id)
        .where(
            service_requests.c.notified_final.is_(False),
            sa.or_(service_requests.c.notified_state.is_(None), service_requests.c.notified_state != requests.c.status),
        )
        .order_by(service_requests.c.received_time)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Change(_mapped(r), str(r._mapping["status"])) for r in rows]


def queue_callbacks(engine: sa.Engine, change: Change, bodies: dict[str, str]) -> bool:
    """In one transaction: mark ``change.status`` as notified (only if nobody else did since we
    read it) and queue one delivery per URL (``bodies``: URL -> JSON body). False when another
    process queued this change first (nothing written)."""
    now = utcnow()
    m = service_requests.c
    with engine.begin() as conn:
        before = change.mapped.notified_state
        res = conn.execute(
            service_requests.update()
            .where(
                m.subject_request_id == change.mapped.subject_request_id,
                m.notified_state.is_(None) if before is None else m.notified_state == before,
            )
            .values(notified_state=change.status, notified_final=change.final)
        )
        if res.rowcount != 1:
            return False
        rows = [
            {
                "subject_request_id": change.mapped.subject_request_id, "channel": change.mapped.channel,
                "url": url, "state": change.status,
                "body": body, "attempts": 0, "next_attempt_at": now, "created_at": now,
            }
            for url, body in bodies.items()
        ]  # fmt: skip
        if rows:
            conn.execute(_insert_ignoring(conn, deliveries, ["subject_request_id", "url", "state"]), rows)
    return True


@dataclass(frozen=True)
class Delivery:
    """One callback POST to make (or made)."""

    id: int
    subject_request_id: str
    channel: str
    url: str
    state: str
    body: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    gave_up_at: datetime | None


def _delivery(r: sa.Row[Any]) -> Delivery:
    m = r._mapping
    return Delivery(
        id=m["id"], subject_request_id=m["subject_request_id"], channel=m["channel"], url=m["url"],
        state=m["state"], body=m["body"],
        attempts=m["attempts"], next_attempt_at=_aware(m["next_attempt_at"]), last_error=m["last_error"],
        delivered_at=_aware(m["delivered_at"]), gave_up_at=_aware(m["gave_up_at"]),
    )  # fmt: skip


def claim_due(engine: sa.Engine, *, lease: timedelta, limit: int = 50) -> list[Delivery]:
    """Deliveries due now, each claimed for ``lease`` (its next attempt moved past the lease, so
    another service process does not send it meanwhile; a process that dies holding it lets the
    lease run out and the delivery is tried again)."""
    now = utcnow()
    d = deliveries.c
    with engine.connect() as conn:
        due = conn.execute(
            sa.select(deliveries)
            .where(d.next_attempt_at.is_not(None), d.next_attempt_at <= now)
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
        ).all()
    claimed: list[Delivery] = []
    for row in due:
        found = _delivery(row)
        with engine.begin() as conn:
            res = conn.execute(
                deliveries.update()
                .where(d.id == found.id, d.next_attempt_at == row._mapping["next_attempt_at"])
                .values(next_attempt_at=now + lease)
            )
        if res.rowcount == 1:
            claimed.append(found)
    return claimed


def record_attempt(engine: sa.Engine, delivery_id: int, *, error: str | None, next_attempt_at: datetime | None) -> None:
    """Record one attempt: delivered (``error`` None), to retry at ``next_attempt_at``, or given
    up (an error and no next attempt)."""
    now = utcnow()
    values: dict[str, Any] = {
        "attempts": deliveries.c.attempts + 1, "last_attempt_at": now, "last_error": error,
        "next_attempt_at": None if error is None else next_attempt_at,
    }  # fmt: skip
    if error is None:
        values["delivered_at"] = now
    elif next_attempt_at is None:
        values["gave_up_at"] = now
    with engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**values))


def deliveries_for(engine: sa.Engine, subject_request_id: str) -> list[Delivery]:
    """Every delivery of one OpenDSR request, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries).where(deliveries.c.subject_request_id == subject_request_id).order_by(deliveries.c.id)
        ).all()
    return [_delivery(r) for r in rows]


# --- metrics -------------------------------------------------------------------------------


def requests_by_state(engine: sa.Engine) -> list[tuple[str, str, int]]:
    """(kind, status, count) of every request, for ``/metrics``."""
    query = sa.select(requests.c.kind, requests.c.status, sa.func.count()).group_by(requests.c.kind, requests.c.status)
    with engine.connect() as conn:
        return [(str(k), str(s), int(n)) for k, s, n in conn.execute(query)]


def delivery_counts(engine: sa.Engine) -> dict[str, int]:
    """Callback deliveries: ``delivered``, ``pending`` (not delivered yet), ``failing`` (pending
    after a failed attempt) and ``given_up``."""
    d = deliveries.c
    pending = sa.and_(d.delivered_at.is_(None), d.gave_up_at.is_(None))
    query = sa.select(
        sa.func.count().filter(d.delivered_at.is_not(None)),
        sa.func.count().filter(pending),
        sa.func.count().filter(sa.and_(pending, d.last_error.is_not(None))),
        sa.func.count().filter(d.gave_up_at.is_not(None)),
    )
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return dict(zip(("delivered", "pending", "failing", "given_up"), (int(v or 0) for v in row), strict=True))


def failed_attempts(engine: sa.Engine) -> int:
    """Callback POSTs that failed, over every delivery still recorded (each delivery's attempts,
    less its one successful attempt when it was delivered)."""
    d = deliveries.c
    query = sa.select(
        sa.func.coalesce(sa.func.sum(d.attempts), 0) - sa.func.count().filter(d.delivered_at.is_not(None))
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)
