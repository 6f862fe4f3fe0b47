"""What the documents say is true: how many events Amplitude holds against how many are included,
which fields the CSV carries, whether the answer is partial and why, and what a failed deletion's
document is called. Checked against what the emulator holds and received."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from amplitude_dsr.dsr import api, finish
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.errors import FatalError
from amplitude_dsr.store import repo

from .conftest import api_calls


def _access(rt: Runtime, out: Path, user_id: str) -> Path:
    rid, _ = api.submit(rt, "access", [Identifier.parse("user_id", user_id)], options={"out_dir": str(out)})
    assert api.wait(rt, rid) == "completed"
    return Path(repo.get_request(rt.engine, rid).out_dir or "")


def test_recent_events_only_is_a_partial_answer_that_says_how_to_get_the_rest(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    heavy = catalog["web"]["heavy"]
    package = _access(make_runtime(), tmp_path / "out", heavy["user_id"])
    [activity] = api_calls(emulator, "/useractivity")  # one page: no --full-history, no org keys
    assert activity["query"]["offset"] == "0"
    export = json.loads((package / "export.json").read_text())
    [subject] = export["subjects"]
    included = subject["events_in_export"]
    assert 1000 <= included < heavy["num_events"] == subject["summary"]["num_events"]
    assert subject["coverage"]["source"] == "recent"
    assert subject["coverage"]["events_reported"] == heavy["num_events"]
    assert subject["coverage"]["events_included"] == included
    assert subject["coverage"]["events_missing"] == heavy["num_events"] - included
    assert "--full-history" in subject["coverage"]["how_to_get_the_rest"]
    assert export["completeness"]["status"] == "partial" and export["completeness"]["complete"] is False
    [reason] = export["completeness"]["reasons"]
    assert f"{included:,} of the {heavy['num_events']:,} events Amplitude reports are included" in reason
    assert heavy["user_id"] not in reason
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["completeness"] == export["completeness"]

    html = (package / "report.html").read_text()
    assert "Partial answer." in html and reason.replace("'", "&#39;") in html
    assert html.index("Partial answer.") < html.index("What you asked us to search for")
    assert f"{heavy['num_events'] - included} of the {heavy['num_events']} events Amplitude reports" in html
    assert "Every event, with all its fields" not in html and "--full-history" in html


def test_events_csv_carries_every_field_of_every_event(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][2]
    package = _access(make_runtime(), tmp_path / "out", user["user_id"])
    [subject] = json.loads((package / "export.json").read_text())["subjects"]
    with (package / "events.csv").open(newline="", encoding="utf-8") as rows:
        table = list(csv.DictReader(rows))
    assert len(table) == len(subject["events"]) == user["num_events"]
    fields = {k for e in subject["events"] for k in e}
    assert fields <= set(table[0])
    for wanted in ("ip_address", "os_name", "device_model", "device_type", "location_lat", "region", "city"):
        assert wanted in table[0]
    by_uuid = {row["uuid"]: row for row in table}
    for event in subject["events"]:
        row = by_uuid[event["uuid"]]
        assert row["ip_address"] == event["ip_address"]
        assert row["os_name"] == event["os_name"]
        assert float(row["location_lat"]) == event["location_lat"]
        assert json.loads(row["data"]) == event["data"]  # nested objects as JSON text
    export = json.loads((package / "export.json").read_text())
    assert export["completeness"] == {"status": "complete", "complete": True, "reasons": []}
    assert "Complete answer." in (package / "report.html").read_text()


def test_failed_dsar_export_is_partial_and_does_not_blame_the_keys(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    bulk = catalog["web"]["dsar_oversize"]
    package = _access(make_runtime(org=True), tmp_path / "out", bulk["user_id"])
    assert len(api_calls(emulator, "/dsar/requests", "POST")) == 1
    export = json.loads((package / "export.json").read_text())
    [subject] = export["subjects"]
    assert subject["dsar"]["status"] == "failed"
    completeness = export["completeness"]
    assert completeness["complete"] is False
    dsar_reasons = [r for r in completeness["reasons"] if r.startswith("The DSAR export")]
    assert dsar_reasons == [
        "The DSAR export (complete history) of 1 user ended 'failed'; "
        "the data available with project keys is included instead."
    ]
    text = " ".join(completeness["reasons"]).lower()
    assert "key" not in text.replace("project keys", "").replace("organisation keys for", "")
    assert "region" not in text
    assert "Partial answer." in (package / "report.html").read_text()


class _VerificationBroke(FatalError):
    """Stands in for Amplitude refusing the verification search for good (a 400)."""


def test_a_failed_deletion_gets_a_document_that_says_it_is_not_complete(
    make_runtime: Any,
    emulator: EmulatorServer,
    catalog: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_verification(*_args: Any, **_kwargs: Any) -> Any:
        raise _VerificationBroke("Amplitude answered 400 to the verification search")

    monkeypatch.setattr(finish, "verify", broken_verification)
    user = catalog["web"]["ordinary"][1]
    rt = make_runtime()
    ident = [Identifier.parse("user_id", user["user_id"])]
    rid, _ = api.submit(rt, "deletion", ident, options={"out_dir": str(tmp_path / "out")})
    assert api.wait(rt, rid) == "failed"
    row = repo.get_request(rt.engine, rid)
    [post] = [e for e in emulator.admin.request_log() if e["method"] == "POST" and "deletions" in e["path"]]
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]  # Amplitude did accept the ID

    directory = Path(row.out_dir or "")
    doc = json.loads((directory / "certificate.json").read_text())
    assert doc["final_status"] == "failed"
    outcome = doc["outcome"]
    assert outcome["document"] == "deletion_not_complete" and outcome["deletion_complete"] is False
    assert outcome["failure_reason"] == row.error and "400" in (row.error or "")
    assert outcome["accepted_by_amplitude"]["amplitude_ids"] == 1
    [job] = outcome["accepted_by_amplitude"]["jobs"]
    assert job["job_day"] == doc["receipts"][0]["job_day"] and job["amplitude_ids"] == 1
    assert "NOT complete" in outcome["statement"] and outcome["next_steps"]
    html = (directory / "certificate.html").read_text()
    assert "Certificate of deletion" not in html
    assert "Deletion NOT complete" in html and "What to do next" in html and "What Amplitude accepted" in html
    assert "Amplitude answered 400 to the verification search" in html
    assert json.loads((directory / "manifest.json").read_text())["document"] == "deletion_not_complete"
