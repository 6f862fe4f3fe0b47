"""Deletions whose identifier User Search answers with somebody else: the verification does not
take the other user's answer as proof that the person is gone, and a deletion whose identifier
cannot be resolved at all fails saying so (never "nothing found"), with nothing posted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import repo

from .conftest import api_calls


def test_verifying_a_numeric_user_id_probes_instead_of_trusting_another_users_answer(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    numeric, alice = catalog["web"]["numeric_user_id"], catalog["web"]["ordinary"][0]
    assert numeric["user_id"] == str(alice["amplitude_id"])  # its search is answered with alice
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", numeric["user_id"])])
    assert api.wait(rt, rid) == "verified"
    [post] = api_calls(emulator, "/deletions/users", "POST")
    after = [e for e in emulator.admin.request_log() if e["seq"] > post["seq"] and e["path"].endswith("/usersearch")]
    # After the job is done: the term (answered with alice again) and the prefix probe that settles it.
    assert [e["query"]["user"] for e in after] == [numeric["user_id"], numeric["user_id"][:-1]]
    cert = json.loads((Path(repo.get_request(rt.engine, rid).out_dir or "") / "certificate.json").read_text())
    [check] = cert["verifications"]
    assert check["outcome"] == "verified" and check["deleted_amplitude_ids"] == [numeric["amplitude_id"]]


def test_a_deletion_whose_identifier_cannot_be_resolved_fails_and_posts_nothing(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    alice = catalog["web"]["ordinary"][0]
    rt = make_runtime()
    # A device ID that equals alice's Amplitude ID: User Search answers with alice, and there is
    # no prefix search for devices. "Nothing found" would be false; deleting alice would be worse.
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("device_id", str(alice["amplitude_id"]))])
    assert api.wait(rt, rid) == "failed"
    row = repo.get_request(rt.engine, rid)
    assert "could not be resolved" in (row.error or "") and str(alice["amplitude_id"]) not in (row.error or "")
    assert api_calls(emulator, "/deletions/users", "POST") == []
    html = (Path(row.out_dir or "") / "certificate.html").read_text()
    assert "Certificate of deletion" not in html and "NOT complete" in html
