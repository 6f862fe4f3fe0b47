"""Writing a package of files atomically, hashing every byte while it streams out.

A package is built in a hidden temporary sibling ``out_dir/.tmp-<name>-<random>``; every file is
fsynced, then the directory is renamed to ``out_dir/<name>``. An existing package of that name
is renamed away first and deleted after the new one is in place (on POSIX a reader may find no
directory for the instant between the two renames, never a half-written one). On any error the
temporary directory is removed and nothing is left behind.
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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from amplitude_dsr.errors import UsageError

MANIFEST_SCHEMA = "amplitude-dsr/manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


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
        with (self.directory / name).open("xb") as stream:
            writer = HashingWriter(stream)
            yield writer
            stream.flush()
            os.fsync(stream.fileno())
        self.files.append({"name": name, "bytes": writer.bytes, "sha256": writer.sha256})

    def write_manifest(self, request_id: str, created_at: datetime) -> None:
        """Write ``manifest.json`` covering every file written so far (sorted by name)."""
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "schema_version": MANIFEST_VERSION,
            "request_id": request_id,
            "created_at": iso(created_at),
            "files": sorted(self.files, key=lambda f: str(f["name"])),
        }
        with (self.directory / MANIFEST_NAME).open("xb") as stream:
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
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out_dir))
    try:
        yield PackageBuilder(tmp)
        _fsync_dir(tmp)
        _publish(tmp, out_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return
    old = final.parent / f".old-{final.name}-{secrets.token_hex(6)}"
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
