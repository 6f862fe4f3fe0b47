"""Signed results links: the key, making and checking a link, where a request's results are.

The key is 32 random bytes in ``<data dir>/service/results-key`` (0600), made on first start;
every process of one deployment needs the same file. Deleting it revokes every link out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from amplitude_dsr.errors import ConfigError
from amplitude_dsr.states import is_final
from amplitude_dsr.store import repo
from amplitude_dsr.store.db import private_dir

KEY_FILE = "results-key"
KEY_BYTES = 32
DEFAULT_TTL = 3600  # seconds a results link works


@dataclass(frozen=True)
class ResultsLinks:
    """Makes and checks signed results links."""

    key: bytes
    ttl: int = DEFAULT_TTL

    def signature(self, subject_request_id: str, expires: int) -> str:
        mac = hmac.new(self.key, f"{subject_request_id}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def query(self, subject_request_id: str, now: float) -> str:
        """``expires=..&signature=..`` for a link made at ``now``."""
        expires = int(now) + self.ttl
        return urlencode({"expires": expires, "signature": self.signature(subject_request_id, expires)})

    def valid(self, subject_request_id: str, expires: int, signature: str, now: float) -> bool:
        """Unexpired and signed by us (constant-time comparison)."""
        expected = self.signature(subject_request_id, expires)
        return now <= expires and hmac.compare_digest(expected.encode(), signature.encode())

    @classmethod
    def load_or_create(cls, directory: Path, ttl: int = DEFAULT_TTL) -> ResultsLinks:
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
        return cls(key, ttl)


def results_dir(row: repo.RequestRow) -> Path | None:
    """The directory of a final request's package or certificate, if it exists."""
    if not is_final(row.kind, row.status) or not row.out_dir:
        return None
    path = Path(row.out_dir)
    return path if (path / "manifest.json").is_file() else None
