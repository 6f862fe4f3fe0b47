"""Bearer tokens with scopes.

A token reads ``adsr_<id>_<secret>``: the ID finds its row, the secret is checked against the
stored SHA-256 with a constant-time comparison. The secret is shown once, by
``amplitude-dsr tokens create``; the database holds only its digest. Scopes:

* ``submit``: create and cancel requests (``POST``/``DELETE /opendsr/v2/requests``);
* ``read``: read a request's status;
* ``admin``: everything.

A token's name is the OpenDSR ``controller_id`` of the requests it submits. Tokens, secrets and
the ``Authorization`` header are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from amplitude_dsr.errors import UsageError
from amplitude_dsr.store import service_repo

SCOPES = ("admin", "read", "submit")
PREFIX = "adsr_"
_TOKEN = re.compile(r"adsr_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,99}")


@dataclass(frozen=True)
class Caller:
    """Who made an API call: the token's ID and name, and its scopes."""

    token_id: str
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    """Validated, deduplicated, sorted scopes (UsageError names the unknown one)."""
    if not scopes:
        raise UsageError(f"give at least one --scope ({', '.join(SCOPES)})")
    for scope in scopes:
        if scope not in SCOPES:
            raise UsageError(f"unknown scope {scope!r} (expected one of: {', '.join(SCOPES)})")
    return sorted(set(scopes))


def check_name(name: str) -> str:
    """A token's name (the controller ID): 1-100 letters, digits, ``_.@:-``."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            "a token name is 1-100 letters, digits, '_', '.', '@', ':' or '-', starting with a letter or digit"
        )
    return name


def create(engine: sa.Engine, name: str, scopes: list[str]) -> tuple[str, str]:
    """Store a new token; returns (token ID, the full token to hand out: shown only now)."""
    check_name(name)
    scopes = check_scopes(scopes)
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    service_repo.insert_token(engine, token_id, name, scopes, digest(secret))
    return token_id, f"{PREFIX}{token_id}_{secret}"


def authenticate(engine: sa.Engine, authorization: str | None) -> Caller | None:
    """The caller of an ``Authorization: Bearer <token>`` header, or ``None`` when it is missing,
    malformed, unknown, revoked or wrong. The secret's digest is compared in constant time."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    match = _TOKEN.fullmatch(value.strip()) if scheme.lower() == "bearer" else None
    if match is None:
        return None
    token_id, secret = match.groups()
    token = service_repo.get_token(engine, token_id)
    # Compare even for an unknown token, so the time taken does not say which IDs exist.
    expected = token.secret_sha256 if token is not None else "0" * 64
    if not hmac.compare_digest(digest(secret), expected) or token is None or token.revoked_at is not None:
        return None
    return Caller(token.id, token.name, token.scopes)
