"""The package and the certificate name only the data subject; the operator record names all."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from report_builders import access_result, deletion_result, event

from amplitude_dsr.dsr.model import Candidate, Receipt
from amplitude_dsr.dsr.report import write_access_package, write_certificate
from amplitude_dsr.dsr.report._operator import operator_record_path
from amplitude_dsr.dsr.report._privacy import public_resolution_json

OTHER_USER_ID = "jane@example.com.au"  # the prefix-colliding candidate of report_builders
OTHER_AMPLITUDE_ID = "999"


def _package_texts(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in directory.iterdir()}


def _modes(directory: Path) -> tuple[int, set[int]]:
    return stat.S_IMODE(directory.stat().st_mode), {stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


def test_access_package_counts_other_users_and_the_operator_record_names_them(tmp_path: Path) -> None:
    operator = tmp_path / "data" / "operator"
    final = write_access_package(access_result(tmp_path, [event(1)]), tmp_path / "out", operator_dir=operator)
    texts = _package_texts(final)
    assert set(texts) == {"export.json", "report.html", "events.csv", "manifest.json"}
    for name, text in texts.items():
        assert OTHER_USER_ID not in text, name
        assert f" {OTHER_AMPLITUDE_ID}" not in text and f":{OTHER_AMPLITUDE_ID}" not in text, name
    assert _modes(final) == (0o700, {0o600})
    record_path = operator_record_path(operator, "req-1")
    assert record_path == operator / "req-1" / "operator-record.json"
    assert stat.S_IMODE(record_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(operator.stat().st_mode) == stat.S_IMODE(record_path.parent.stat().st_mode) == 0o700
    record = json.loads(record_path.read_text())
    assert record["schema"] == "amplitude-dsr/operator-record" and record["kind"] == "access"
    rejected = [c for a in record["resolution"]["attempts"] for c in a["candidates"] if not c["accepted"]]
    assert rejected == [
        {"amplitude_id": 999, "user_id": OTHER_USER_ID, "accepted": False, "reason": "prefix match of another user"}
    ]


def test_without_an_operator_dir_no_record_is_written(tmp_path: Path) -> None:
    write_access_package(access_result(tmp_path, [event(1)]), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events-req-1.jsonl", "out"]


def test_a_rejected_candidate_that_is_the_subjects_own_id_stays_visible() -> None:
    resolution = deletion_result().resolution
    own_merged = Candidate(amplitude_id=11111, user_id=None, accepted=False, reason="rejected: not this search")
    resolution.attempts[0].candidates.append(own_merged)
    doc = public_resolution_json(resolution)
    assert [c["amplitude_id"] for c in doc["attempts"][0]["candidates"]] == [12345, 11111]
    assert doc["attempts"][0]["excluded_candidates"] == 1
    assert doc["excluded_candidates"] == 1


def test_certificate_names_only_the_subject_even_in_a_shared_batch(tmp_path: Path) -> None:
    operator = tmp_path / "operator"
    result = deletion_result(
        receipts=[
            Receipt(
                project="web",
                batch_id="b1",
                job_day="2024-09-05",
                status="staging",
                amplitude_ids=[12345, 11111],
                invalid_ids=[],
                recorded_at=deletion_result().created_at,
            )
        ]
    )
    final = write_certificate(result, tmp_path / "out", operator_dir=operator)
    for name, text in _package_texts(final).items():
        assert OTHER_USER_ID not in text, name
    assert _modes(final) == (0o700, {0o600})
    record = json.loads(operator_record_path(operator, "del-1").read_text())
    assert record["kind"] == "deletion"
    assert OTHER_USER_ID in json.dumps(record)
    doc = json.loads((final / "certificate.json").read_text())
    assert doc["resolution"]["excluded_candidates"] == 1


def test_rewriting_replaces_the_operator_record(tmp_path: Path) -> None:
    operator = tmp_path / "operator"
    write_certificate(deletion_result(status="submitted"), tmp_path / "out", operator_dir=operator)
    write_certificate(deletion_result(status="verified"), tmp_path / "out", operator_dir=operator)
    assert sorted(p.name for p in (operator / "del-1").iterdir()) == ["operator-record.json"]
