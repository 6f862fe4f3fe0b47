"""Pure helpers of the console's pages: deadlines and urgency, the paging key in a URL, where a
request came from, and which digests an identifier typed in the search box may have."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from amplitude_dsr.dsr.model import Identifier, IdentifierKind
from amplitude_dsr.errors import UsageError
from amplitude_dsr.states import is_final
from amplitude_dsr.store.audit import identifier_digest

CLOSE_DAYS = 7  # a request due within this many days is flagged "due soon"
SOURCES = {"opendsr": "OpenDSR", "datagrail": "DataGrail"}


@dataclass(frozen=True)
class Due:
    """A request's deadline as the list shows it."""

    days_left: int | None  # whole days until the deadline (negative: overdue); None once final
    flag: str  # "overdue", "soon" or ""
    text: str  # what the cell says, so the flag is never colour alone


def due(kind: str, status: str, deadline: datetime, now: datetime) -> Due:
    """How far the deadline is, and whether to flag it: an unfinished request past its deadline
    is overdue, one due within :data:`CLOSE_DAYS` days is due soon; a final one is neither."""
    if is_final(kind, status):
        return Due(None, "", "answered")
    if deadline < now:
        late = max(1, math.floor((now - deadline).total_seconds() / 86400))
        return Due(-late, "overdue", f"OVERDUE by {late} day{'s' if late != 1 else ''}")
    days = math.floor((deadline - now).total_seconds() / 86400)
    if days <= CLOSE_DAYS:
        return Due(days, "soon", f"due soon: {days} day{'s' if days != 1 else ''} left")
    return Due(days, "", f"{days} days left")


def source(channel: str | None) -> str:
    """Where a request came from: a platform's channel, else the command line."""
    return SOURCES.get(channel or "", channel or "CLI")


def encode_key(key: tuple[datetime, str]) -> str:
    """The paging key as a URL-safe token (a time and a request ID: nothing personal)."""
    raw = f"{key[0].astimezone(UTC).isoformat()}|{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_key(token: str | None) -> tuple[datetime, str] | None:
    """The paging key of :func:`encode_key`; ``None`` for a missing or malformed token."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        when, _, request_id = raw.partition("|")
        moment = datetime.fromisoformat(when)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not request_id or moment.tzinfo is None:
        return None
    return moment.astimezone(UTC), request_id


def search_digests(text: str) -> list[str]:
    """The audit digests ``text`` has as each kind of identifier it is valid for (an email, a
    user ID, a device ID, an Amplitude ID), as intake computed them."""
    found = []
    for kind in IdentifierKind:
        try:
            ident = Identifier.parse(kind.value, text)
        except UsageError:
            continue
        found.append(identifier_digest(ident.kind.value, ident.value))
    return found
