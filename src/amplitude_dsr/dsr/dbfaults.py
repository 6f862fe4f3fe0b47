"""Faults of our own database that waiting fixes: a SQLite file locked or briefly read-only, a
PostgreSQL connection terminated, "too many clients", a server restarting.

They are treated like Amplitude's outages (docs/operations.md, "Transient faults"): a step that
only touches our tables is retried in place by DBOS (:data:`db_step`, about 13 s); a step that
calls Amplitude is retried durably by :func:`~amplitude_dsr.dsr.steps.call`; and a workflow that
still meets one waits and runs its (idempotent, state-driven) phases again instead of marking the
request ``failed``. Anything else is not transient.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from dbos import DBOS

F = TypeVar("F", bound=Callable[..., Any])

# Messages of transient conditions (lower case), for drivers that raise a generic class.
_TRANSIENT_TEXT = (
    "database is locked",
    "database is busy",
    "attempt to write a readonly database",
    "disk i/o error",
    "unable to open database file",
    "terminating connection",
    "server closed the connection",
    "connection refused",
    "connection reset",
    "too many clients",
    "the database system is starting up",
    "the database system is shutting down",
    "could not connect",
    "connection is closed",
    "ssl connection has been closed",
)
DB_STEP_ATTEMPTS = 7  # in-place retries of a database-only step: 0.2 s doubling, about 13 s


def is_transient_db_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything in its cause/context chain) is a database fault that waiting
    fixes. Integrity and programming errors are not: retrying would give the same answer."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        errors = getattr(current, "errors", None)  # DBOS: a step that ran out of in-place retries
        if isinstance(errors, list) and errors and all(isinstance(e, BaseException) for e in errors):
            return all(is_transient_db_error(e) for e in errors)
        if isinstance(current, (sa.exc.IntegrityError, sa.exc.ProgrammingError)):
            return False
        if isinstance(current, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)):
            return True
        if isinstance(current, sqlite3.OperationalError) or type(current).__name__ in ("OperationalError",):
            return True
        if any(text in str(current).lower() for text in _TRANSIENT_TEXT) and _from_database(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _from_database(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("sqlalchemy", "sqlite3", "psycopg", "dbos"))


def db_step(func: F) -> F:
    """``@DBOS.step()`` for a step that only touches our database: retried in place on a
    transient database fault (:data:`DB_STEP_ATTEMPTS` attempts, 0.2 s doubling)."""
    decorated = DBOS.step(
        retries_allowed=True,
        max_attempts=DB_STEP_ATTEMPTS,
        interval_seconds=0.2,
        backoff_rate=2.0,
        should_retry=is_transient_db_error,
    )(func)
    return cast(F, decorated)
