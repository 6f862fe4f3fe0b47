"""The access package: files, manifest, export schema, HTML escaping, CSV guard, atomicity."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from report_builders import access_result, check_manifest, event

from amplitude_dsr.dsr.report import CSV_COLUMNS, EventsFileError, write_access_package
from amplitude_dsr.dsr.report import _output as output_module
from amplitude_dsr.errors import UsageError

FILES = {"export.json", "report.html", "events.csv"}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_package_files_and_manifest(tmp_path: Path) -> None:
    result = access_result(tmp_path, [event(i) for i in range(5)])
    final = write_access_package(result, tmp_path / "out")
    assert final == tmp_path / "out" / "req-1"
    manifest = check_manifest(final, FILES)
    assert manifest["request_id"] == "req-1"
    assert _leftovers(tmp_path / "out") == []


def test_export_json_schema_and_streamed_events(tmp_path: Path) -> None:
    events = [event(i) for i in range(250)]
    final = write_access_package(access_result(tmp_path, events), tmp_path / "out")
    export = json.loads((final / "export.json").read_text())
    assert export["schema"] == "amplitude-dsr/access-export"
    assert export["schema_version"] == 2
    assert export["request"]["id"] == "req-1"
    assert export["request"]["regulation"] == "gdpr"
    assert export["data_held"] is True
    assert [i["kind"] for i in export["identifiers"]] == ["email", "device_id"]
    attempt = export["resolution"]["attempts"][0]
    # The other user of the prefix match is counted, never named (schema version 2).
    assert attempt["candidates"] == [
        {"amplitude_id": 12345, "user_id": "jane@example.com", "accepted": True, "reason": "exact user_id match"}
    ]
    assert attempt["excluded_candidates"] == 1
    assert export["resolution"]["excluded_candidates"] == 1
    assert export["resolution"]["unresolved"] == [{"kind": "device_id", "value": "dev-1"}]
    (subject,) = export["subjects"]
    assert subject["all_amplitude_ids"] == [12345, 11111]
    assert subject["dsar"]["fell_back_to_project_keys"] is True
    assert subject["events"] == events
    assert subject["event_count"] == subject["events_in_export"] == 250


def test_no_data_held_is_explicit(tmp_path: Path) -> None:
    final = write_access_package(access_result(tmp_path, None), tmp_path / "out")
    export = json.loads((final / "export.json").read_text())
    assert export["data_held"] is False
    assert export["subjects"] == []
    assert export["statement"].startswith("No data held")
    html = (final / "report.html").read_text()
    assert "No data held" in html
    rows = list(csv.reader((final / "events.csv").open(newline="")))
    assert rows == [list(CSV_COLUMNS)]
    check_manifest(final, FILES)


def test_subject_without_events_file(tmp_path: Path) -> None:
    result = access_result(tmp_path, [])
    result.subjects[0].events_path = None
    result.subjects[0].event_count = 0
    export = json.loads((write_access_package(result, tmp_path / "out") / "export.json").read_text())
    assert export["subjects"][0]["events"] == []


def test_missing_events_file_with_reported_events_refuses(tmp_path: Path) -> None:
    result = access_result(tmp_path, [event(1)])
    Path(result.subjects[0].events_path or "").unlink()
    with pytest.raises(EventsFileError):
        write_access_package(result, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_html_escapes_untrusted_event_content(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>"
    result = access_result(tmp_path, [event(1, event_type=hostile, event_properties={"x": hostile})])
    result.subjects[0].summary["properties"] = {hostile: hostile}
    result.subjects[0].events_by_type = {hostile: 1}
    html = (write_access_package(result, tmp_path / "out") / "report.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_is_self_contained_and_explains_resolution(tmp_path: Path) -> None:
    html = (write_access_package(access_result(tmp_path, [event(1)]), tmp_path / "out") / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert "1 other Amplitude user returned by the search was excluded" in html
    assert "jane@example.com.au" not in html and "999" not in html
    assert "accepted" in html
    assert "Email address jane@example.com" in html
    assert "data was collected with project keys instead" in html


def test_html_caps_recent_events_and_points_at_full_files(tmp_path: Path) -> None:
    events = [event(i, event_type=f"evt-{i:04d}") for i in range(300)]
    final = write_access_package(access_result(tmp_path, events), tmp_path / "out", recent_events=20)
    html = (final / "report.html").read_text()
    assert "The 20 most recent of the 300 events in this export are shown." in html
    assert "evt-0299" in html and "evt-0280" in html and "evt-0279" not in html
    assert html.index("evt-0299") < html.index("evt-0280")
    assert "events.csv" in html


def test_csv_rows_and_formula_guard(tmp_path: Path) -> None:
    events = [
        event(1, event_type='=HYPERLINK("http://evil")', city="+33", country="@SUM(A1)"),
        event(2, user_id="-2+3", session_id=-1),
    ]
    final = write_access_package(access_result(tmp_path, events), tmp_path / "out")
    rows = list(csv.DictReader((final / "events.csv").open(newline="", encoding="utf-8")))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 2
    assert rows[0]["event_type"] == '\'=HYPERLINK("http://evil")'
    assert rows[0]["city"] == "'+33"
    assert rows[0]["country"] == "'@SUM(A1)"
    assert rows[0]["project"] == "web"
    assert json.loads(rows[0]["event_properties"]) == {"n": 1}
    assert rows[1]["user_id"] == "'-2+3"
    assert rows[1]["session_id"] == "-1"  # a number, not a formula


def test_replacing_an_existing_package(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_access_package(access_result(tmp_path, [event(i) for i in range(3)]), out)
    (out / "req-1" / "stale.txt").write_text("old")
    final = write_access_package(access_result(tmp_path, [event(9)]), out)
    export = json.loads((final / "export.json").read_text())
    assert [e["uuid"] for e in export["subjects"][0]["events"]] == ["uuid-9"]
    check_manifest(final, FILES)
    assert _leftovers(out) == []


def test_failure_midway_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    result = access_result(tmp_path, [event(i) for i in range(100)])
    lines = Path(result.subjects[0].events_path or "").read_text().splitlines()
    lines.insert(60, "{not json")
    path.write_text("\n".join(lines))
    result.subjects[0].events_path = str(path)
    out = tmp_path / "out"
    with pytest.raises(EventsFileError, match="line 61"):
        write_access_package(result, out)
    assert list(out.iterdir()) == []


def test_failure_while_replacing_keeps_the_old_package(tmp_path: Path, monkeypatch: Any) -> None:
    out = tmp_path / "out"
    write_access_package(access_result(tmp_path, [event(1)]), out)
    before = (out / "req-1" / "manifest.json").read_bytes()

    def explode(self: Any, *args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(output_module.PackageBuilder, "write_manifest", explode)
    with pytest.raises(OSError, match="disk full"):
        write_access_package(access_result(tmp_path, [event(2)]), out)
    assert (out / "req-1" / "manifest.json").read_bytes() == before
    assert _leftovers(out) == []


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".hidden", "", "x" * 300])
def test_unsafe_request_id_is_refused(tmp_path: Path, bad: str) -> None:
    result = access_result(tmp_path, None, request_id="ok")
    result.request_id = bad
    with pytest.raises(UsageError):
        write_access_package(result, tmp_path / "out")


def test_csv_has_every_field_of_every_event(tmp_path: Path) -> None:
    events = [
        event(1, ip_address="192.0.2.1", os_name="iOS", data={"path": "/x"}, groups=["a", "b"]),
        event(2, device_model="iPhone 15", location_lat=48.85),
        event(3, ip_address="=1+2"),
    ]
    final = write_access_package(access_result(tmp_path, events), tmp_path / "out")
    with (final / "events.csv").open(newline="", encoding="utf-8") as rows:
        table = list(csv.DictReader(rows))
    header = list(table[0])
    assert header[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    extra = header[len(CSV_COLUMNS) :]
    assert extra == sorted({k for e in events for k in e} - set(CSV_COLUMNS))
    assert {"ip_address", "os_name", "device_model", "location_lat", "data", "groups"} <= set(extra)
    assert table[0]["ip_address"] == "192.0.2.1" and table[1]["ip_address"] == ""
    assert json.loads(table[0]["data"]) == {"path": "/x"} and json.loads(table[0]["groups"]) == ["a", "b"]
    assert table[1]["location_lat"] == "48.85" and table[1]["device_model"] == "iPhone 15"
    assert table[2]["ip_address"] == "'=1+2"  # the formula guard covers every column


def test_partial_answer_banner_heads_the_report(tmp_path: Path) -> None:
    final = write_access_package(access_result(tmp_path, [event(1)]), tmp_path / "out")  # its DSAR failed
    export = json.loads((final / "export.json").read_text())
    assert export["completeness"]["status"] == "partial"
    [reason] = export["completeness"]["reasons"]
    assert reason.startswith("The DSAR export (complete history) of 1 user ended 'failed'")
    html = (final / "report.html").read_text()
    assert html.index("Partial answer.") < html.index('<p class="statement">')
    assert reason.replace("'", "&#39;") in html
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["completeness"] == export["completeness"]
