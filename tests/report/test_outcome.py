"""Each final status of a deletion gets a document that says what happened; only a verified
deletion is a certificate of deletion."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_builders import T0, deletion_result

from amplitude_dsr.dsr.model import Resolution, StatusChange
from amplitude_dsr.dsr.report import certificate_json, write_certificate

CERTIFICATE = "Certificate of deletion"


def _title(html: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", html)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(
    ("status", "document", "title", "complete"),
    [
        ("verified", "certificate_of_deletion", "Certificate of deletion from Amplitude Analytics", True),
        ("failed", "deletion_not_complete", "Deletion NOT complete: the deletion request failed", False),
        ("still_present", "deletion_not_complete", "Deletion NOT complete: data is still present in Amplitude", False),
        ("cancelled", "deletion_cancelled", "Deletion cancelled: record of a withdrawn deletion request", False),
        ("nothing_found", "nothing_to_delete", "No data to delete: record of a deletion request", True),
        ("recollected", "deleted_then_recollected", None, False),
        ("submitted", "deletion_in_progress", "Deletion in progress: not complete yet", False),
    ],
)
def test_every_status_gets_its_own_title(
    tmp_path: Path, status: str, document: str, title: str | None, complete: bool
) -> None:
    final = write_certificate(deletion_result(status=status), tmp_path)
    doc = json.loads((final / "certificate.json").read_text())
    assert doc["outcome"]["document"] == document
    assert doc["outcome"]["deletion_complete"] is complete
    html = (final / "certificate.html").read_text()
    assert _title(html) == doc["outcome"]["title"]
    if title is not None:
        assert doc["outcome"]["title"] == title
    if status != "verified":
        assert CERTIFICATE not in html and CERTIFICATE not in doc["outcome"]["title"]
    assert json.loads((final / "manifest.json").read_text())["document"] == document


def test_a_failed_deletion_says_why_what_amplitude_accepted_and_what_next(tmp_path: Path) -> None:
    reason = "Amplitude answered 400 to the deletion POST"
    history = [StatusChange(at=T0, scope="job web 2024-09-05", status="submitted")]
    result = deletion_result(status="failed", failure_reason=reason, verifications=[], history=history)
    doc = certificate_json(result)
    outcome = doc["outcome"]
    assert outcome["failure_reason"] == reason
    assert outcome["statement"].startswith(f"The deletion is NOT complete. The request failed: {reason}.")
    assert outcome["accepted_by_amplitude"] == {
        "jobs": [{"project": "web", "job_day": "2024-09-05", "status": "submitted", "amplitude_ids": 2}],
        "amplitude_ids": 2,
        "amplitude_ids_to_delete": 2,
    }
    assert "Amplitude accepted 2 of the 2 Amplitude ID(s)" in outcome["statement"]
    assert outcome["next_steps"] and "submit the deletion again" in outcome["next_steps"][0]
    html = (write_certificate(result, tmp_path) / "certificate.html").read_text()
    assert "Deletion NOT complete" in html and CERTIFICATE not in html
    for text in ("Why the deletion failed", reason, "What Amplitude accepted", "2024-09-05", "What to do next"):
        assert text in html


def test_a_failed_deletion_that_amplitude_never_accepted(tmp_path: Path) -> None:
    result = deletion_result(status="failed", failure_reason="authentication failed", receipts=[], verifications=[])
    outcome = certificate_json(result)["outcome"]
    assert outcome["accepted_by_amplitude"]["amplitude_ids"] == 0
    assert outcome["accepted_by_amplitude"]["amplitude_ids_to_delete"] == 2  # canonical and merged ID
    assert "Amplitude accepted nothing, so nothing will be deleted." in outcome["statement"]
    html = (write_certificate(result, tmp_path) / "certificate.html").read_text()
    assert "Amplitude accepted no deletion for this request (2 Amplitude ID(s) were to be deleted)" in html


def test_nothing_found_and_cancelled_say_nothing_was_deleted() -> None:
    empty = deletion_result(status="nothing_found", receipts=[], verifications=[], resolution=Resolution())
    assert "nothing was deleted" in certificate_json(empty)["outcome"]["statement"]
    cancelled = certificate_json(deletion_result(status="cancelled", verifications=[]))["outcome"]
    assert cancelled["statement"].startswith("The request was cancelled before Amplitude deleted anything")
    assert cancelled["failure_reason"] is None


def test_failure_reason_only_for_failed_requests() -> None:
    assert certificate_json(deletion_result(status="verified", failure_reason="x"))["outcome"]["failure_reason"] is None
