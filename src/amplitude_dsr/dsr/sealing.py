"""Sealed DBOS checkpoints: what the durable engine stores is encrypted at rest.

DBOS writes every workflow's inputs, every step's output, events and messages to its system
tables, and some of those are personal data (the identifiers a request was resolved from, User
Search answers, the events of an access request). :class:`SealedSerializer` is the serializer
DBOS is configured with in every process (executor, submitter, ``DBOSClient``): it pickles as
DBOS does by default, then encrypts with Fernet (AES-128-CBC and HMAC-SHA256, from
``cryptography``), so a copy of the database alone reveals nobody.

The data key comes from ``AMPLITUDE_DSR_DATA_KEY`` (one or more Fernet keys, comma-separated: the
first seals, every one unseals, which is how a key is rotated). Without it, a key is generated on
first use and kept in a ``0600`` file: beside a SQLite database (``dsr.sqlite.key``), in the
per-user data directory for PostgreSQL. Every process sharing a database must use the same key, so
the database records the key's fingerprint (an HMAC, which reveals nothing of the key) and a
process holding another key is refused at start with a one-line error, instead of writing
checkpoints the others cannot read. Checkpoints written before sealing existed (DBOS's own
``py_pickle`` format) stay readable: DBOS picks the deserializer by the name stored with each row.
See docs/operations.md, "Personal data at rest".
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pickle
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from dbos._serialization import Serializer

from amplitude_dsr.config import Settings, default_data_home
from amplitude_dsr.errors import ConfigError, SealedDataUnreadable
from amplitude_dsr.store import meta
from amplitude_dsr.store.db import sqlite_path

SERIALIZATION = "amplitude_dsr_sealed_pickle"  # stored by DBOS beside every value it sealed
KEY_ENV = "AMPLITUDE_DSR_DATA_KEY"
KEY_FILE_NAME = "data.key"  # in the per-user data directory (PostgreSQL)
FINGERPRINT_META = "data_key_fingerprint"
_FINGERPRINT_LABEL = b"amplitude-dsr data key fingerprint v1"


class SealedSerializer(Serializer):
    """DBOS's serializer: pickle, then Fernet. ``keys[0]`` seals; any of ``keys`` unseals."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one data key is needed")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def serialize(self, data: Any) -> str:
        return self._fernet.encrypt(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")

    def deserialize(self, serialized_data: str) -> Any:
        try:
            plain = self._fernet.decrypt(serialized_data.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SealedDataUnreadable(
                f"a checkpoint cannot be unsealed: it was sealed with another data key (set {KEY_ENV} "
                "to the key every process of this database uses)"
            ) from None
        return pickle.loads(plain)  # noqa: S301 - authenticated by the HMAC above: only we wrote it

    def name(self) -> str:
        return SERIALIZATION


def parse_keys(value: str) -> list[bytes]:
    """The keys of an ``AMPLITUDE_DSR_DATA_KEY`` value (comma-separated; checked by the settings)."""
    return [part.strip().encode("ascii") for part in value.split(",") if part.strip()]


def new_key() -> str:
    """A new data key, as ``AMPLITUDE_DSR_DATA_KEY`` takes it."""
    return Fernet.generate_key().decode("ascii")


def key_file(database_url: str) -> Path:
    """Where the generated key of ``database_url`` lives when no key is configured."""
    path = sqlite_path(database_url)
    if path is not None:
        return path.with_name(path.name + ".key")
    return default_data_home() / KEY_FILE_NAME


def data_keys(settings: Settings) -> tuple[list[bytes], str]:
    """The process's data keys (sealing key first) and where they came from (for messages)."""
    if settings.data_key is not None:
        return parse_keys(settings.data_key.get_secret_value()), KEY_ENV
    path = key_file(settings.database_url)
    try:
        return [_load_or_create(path)], str(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read or create the data key ({exc.strerror}); set {KEY_ENV}") from None


def _load_or_create(path: Path) -> bytes:
    """Read the key file, or create it (``0600``, atomically: two processes starting at once on a
    new database agree on one key, and none ever reads a half-written file)."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not a data key; restore it, or set {KEY_ENV}") from None
    return key


def fingerprint(key: bytes) -> str:
    """An identifier of ``key`` that reveals nothing of it."""
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:24]


def check_keys(engine: sa.Engine, keys: Sequence[bytes], source: str) -> None:
    """Record the sealing key's fingerprint on a new database; refuse keys that cannot read what
    the database holds. A database sealed with one of ``keys`` other than the first moves to the
    first (a rotation): processes that only hold the old key are refused from then on."""
    prints = [fingerprint(k) for k in keys]
    with engine.begin() as conn:
        stored = meta.put_if_absent(conn, FINGERPRINT_META, prints[0])
        if stored == prints[0]:
            return
        if stored in prints:
            meta.replace(conn, FINGERPRINT_META, stored, prints[0])
            return
    raise ConfigError(
        f"{KEY_ENV}: this database's checkpoints are sealed with another data key (fingerprint {stored}; "
        f"this process has {prints[0]} from {source}); give every process of the database the same key"
    )
