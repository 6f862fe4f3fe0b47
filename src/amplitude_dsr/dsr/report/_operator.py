"""The operator record: the full resolution of a request, other people's candidates included.

The data subject's documents name only the subject (``_privacy.py``). How each search went in
full (every candidate Amplitude returned, with its user ID, and why it was rejected) is still
evidence the operator may need, for example to answer "why was this account not included?". It
is written to ``<data_dir>/operator/<request_id>/operator-record.json`` (directories ``0700``,
file ``0600``), never into the package and never to a log.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from amplitude_dsr.dsr.model import Resolution
from amplitude_dsr.dsr.report._output import DIR_MODE, check_package_name, create_private, iso, now_utc

OPERATOR_SCHEMA = "amplitude-dsr/operator-record"
OPERATOR_SCHEMA_VERSION = 1
OPERATOR_RECORD = "operator-record.json"
PURPOSE = (
    "Internal record for the operator. It names users who are NOT the data subject; never send it "
    "to the data subject or anyone else."
)


def operator_record_path(operator_dir: Path, request_id: str) -> Path:
    """Where the record of ``request_id`` lives under ``operator_dir`` (``<data_dir>/operator``)."""
    return operator_dir / check_package_name(request_id) / OPERATOR_RECORD


def write_operator_record(
    operator_dir: Path, request_id: str, kind: str, resolution: Resolution, *, now: datetime | None = None
) -> Path:
    """Write (or replace, atomically) the operator record of one request and return its path."""
    path = operator_record_path(operator_dir, request_id)
    for directory in (operator_dir, path.parent):
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(directory, DIR_MODE)
    document: dict[str, Any] = {
        "schema": OPERATOR_SCHEMA,
        "schema_version": OPERATOR_SCHEMA_VERSION,
        "purpose": PURPOSE,
        "request_id": request_id,
        "kind": kind,
        "written_at": iso(now or now_utc()),
        "resolution": resolution.model_dump(mode="json"),
    }
    tmp = path.with_name(f".{OPERATOR_RECORD}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        with create_private(tmp) as stream:
            stream.write(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
