"""Builders of access and deletion results for report tests (imported by the test modules)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amplitude_dsr.dsr.model import (
    AccessResult,
    Candidate,
    DeletionResult,
    DsarInfo,
    Identifier,
    Receipt,
    Resolution,
    SearchAttempt,
    SessionSummary,
    StatusChange,
    Subject,
    SubjectData,
    Verification,
)

T0 = datetime(2024, 8, 5, 14, 0, tzinfo=UTC)
EMAIL = Identifier.parse("email", "jane@example.com")
DEVICE = Identifier.parse("device_id", "dev-1")


def event(i: int, **extra: Any) -> dict[str, Any]:
    """A plausible Amplitude event; ``i`` orders them in time."""
    return {
        "event_type": f"Type {i % 3}",
        "event_time": f"2024-08-05 14:{i // 60 % 60:02d}:{i % 60:02d}.000000",
        "session_id": 1722867700000,
        "amplitude_id": 12345,
        "user_id": "jane@example.com",
        "device_id": "dev-1",
        "uuid": f"uuid-{i}",
        "platform": "Web",
        "country": "France",
        "city": "Paris",
        "event_properties": {"n": i},
        "user_properties": {"plan": "pro"},
        **extra,
    }


def write_events(path: Path, events: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for e in events:
            out.write(json.dumps(e) + "\n")
    return path


def resolution() -> Resolution:
    accepted = Candidate(amplitude_id=12345, user_id="jane@example.com", accepted=True, reason="exact user_id match")
    prefix = Candidate(
        amplitude_id=999,
        user_id="jane@example.com.au",
        accepted=False,
        reason="prefix match of another user",
    )
    attempt = SearchAttempt(
        identifier=EMAIL,
        project="web",
        term_kind="user_id",
        term="jane@example.com",
        match_type="match_user_or_device_id",
        candidates=[accepted, prefix],
    )
    nothing = SearchAttempt(identifier=DEVICE, project="web", term_kind="device_id", term="dev-1", match_type="none")
    subject = Subject(
        project="web",
        amplitude_id=12345,
        merged_amplitude_ids=[11111],
        user_id="jane@example.com",
        device_ids=["dev-1"],
        matched_by=[EMAIL],
    )
    return Resolution(attempts=[attempt, nothing], subjects=[subject])


def access_result(
    tmp_path: Path, events: Iterable[dict[str, Any]] | None = None, *, request_id: str = "req-1"
) -> AccessResult:
    """One subject with ``events`` (written to a JSON-lines file), or no data held if ``None``."""
    res = resolution()
    if events is None:
        return AccessResult(
            request_id=request_id,
            created_at=T0,
            completed_at=T0,
            identifiers=[EMAIL],
            resolution=Resolution(attempts=res.attempts[:1]),
            notes=["searched 1 project"],
        )
    path = write_events(tmp_path / f"events-{request_id}.jsonl", events)
    count = sum(1 for line in path.open() if line.strip())
    data = SubjectData(
        subject=res.subjects[0],
        summary={"user_id": "jane@example.com", "country": "France", "properties": {"plan": "pro"}},
        sources=["user_activity", "dsar"],
        event_count=count,
        events_by_type={"Type 0": 2, "Type 1": 1},
        sessions=[SessionSummary(session_id=1722867700000, start="2024-08-05 14:00", event_count=count)],
        events_path=str(path),
        dsar=DsarInfo(request_id=7, status="failed", fail_reason="too large", fell_back_to_project_keys=True),
    )
    return AccessResult(
        request_id=request_id,
        created_at=T0,
        completed_at=T0,
        identifiers=[EMAIL, DEVICE],
        resolution=res,
        subjects=[data],
    )


def deletion_result(**overrides: Any) -> DeletionResult:
    receipt = Receipt(
        project="web",
        batch_id="b1",
        job_day="2024-09-05",
        status="staging",
        amplitude_ids=[12345, 11111],
        requested_on_day="2024-08-05",
        invalid_ids=["42"],
        recorded_at=T0,
        reconciled=True,
    )
    history = [
        StatusChange(at=T0.replace(day=20), scope="job web 2024-09-05", status="done"),
        StatusChange(at=T0, scope="request", status="submitted"),
    ]
    verification = Verification(
        identifier=EMAIL,
        project="web",
        outcome="recollected",
        checked_at=T0.replace(day=21),
        deleted_amplitude_ids=[12345],
        found_amplitude_ids=[77777],
        detail="<b>new</b> id after deletion",
    )
    fields: dict[str, Any] = {
        "request_id": "del-1",
        "created_at": T0,
        "completed_at": T0.replace(day=21),
        "requester": "dpo@example.org",
        "status": "completed",
        "identifiers": [EMAIL],
        "resolution": resolution(),
        "receipts": [receipt],
        "history": history,
        "verifications": [verification],
        "audit_head": "ab" * 32,
    }
    return DeletionResult(**{**fields, **overrides})


def check_manifest(directory: Path, expected: set[str]) -> dict[str, Any]:
    """Assert the manifest lists exactly ``expected`` with the sizes and hashes on disk."""
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["schema"] == "amplitude-dsr/manifest"
    assert manifest["schema_version"] == 1
    assert {f["name"] for f in manifest["files"]} == expected
    assert {p.name for p in directory.iterdir()} == expected | {"manifest.json"}
    for f in manifest["files"]:
        data = (directory / f["name"]).read_bytes()
        assert f["bytes"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest()
    return manifest
