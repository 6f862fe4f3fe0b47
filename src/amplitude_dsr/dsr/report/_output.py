"""Writing a package of files atomically, hashing every byte while it streams out.

A package is built in a hidden temporary sibling ``out_dir/.tmp-<name>-<random>``; every file is
fsynced, then the directory is renamed to ``out_dir/<name>``. An existing package of that name
is renamed away first and deleted after the new one is in place (on POSIX a reader may find no
directory for the instant between the two renames, never a half-written one). On any error the
temporary directory is removed and nothing is left behind.

A process killed mid-write cannot remove its temporary directory. Such a leftover is hidden, holds
an ``INCOMPLETE`` marker and no manifest until the very end, and is removed by the next package
write for the same name, or by any package write into the same directory once it is older than
:data:`STALE_AFTER` (:func:`remove_leftovers`).

Packages hold personal data: files are created ``0600`` and directories ``0700``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from amplitude_dsr.errors import UsageError

MANIFEST_SCHEMA = "amplitude-dsr/manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
INCOMPLETE_MARKER = "INCOMPLETE"
INCOMPLETE_TEXT = (
    "This directory is an interrupted package write, not a package: it may be incomplete.\n"
    "amplitude-dsr deletes it on the next write of the same package (or after a day).\n"
)
STALE_AFTER = 24 * 3600.0  # seconds after which any leftover in the directory is removed
FILE_MODE = 0o600
DIR_MODE = 0o700


class HashingWriter:
    """A text sink (``write(str)``) that UTF-8 encodes to a file, counting and hashing the bytes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._sha = hashlib.sha256()
        self.bytes = 0

    def write(self, text: str) -> int:
        """Encode, hash and write ``text``; return its length in characters (like ``io``)."""
        data = text.encode("utf-8")
        self._sha.update(data)
        self._stream.write(data)
        self.bytes += len(data)
        return len(text)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of everything written so far."""
        return self._sha.hexdigest()


class PackageBuilder:
    """Collects the files of one package in a temporary directory and their manifest entries."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[HashingWriter]:
        """Create ``name``, yield a hashing writer; fsync it and add it to the manifest on exit."""
        with create_private(self.directory / name) as stream:
            writer = HashingWriter(stream)
            yield writer
            stream.flush()
            os.fsync(stream.fileno())
        self.files.append({"name": name, "bytes": writer.bytes, "sha256": writer.sha256})

    def write_manifest(self, request_id: str, created_at: datetime, extra: dict[str, Any] | None = None) -> None:
        """Write ``manifest.json`` covering every file written so far (sorted by name); ``extra``
        members (such as ``completeness``) come before ``files``."""
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "schema_version": MANIFEST_VERSION,
            "request_id": request_id,
            "created_at": iso(created_at),
            **(extra or {}),
            "files": sorted(self.files, key=lambda f: str(f["name"])),
        }
        with create_private(self.directory / MANIFEST_NAME) as stream:
            stream.write(json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8") + b"\n")
            stream.flush()
            os.fsync(stream.fileno())


def check_package_name(name: str) -> str:
    """Refuse a request ID that is not safe as a single directory name."""
    if not _SAFE_NAME.match(name):
        raise UsageError("request ID is not usable as a directory name (letters, digits, . _ -)")
    return name


@contextlib.contextmanager
def atomic_package(out_dir: Path, name: str) -> Iterator[PackageBuilder]:
    """Yield a builder over a temporary directory; publish it as ``out_dir/name`` on success."""
    check_package_name(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out_dir, name)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-", dir=out_dir))  # mode 0700
    try:
        marker = tmp / INCOMPLETE_MARKER
        with create_private(marker) as stream:
            stream.write(INCOMPLETE_TEXT.encode("utf-8"))
        yield PackageBuilder(tmp)
        marker.unlink()
        _fsync_dir(tmp)
        _publish(tmp, out_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def create_private(path: Path) -> BinaryIO:
    """Create ``path`` (it must not exist) for binary writing, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def remove_leftovers(out_dir: Path, name: str | None = None, *, now: float | None = None) -> list[str]:
    """Delete interrupted writes in ``out_dir``: every ``.tmp-``/``.old-`` directory of package
    ``name`` (only one write of a package runs at a time), and those of any package whose newest
    entry is older than :data:`STALE_AFTER`. Returns the names removed."""
    own = (
        re.compile(rf"^(?:{re.escape(TMP_PREFIX)}|{re.escape(OLD_PREFIX)}){re.escape(name)}-[A-Za-z0-9_]+$")
        if name
        else None
    )
    cutoff = (time.time() if now is None else now) - STALE_AFTER
    removed = []
    for entry in list(out_dir.iterdir()) if out_dir.is_dir() else []:
        if not entry.name.startswith((TMP_PREFIX, OLD_PREFIX)) or not entry.is_dir() or entry.is_symlink():
            continue
        if (own is not None and own.match(entry.name)) or _newest_mtime(entry) < cutoff:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def _newest_mtime(directory: Path) -> float:
    try:
        stamps = [directory.stat().st_mtime, *(p.stat().st_mtime for p in directory.iterdir())]
    except OSError:  # vanished meanwhile (another writer cleaned it)
        return float("inf")
    return max(stamps)


def _publish(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return
    old = final.parent / f"{OLD_PREFIX}{final.name}-{secrets.token_hex(6)}"
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)
        raise
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories (Windows)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def iso(value: datetime) -> str:
    """ISO 8601 in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def now_utc() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
