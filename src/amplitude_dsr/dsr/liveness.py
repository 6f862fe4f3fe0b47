"""Which workers are alive, seen from a process that runs none (an API-only service's ``/readyz``).

A worker's heartbeat is its executor lock (``dsr/connections.py``): held for exactly as long as
its process lives, and read here without ever being taken, so a probe cannot stop a worker from
starting:

* PostgreSQL: the advisory locks held by sessions of this database whose ``application_name``
  says they are an executor lock of a ``worker`` process (``amplitude-dsr worker <pid> lock``;
  the service's embedded worker opens its runtime in that role too). One per process.
* SQLite: the ``<database>.<executor ID>.executor.lock`` files beside the database that an open
  file description holds (Linux ``/proc/locks``). Elsewhere the lock is probed with a shared,
  non-blocking lock that is released at once. A foreground command (``access``, ``batch``)
  holds the default executor's file too, so there it counts as a worker while it runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import sqlalchemy as sa

from amplitude_dsr.dsr.connections import LOCK_FILE_SUFFIX
from amplitude_dsr.store.db import sqlite_path

PROC_LOCKS = Path("/proc/locks")
_PG_WORKERS = sa.text(
    "SELECT count(DISTINCT a.application_name) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
    "AND a.application_name LIKE 'amplitude-dsr worker % lock'"
)


def live_workers(engine: sa.Engine, database_url: str) -> int:
    """How many worker processes hold their executor lock on this database now."""
    path = sqlite_path(database_url)
    if path is None:
        with engine.connect() as conn:
            return int(conn.execute(_PG_WORKERS).scalar() or 0)
    return sum(1 for lock in _lock_files(path) if _held(lock))


def _lock_files(database: Path) -> list[Path]:
    return sorted(database.parent.glob(f"{database.name}.*{LOCK_FILE_SUFFIX}"))


def _held(lock: Path) -> bool:
    """Whether some process holds ``lock`` (an ``flock``), without taking it where the system
    says so (``/proc/locks``)."""
    try:
        info = lock.stat()
    except OSError:
        return False
    if PROC_LOCKS.exists():
        return held_in(PROC_LOCKS.read_text(), os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    return _probe(lock)


def held_in(proc_locks: str, major: int, minor: int, inode: int) -> bool:
    """Whether ``/proc/locks`` (its text) shows a granted ``FLOCK`` on that file. A line reads
    ``1: FLOCK  ADVISORY  WRITE 4242 08:01:123456 0 EOF``; a waiter's has ``->`` after the number."""
    device = f"{major:02x}:{minor:02x}:{inode}"
    for line in proc_locks.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            return True
    return False


def _probe(lock: Path) -> bool:
    """Held when a shared, non-blocking lock is refused (the holder's is exclusive)."""
    try:
        handle = lock.open("r")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
    return False
