"""The two happy paths through the real stack: emulator over HTTP, DBOS, our tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import repo

from .conftest import api_calls


def test_access_for_an_ordinary_user_costs_two_user_pool_calls(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][0]
    rt = make_runtime()
    rid, _ = api.submit(
        rt, "access", [Identifier.parse("user_id", user["user_id"])], options={"out_dir": str(tmp_path / "out")}
    )
    assert api.wait(rt, rid) == "completed"
    row = repo.get_request(rt.engine, rid)
    export = json.loads((Path(row.out_dir or "") / "export.json").read_text())
    assert export["subjects"][0]["event_count"] == user["num_events"]
    pool = [e for e in emulator.admin.request_log() if e["path"].endswith(("/usersearch", "/useractivity"))]
    assert len(pool) == 2


def test_deletion_goes_to_verified(make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]) -> None:
    user = catalog["web"]["ordinary"][1]
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user["user_id"])])
    assert api.wait(rt, rid) == "verified"
    posts = api_calls(emulator, "/deletions/users", "POST")
    assert len(posts) == 1
    assert posts[0]["body"]["ignore_invalid_id"] == "True"
    assert posts[0]["body"]["amplitude_ids"] == [user["amplitude_id"]]
