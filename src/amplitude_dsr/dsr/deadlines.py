"""Deadline extensions: how far the answer to a request may be postponed, and recording one.

A request's deadline is stored when it is received (GDPR: one month, counted as 30 days; CCPA:
45 days; ``model.REGULATION_DAYS``). Both laws allow one postponement, decided and told to the
data subject before the first deadline passes: GDPR Art. 12(3) by up to two further months
(counted as 60 days) where the requests are complex or numerous; CCPA (Cal. Civ. Code
1798.130(a)(2)) by up to 45 further days when reasonably necessary. An extension moves the stored
deadline (so every list and status shows it) and is appended to the audit trail with who asked
and why, in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from amplitude_dsr.dsr.model import REGULATION_DAYS
from amplitude_dsr.errors import DomainError, RequestNotFound
from amplitude_dsr.states import is_final
from amplitude_dsr.store import audit, repo
from amplitude_dsr.store.tables import requests

MAX_EXTENSION_DAYS = {"gdpr": 60, "ccpa": 45}  # beyond the original deadline, in all


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def original_deadline(regulation: str, created_at: datetime) -> datetime:
    """The deadline the regulation gave when the request was received."""
    return created_at + timedelta(days=REGULATION_DAYS.get(regulation, REGULATION_DAYS["gdpr"]))


def extended_days(regulation: str, created_at: datetime, deadline: datetime) -> int:
    """Whole days the stored deadline lies beyond the original one (0: never extended)."""
    return max(0, (deadline - original_deadline(regulation, created_at)).days)


def extension_refusal(
    *, regulation: str, created_at: datetime, deadline: datetime, days: int, now: datetime, final: bool
) -> str | None:
    """Why the deadline cannot be extended by ``days``, or ``None`` when it can."""
    if final:
        return "the request is already answered"
    if days < 1:
        return "extend by at least one day"
    if now > deadline:
        return "the deadline has passed; an extension must be decided (and told) before it"
    allowed = MAX_EXTENSION_DAYS.get(regulation, MAX_EXTENSION_DAYS["gdpr"])
    limit = original_deadline(regulation, created_at) + timedelta(days=allowed)
    if deadline + timedelta(days=days) > limit:
        left = max(0, (limit - deadline).days)
        return (
            f"{regulation.upper()} allows at most {allowed} days beyond the original deadline in all; "
            f"{left} day{'s' if left != 1 else ''} left"
        )
    return None


def extend(engine: sa.Engine, request_id: str, days: int, *, by: str, reason: str) -> datetime:
    """Move the request's deadline ``days`` later, and audit it (``deadline_extended``: who, why,
    from, to), in one transaction; returns the new deadline. Raises :class:`DomainError` with the
    reason when :func:`extension_refusal` refuses, :class:`RequestNotFound` for no request."""
    r = requests.c
    with repo.write_tx(engine) as conn:
        row = conn.execute(
            sa.select(r.kind, r.status, r.regulation, r.created_at, r.deadline).where(r.id == request_id)
        ).first()
        if row is None:
            raise RequestNotFound(f"no request {request_id!r}")
        created, before = _aware(row.created_at), _aware(row.deadline)
        refusal = extension_refusal(
            regulation=row.regulation, created_at=created, deadline=before, days=days, now=datetime.now(UTC),
            final=is_final(row.kind, row.status),
        )  # fmt: skip
        if refusal is not None:
            raise DomainError(f"cannot extend the deadline: {refusal}")
        after = before + timedelta(days=days)
        moved = conn.execute(
            requests.update()
            .where(r.id == request_id, r.deadline == row.deadline)  # nobody extended it meanwhile
            .values(deadline=after, updated_at=datetime.now(UTC))
        )
        if moved.rowcount != 1:
            raise DomainError("cannot extend the deadline: it changed meanwhile; reload and try again")
        detail = {"by": by, "reason": reason, "days": days, "from": before.isoformat(), "to": after.isoformat()}
        audit.append(conn, request_id, "deadline_extended", detail)
    return after
