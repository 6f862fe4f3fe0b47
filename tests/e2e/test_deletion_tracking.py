"""Tracking lists jobs by shared windows: requests waiting on different jobs of the same months
share one listing per round (the emulator's log shows the windows asked for), so listings do not
crowd out deletion POSTs in the one-per-second pool."""

from __future__ import annotations

from datetime import date
from typing import Any

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import repo

from .conftest import api_calls
from .test_transient_faults import eventually, receipted


def test_requests_on_different_jobs_share_one_listing_window(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    rt = make_runtime()
    emulator.admin.set_speed(1)
    ids = []
    for index in (0, 1):
        user = catalog["web"]["ordinary"][index]
        rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user["user_id"])])
        eventually(lambda rid=rid: receipted(rt, rid), "the receipt")
        ids.append(rid)
        emulator.admin.advance(days=8)  # the first job froze: the next POST opens another job
    days = {i.job_day for rid in ids for i in repo.items_for(rt.engine, rid)}
    assert len(days) == 2
    emulator.admin.set_speed(86400.0 * 4)
    assert [api.wait(rt, rid, timeout=120) for rid in ids] == ["verified", "verified"]
    listings = [e["query"] for e in api_calls(emulator, "/deletions/users") if e["status"] == 200]
    windows = {(q["start_day"], q["end_day"]) for q in listings}
    spans = {(date.fromisoformat(b) - date.fromisoformat(a)).days + 1 for a, b in windows}
    assert spans == {180}, windows  # shared windows only, never one narrow window per job
    assert len(windows) <= 2
