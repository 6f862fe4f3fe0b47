"""Console sessions: a signed cookie after signing in with a service token, and CSRF tokens.

Signing in checks the token exactly as the API does (``service/auth.py``: its digest, compared in
constant time; revoked tokens refused). The cookie then holds the token's *ID* (never its secret),
when the session began and a random nonce, with an HMAC-SHA256 over them under a key only the
service holds: ``<data dir>/service/console-key`` (32 random bytes, 0600, made on first start like
the results key; every process of a deployment needs the same file; deleting it ends every
session). Every page re-reads the token, so revoking it ends its sessions at once.

Every form carries a CSRF token: the HMAC of the session's nonce (before sign-in, of a nonce in
a short-lived cookie of its own), checked in constant time. The cookies are HttpOnly,
SameSite=Strict, and Secure when the service is reached over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from amplitude_dsr.errors import ConfigError
from amplitude_dsr.store import service_repo
from amplitude_dsr.store.db import private_dir

KEY_FILE = "console-key"
KEY_BYTES = 32
COOKIE = "adsr_console"
LOGIN_COOKIE = "adsr_console_login"
SESSION_SECONDS = 8 * 3600  # a working day; then sign in again
LOGIN_SECONDS = 1800  # how long a sign-in form stays usable


@dataclass(frozen=True)
class Viewer:
    """Who is signed in: the token's ID, name and scopes, and the session's nonce."""

    token_id: str
    name: str
    scopes: frozenset[str]
    nonce: str

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def may_read(self) -> bool:
        return bool({"read", "admin"} & self.scopes)


def load_or_create_key(directory: Path) -> bytes:
    """The console's key in ``directory``, made (32 random bytes, 0600) when missing."""
    path = directory / KEY_FILE
    if not path.exists():
        private_dir(directory)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:  # another process of the deployment made it just now
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise ConfigError(f"{path} is shorter than {KEY_BYTES} bytes; delete it to make a new one")
    return key


def _mac(key: bytes, *parts: str) -> str:
    digest = hmac.new(key, "|".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class Sessions:
    """Makes and checks session cookies and CSRF tokens with one key."""

    key: bytes
    lifetime: int = SESSION_SECONDS

    def cookie_for(self, token_id: str, now: float) -> str:
        """A new session's cookie value: ``v1.<token id>.<issued>.<nonce>.<mac>``."""
        issued, nonce = str(int(now)), secrets.token_urlsafe(16)
        return ".".join(("v1", token_id, issued, nonce, _mac(self.key, "session", token_id, issued, nonce)))

    def viewer(self, engine: sa.Engine, cookie: str | None, now: float) -> Viewer | None:
        """The signed-in token of ``cookie``, or ``None`` (missing, forged, expired, revoked)."""
        parts = (cookie or "").split(".")
        if len(parts) != 5 or parts[0] != "v1" or not parts[2].isdigit():
            return None
        _, token_id, issued, nonce, mac = parts
        if not hmac.compare_digest(_mac(self.key, "session", token_id, issued, nonce).encode(), mac.encode()):
            return None
        if not 0 <= now - int(issued) <= self.lifetime:
            return None
        token = service_repo.get_token(engine, token_id)
        if token is None or token.revoked_at is not None:
            return None
        return Viewer(token.id, token.name, token.scopes, nonce)

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the forms of the session (or sign-in form) with ``nonce``."""
        return _mac(self.key, "csrf", nonce)

    def csrf_ok(self, nonce: str | None, submitted: str | None) -> bool:
        if not nonce or not submitted:
            return False
        return hmac.compare_digest(self.csrf(nonce).encode(), submitted.encode())

    def login_nonce(self, now: float) -> str:
        """A sign-in form's nonce (its cookie): ``<issued>.<random>``."""
        return f"{int(now)}.{secrets.token_urlsafe(16)}"

    def login_nonce_fresh(self, nonce: str | None, now: float) -> bool:
        issued = (nonce or "").partition(".")[0]
        return issued.isdigit() and 0 <= now - int(issued) <= LOGIN_SECONDS


def now() -> float:
    return time.time()
