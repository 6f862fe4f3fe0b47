"""Identifiers at rest in our own tables: the JSON columns that name a person are encrypted.

``dsr_requests.identifiers`` (the emails, user IDs and device IDs a request was made with) and
``dsr_requests.result`` (the resolution: every search term and the users it matched) are stored
as ``{"sealed": "v1", "token": <Fernet token>}``, encrypted with the database's data key (the
key that seals DBOS checkpoints, ``dsr/sealing.py``: one key to keep, rotate and back up).

The key travels with the engine, not in a global: the composition root attaches it to the engine
it builds (:func:`attach`), and the column type finds it on the engine's dialect when a value is
written or read. A value written before sealing existed (plain JSON) stays readable; reading a
sealed value through an engine without the key raises :class:`SealedDataUnreadable`. What the
audit trail and certificates need after retention (digests) is written the same way.

The Amplitude IDs of deletion items stay in clear: they are Amplitude's pseudonymous row keys,
which the batching and tracking queries select and group by.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from amplitude_dsr.errors import SealedDataUnreadable

VERSION = "v1"
_ATTRIBUTE = "amplitude_dsr_column_cipher"


def attach(engine: sa.Engine, keys: Sequence[bytes]) -> None:
    """Seal what ``engine`` writes to the identifier columns with ``keys[0]`` (any key unseals)."""
    setattr(engine.dialect, _ATTRIBUTE, MultiFernet([Fernet(k) for k in keys]))


def _cipher(dialect: sa.Dialect) -> MultiFernet | None:
    cipher = getattr(dialect, _ATTRIBUTE, None)
    return cipher if isinstance(cipher, MultiFernet) else None


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and value.get("sealed") == VERSION and isinstance(value.get("token"), str)


class SealedJSON(sa.types.TypeDecorator[Any]):
    """A JSON column whose values are encrypted when the engine carries a data key."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        cipher = _cipher(dialect)
        if value is None or cipher is None:
            return value
        plain = json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
        return {"sealed": VERSION, "token": cipher.encrypt(plain).decode("ascii")}

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if not is_sealed(value):
            return value  # written before sealing existed, or by an engine without a key
        cipher = _cipher(dialect)
        if cipher is None:
            raise SealedDataUnreadable("a request's identifiers are sealed; open the database with its data key")
        try:
            return json.loads(cipher.decrypt(value["token"].encode("ascii")))
        except InvalidToken:
            raise SealedDataUnreadable(
                "a request's identifiers cannot be unsealed: they were sealed with another data key "
                "(set AMPLITUDE_DSR_DATA_KEY to the key every process of this database uses)"
            ) from None
