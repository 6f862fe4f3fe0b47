"""PostgreSQL helpers for the fault tests: which server backends belong to which OS process
(matched by TCP port through ``/proc``, so it needs nothing from the code under test), killing
them, and counting connections."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import sqlalchemy as sa

from amplitude_dsr.config import normalize_database_url


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir() if fd_dir.is_dir() else ():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if match := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(match.group(1))
    return inodes


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of ``pid``'s open sockets."""
    inodes = _socket_inodes(pid)
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def admin_engine(db_url: str) -> sa.Engine:
    return sa.create_engine(normalize_database_url(db_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def backends_of(admin: sa.Engine, pid: int) -> list[int]:
    """Server PIDs of the connections the OS process ``pid`` holds to this server."""
    ports = local_ports(pid)
    if not ports:
        return []
    with admin.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL")
        ).all()
    return [int(r[0]) for r in rows if int(r[1]) in ports]


def terminate(admin: sa.Engine, backends: list[int]) -> int:
    """``pg_terminate_backend`` each; returns how many were ended."""
    ended = 0
    with admin.connect() as conn:
        for backend in backends:
            ended += bool(conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": backend}).scalar())
    return ended


def connections_to(admin: sa.Engine, database: str) -> int:
    """Client connections to ``database`` now."""
    with admin.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND backend_type = 'client backend'"),
                {"d": database},
            ).scalar()
            or 0
        )


def executor_lock_holders(admin: sa.Engine, database: str, executor_id: str) -> set[int]:
    """Server PIDs holding the advisory lock of ``executor_id`` in ``database`` (its key is the
    first 8 bytes of SHA-256 of ``amplitude-dsr:<executor ID>``, the contract every process
    shares; PostgreSQL shows a bigint key as its high and low 32 bits)."""
    key = int.from_bytes(hashlib.sha256(f"amplitude-dsr:{executor_id}".encode()).digest()[:8], "big", signed=True)
    with admin.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = :d "
                "AND l.classid = :high AND l.objid = :low AND l.objsubid = 1"
            ),
            {"d": database, "high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
        ).all()
    return {int(r[0]) for r in rows}


def peak_by_process(admin: sa.Engine, database: str) -> dict[str, int]:
    """Connections to ``database`` now, by process: the ``amplitude-dsr <role> <pid>`` prefix of
    their ``application_name`` (anything else, such as a test's own, under its full name)."""
    with admin.connect() as conn:
        names = conn.execute(
            sa.text(
                "SELECT application_name FROM pg_stat_activity WHERE datname = :d AND backend_type = 'client backend'"
            ),
            {"d": database},
        ).scalars()
        counts: dict[str, int] = {}
        for name in names:
            key = " ".join(str(name).split()[:3]) if str(name).startswith("amplitude-dsr ") else str(name)
            counts[key] = counts.get(key, 0) + 1
    return counts
