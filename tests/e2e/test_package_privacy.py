"""What the data subject receives names only the data subject.

The emulator seeds ``bob@example.co`` next to ``bob@example.com``: User Search answers a search for
the first with both (a prefix match). The second is somebody else, so no file of the package and
no certificate may name them (GDPR art. 15(4)); they are counted there, and kept in full only in
the operator record under the data directory.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import repo

from .conftest import api_calls


def _pair(catalog: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    subject, other = catalog["web"]["prefix_pairs"][0]
    assert other["user_id"].startswith(subject["user_id"]) and other["user_id"] != subject["user_id"]
    return subject, other


def _secrets_of(user: dict[str, Any]) -> list[str]:
    return [user["user_id"], str(user["amplitude_id"]), *user["device_ids"]]


def _assert_private(directory: Path, other: dict[str, Any]) -> list[str]:
    names = sorted(p.name for p in directory.iterdir())
    for path in directory.iterdir():
        text = path.read_text(encoding="utf-8")
        for value in _secrets_of(other):
            assert value not in text, (path.name, "names the other user")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    return names


def _operator_record(data_dir: Path, request_id: str, other: dict[str, Any]) -> dict[str, Any]:
    record = data_dir / "operator" / request_id / "operator-record.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    doc: dict[str, Any] = json.loads(record.read_text())
    candidates = [c for a in doc["resolution"]["attempts"] for c in a["candidates"]]
    rejected = [c for c in candidates if not c["accepted"]]
    assert {(c["amplitude_id"], c["user_id"]) for c in rejected} == {(other["amplitude_id"], other["user_id"])}
    return doc


def test_access_package_names_only_the_subject(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    subject, other = _pair(catalog)
    rt = make_runtime()
    out = tmp_path / "out"
    rid, _ = api.submit(rt, "access", [Identifier.parse("user_id", subject["user_id"])], options={"out_dir": str(out)})
    assert api.wait(rt, rid) == "completed"
    # Amplitude did answer with the other user: the collision is real, not avoided.
    [search] = api_calls(emulator, "/usersearch")
    assert search["query"]["user"] == subject["user_id"]
    package = Path(repo.get_request(rt.engine, rid).out_dir or "")
    names = _assert_private(package, other)
    assert names == ["events.csv", "export.json", "manifest.json", "report.html"]

    export = json.loads((package / "export.json").read_text())
    [attempt] = export["resolution"]["attempts"]
    assert [c["amplitude_id"] for c in attempt["candidates"]] == [subject["amplitude_id"]]
    assert attempt["excluded_candidates"] == 1
    assert export["resolution"]["excluded_candidates"] == 1
    html = (package / "report.html").read_text()
    assert "1 other Amplitude user returned by the search was excluded" in html
    assert subject["user_id"] in html

    record = _operator_record(tmp_path / "data", rid, other)
    assert record["request_id"] == rid and record["kind"] == "access"
    assert not (package / "operator-record.json").exists()


def test_deletion_certificate_names_only_the_subject(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    subject, other = _pair(catalog)
    rt = make_runtime()
    out = tmp_path / "out"
    ident = [Identifier.parse("user_id", subject["user_id"])]
    rid, _ = api.submit(rt, "deletion", ident, options={"out_dir": str(out)})
    assert api.wait(rt, rid) == "verified"
    [post] = [e for e in emulator.admin.request_log() if e["method"] == "POST" and "deletions" in e["path"]]
    assert post["body"]["amplitude_ids"] == [subject["amplitude_id"]]  # the other user was not deleted
    certificate = Path(repo.get_request(rt.engine, rid).out_dir or "")
    names = _assert_private(certificate, other)
    assert names == ["certificate.html", "certificate.json", "manifest.json"]
    doc = json.loads((certificate / "certificate.json").read_text())
    assert doc["resolution"]["excluded_candidates"] == 1
    assert (
        "1 other Amplitude user returned by the search was excluded" in (certificate / "certificate.html").read_text()
    )
    record = _operator_record(tmp_path / "data", rid, other)
    assert record["kind"] == "deletion"
