"""The deletion certificate: content, manifest, escaping, atomic replacement."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from report_builders import check_manifest, deletion_result

from amplitude_dsr.dsr.report import certificate as certificate_module
from amplitude_dsr.dsr.report import certificate_json, write_certificate

FILES = {"certificate.json", "certificate.html"}


def test_certificate_json_content() -> None:
    issued = datetime(2024, 9, 1, tzinfo=UTC)
    doc = certificate_json(deletion_result(), issued_at=issued)
    assert doc["schema"] == "amplitude-dsr/deletion-certificate"
    assert doc["schema_version"] == 2
    assert doc["issued_at"] == "2024-09-01T00:00:00+00:00"
    assert doc["request"] == {
        "id": "del-1",
        "created_at": "2024-08-05T14:00:00+00:00",
        "completed_at": "2024-08-21T14:00:00+00:00",
        "regulation": "gdpr",
        "requester": "dpo@example.org",
        "org_wide": False,
    }
    assert doc["identifiers"] == [{"kind": "email", "value": "jane@example.com"}]
    assert doc["resolution"]["subjects"][0]["merged_amplitude_ids"] == [11111]
    assert [c["amplitude_id"] for c in doc["resolution"]["attempts"][0]["candidates"]] == [12345]
    assert doc["resolution"]["excluded_candidates"] == 1
    (receipt,) = doc["receipts"]
    assert receipt["job_day"] == "2024-09-05"
    assert receipt["requested_on_day"] == "2024-08-05"
    assert receipt["amplitude_ids"] == [12345, 11111]
    assert receipt["invalid_ids"] == ["42"]
    assert receipt["reconciled"] is True
    assert [h["status"] for h in doc["history"]] == ["submitted", "done"]  # in time order
    (verification,) = doc["verifications"]
    assert verification["outcome"] == "recollected"
    assert verification["found_amplitude_ids"] == [77777]
    assert doc["summary"] == {
        "projects": ["web"],
        "amplitude_ids_submitted": [11111, 12345],
        "invalid_ids": ["42"],
        "verified": 0,
        "recollected": 1,
    }
    assert doc["final_status"] == "completed"
    assert doc["audit_chain_head"] == "ab" * 32
    json.dumps(doc, allow_nan=False)


def test_certificate_before_completion_has_nulls() -> None:
    doc = certificate_json(deletion_result(completed_at=None, audit_head=None, verifications=[], status="submitted"))
    assert doc["request"]["completed_at"] is None
    assert doc["audit_chain_head"] is None
    assert doc["verifications"] == []


def test_write_certificate_files_and_manifest(tmp_path: Path) -> None:
    now = datetime(2024, 9, 1, tzinfo=UTC)
    final = write_certificate(deletion_result(), tmp_path / "out", now=now)
    assert final == tmp_path / "out" / "del-1"
    manifest = check_manifest(final, FILES)
    assert manifest["created_at"] == "2024-09-01T00:00:00+00:00"
    on_disk = json.loads((final / "certificate.json").read_text())
    assert on_disk == certificate_json(deletion_result(), issued_at=now)


def test_certificate_html_is_readable_and_escaped(tmp_path: Path) -> None:
    html = (write_certificate(deletion_result(), tmp_path) / "certificate.html").read_text()
    assert "<b>new</b>" not in html and "&lt;b&gt;new&lt;/b&gt;" in html
    for text in (
        "del-1",
        "2024-09-05",
        "collected again",
        "ab" * 32,
        "1 other Amplitude user returned by the search was excluded",
    ):
        assert text in html
    assert "rebuilt from Amplitude's job list" in html
    assert "https://" not in html and "<link" not in html
    assert "@media print" in html


def test_replacing_a_certificate_and_failure_leaves_old_one(tmp_path: Path, monkeypatch: Any) -> None:
    first = write_certificate(deletion_result(status="submitted"), tmp_path)
    second = write_certificate(deletion_result(status="completed"), tmp_path)
    assert first == second
    assert json.loads((second / "certificate.json").read_text())["final_status"] == "completed"

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**certificate_json(*args, **kwargs), "bad": float("nan")}

    monkeypatch.setattr(certificate_module, "certificate_json", broken)
    with pytest.raises(ValueError):
        write_certificate(deletion_result(status="failed"), tmp_path)
    assert json.loads((second / "certificate.json").read_text())["final_status"] == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["del-1"]


def test_certificate_html_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: Any) -> None:
    def explode(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("template context failed")

    monkeypatch.setattr(certificate_module, "_context", explode)
    with pytest.raises(RuntimeError):
        write_certificate(deletion_result(), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_report_package_exports() -> None:
    import amplitude_dsr.dsr.report as report

    public = {name for name in dir(report) if not name.startswith("_") and name.isidentifier()}
    assert set(report.__all__) <= public
    assert {"write_access_package", "write_certificate", "certificate_json"} <= set(report.__all__)
