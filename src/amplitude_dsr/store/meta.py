"""Facts about the database itself (``dsr_meta``): one named value each, such as the fingerprint
of the data key that seals its checkpoints (``dsr/sealing.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from amplitude_dsr.store.tables import meta


def get(conn: sa.Connection, name: str) -> str | None:
    """The value named ``name``, or None."""
    return conn.execute(sa.select(meta.c.value).where(meta.c.name == name)).scalar_one_or_none()


def put_if_absent(conn: sa.Connection, name: str, value: str) -> str:
    """Store ``value`` unless ``name`` has one; returns the value that holds now (two processes
    setting it at once agree on the first)."""
    try:
        with conn.begin_nested():
            conn.execute(meta.insert().values(name=name, value=value, updated_at=datetime.now(UTC)))
    except sa.exc.IntegrityError:
        pass
    held = get(conn, name)
    return value if held is None else held


def replace(conn: sa.Connection, name: str, expected: str, value: str) -> bool:
    """Set ``name`` to ``value`` if it still holds ``expected``; True if it did."""
    current = meta.update().where(meta.c.name == name, meta.c.value == expected)
    done = conn.execute(current.values(value=value, updated_at=datetime.now(UTC)))
    return done.rowcount == 1
