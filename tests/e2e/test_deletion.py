"""Deletion end to end, in process, against the emulator over HTTP: batching many requests into
few POSTs, tracking to ``done``, verification (``verified`` / ``recollected``), uncertain POSTs
reconciled by listing jobs, cancel rules, the certificate and the audit trail. Every claim is
checked against what the emulator received."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.errors import AuditTamperDetected, CancelRefused
from amplitude_dsr.store import audit, repo

from .conftest import api_calls, settings_for

DELETIONS = "/deletions/users"


def posts(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return api_calls(emulator, DELETIONS, "POST")


def removals(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return [e for e in emulator.admin.request_log() if e["method"] == "DELETE"]


def eventually(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (a liveness guard, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def receipted(rt: Runtime, request_id: str) -> list[repo.Item]:
    items = repo.items_for(rt.engine, request_id)
    return items if items and all(i.state == "receipted" for i in items) else []


def user_id_of(catalog: dict[str, Any], kind: str = "ordinary", index: int = 0) -> tuple[str, int]:
    entry = catalog["web"][kind]
    user = entry[index] if isinstance(entry, list) else entry
    return user["user_id"], user["amplitude_id"]


@pytest.mark.slow
def test_250_subjects_go_out_in_three_posts_and_all_verify(
    emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    users = [emulator.admin.add_user("web", user_id=f"subject-{n:03d}@example.org", events=3) for n in range(250)]
    # Polling 250 requests every 0.2 s would measure our own overhead; one second is still fast.
    # The linger safety net is set far out: the flush rule alone must hold partial batches back.
    settings = settings_for(emulator, db_url, poll_interval=1.0, max_linger=600.0)
    # Submit every request first (a submitter runs nothing), then let one executor run them all.
    rt = open_runtime(settings, role="submitter", data_dir=tmp_path / "data")
    try:
        ids = [
            api.submit(rt, "deletion", [Identifier.parse("user_id", f"subject-{n:03d}@example.org")])[0]
            for n in range(250)
        ]
    finally:
        rt.close()
    assert posts(emulator) == []
    rt = open_runtime(settings, role="executor", data_dir=tmp_path / "data")
    try:
        outcomes = [api.wait(rt, rid) for rid in ids]
        receipts = {rid: repo.items_for(rt.engine, rid) for rid in ids}
    finally:
        rt.close()
    assert outcomes == ["verified"] * 250
    sent = posts(emulator)
    assert len(sent) <= 3  # 100 + 100 + 50: the flush rule waits while requests still resolve
    posted = [aid for p in sent for aid in p["body"]["amplitude_ids"]]
    assert sorted(posted) == sorted(u["amplitude_id"] for u in users)  # each exactly once
    for p in sent:
        assert p["status"] == 200
        assert p["body"]["ignore_invalid_id"] == "True"
        assert p["body"]["delete_from_org"] == "False"
        assert p["body"]["requester"] == "amplitude-dsr"
        assert len(p["body"]["amplitude_ids"]) <= 100
    assert all(i.state == "receipted" and i.job_status == "done" for items in receipts.values() for i in items)
    # Tracking lists jobs in narrow windows around each job day (never wider than six months).
    for get in api_calls(emulator, DELETIONS):
        start, end = get["query"]["start_day"], get["query"]["end_day"]
        assert start <= end and (int(end[:4]) * 12 + int(end[5:7])) - (int(start[:4]) * 12 + int(start[5:7])) <= 6


def test_deletion_certificate_and_receipt(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user_id, aid = user_id_of(catalog, "merged")
    merged = catalog["web"]["merged"]["merged_amplitude_ids"]
    rt = make_runtime()
    out = {"out_dir": str(tmp_path / "out")}
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)], options=out)
    assert api.wait(rt, rid) == "verified"
    [post] = posts(emulator)
    assert post["body"]["amplitude_ids"][0] == aid
    assert merged and set(merged) <= set(post["body"]["amplitude_ids"])  # merged IDs are deleted too
    cert = json.loads((tmp_path / "out" / rid / "certificate.json").read_text())
    assert (cert["schema"], cert["schema_version"], cert["final_status"]) == (
        "amplitude-dsr/deletion-certificate",
        2,
        "verified",
    )
    [receipt] = cert["receipts"]
    assert receipt["status"] == "staging" and receipt["job_day"] and receipt["requested_on_day"]
    assert sorted(receipt["amplitude_ids"]) == sorted(post["body"]["amplitude_ids"])
    job_statuses = [h["status"] for h in cert["history"] if h["scope"].startswith("job ")]
    assert job_statuses[-1] == "done" and "submitted" in job_statuses
    assert any("active scrub done" in h["detail"] for h in cert["history"] if h["status"] == "done")
    assert [v["outcome"] for v in cert["verifications"]] == ["verified"]
    with rt.engine.connect() as conn:
        assert cert["audit_chain_head"] in {e.hash for e in audit.entries(conn)}
    assert (tmp_path / "out" / rid / "certificate.html").read_text().count(rid) >= 1


@pytest.fixture
def user_clock(emulator: EmulatorServer) -> EmulatorServer:
    """The emulator at real-time speed: the test moves its days with ``advance``."""
    emulator.admin.set_speed(1)
    return emulator


def test_recollected_user_is_reported_never_silently_verified(
    make_runtime: Any, user_clock: EmulatorServer, catalog: dict[str, Any]
) -> None:
    emulator = user_clock
    user_id, aid = user_id_of(catalog, index=2)
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)])
    [item] = eventually(lambda: receipted(rt, rid), "the receipt")
    emulator.admin.advance(days=10.5)  # the job's day: submitted, the user is gone
    eventually(lambda: repo.get_request(rt.engine, rid).status == "submitted", "status submitted")
    back = emulator.admin.add_events("web", aid, 5)  # the app tracks the same user_id again
    assert back["recollected"] and back["amplitude_id"] != aid
    emulator.admin.advance(days=8)
    assert api.wait(rt, rid) == "recollected"
    row = repo.get_request(rt.engine, rid)
    cert = json.loads((Path(row.out_dir or "") / "certificate.json").read_text())
    [check] = cert["verifications"]
    assert check["outcome"] == "recollected" and check["found_amplitude_ids"] == [back["amplitude_id"]]
    assert check["deleted_amplitude_ids"] == [item.amplitude_id]
    assert cert["summary"]["recollected"] == 1 and cert["summary"]["verified"] == 0
    assert len(posts(emulator)) == 1  # no second deletion on its own: an operator decides


def test_cancel_while_staging_then_refused_once_frozen_or_submitted(
    make_runtime: Any, user_clock: EmulatorServer, catalog: dict[str, Any]
) -> None:
    emulator = user_clock
    first, first_aid = user_id_of(catalog, index=3)
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", first)])
    [item] = eventually(lambda: receipted(rt, rid), "the receipt")
    assert api.cancel(rt, rid) == "cancelled"
    assert api.wait(rt, rid) == "cancelled"
    [removal] = api_calls(emulator, f"{DELETIONS}/{first_aid}/{item.job_day}", "DELETE")
    assert removal["status"] == 200  # the job's day, not requested_on_day
    assert [i.state for i in repo.items_for(rt.engine, rid)] == ["cancelled"]
    with rt.engine.connect() as conn:
        assert [e.kind for e in audit.entries(conn, rid)][-1] == "cancelled"
    with pytest.raises(CancelRefused, match="already 'cancelled'"):
        api.cancel(rt, rid)

    second, _ = user_id_of(catalog, index=4)
    rid2, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", second)])
    [item2] = eventually(lambda: receipted(rt, rid2), "the second receipt")
    assert item2.job_day == item.job_day  # joined the same staging job
    emulator.admin.advance(days=8)  # two days before the job's day: frozen by Amplitude
    with pytest.raises(CancelRefused, match="more than 3 days before"):
        api.cancel(rt, rid2)
    emulator.admin.advance(days=3)  # the job runs now
    eventually(lambda: repo.get_request(rt.engine, rid2).status == "submitted", "status submitted")
    deletes_before = len(removals(emulator))
    assert deletes_before == 2  # the cancel, and the refused attempt Amplitude answered with a 400
    with pytest.raises(CancelRefused, match="already 'submitted'"):
        api.cancel(rt, rid2)
    assert len(removals(emulator)) == deletes_before  # refused before calling Amplitude
    emulator.admin.advance(days=8)
    assert api.wait(rt, rid2) == "verified"


def test_dropped_post_is_reconciled_by_listing_not_reposted(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    user_id, aid = user_id_of(catalog, index=5)
    emulator.admin.inject_fault("drop_after", path="/api/2/deletions/users", method="POST")
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)])
    assert api.wait(rt, rid) == "verified"
    [post] = posts(emulator)
    assert post["fault"] == "drop_after" and post["body"]["amplitude_ids"] == [aid]
    with rt.engine.connect() as conn:
        kinds = [e.kind for e in audit.entries(conn, rid)]
    assert kinds.index("deletion_post_uncertain") < kinds.index("deletion_reconciled")
    assert "deletion_receipt" not in kinds


def test_post_refused_with_5xx_is_reconciled_then_sent_again(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    user_id, aid = user_id_of(catalog, index=6)
    emulator.admin.inject_fault("503", path="/api/2/deletions/users", method="POST")
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)])
    assert api.wait(rt, rid) == "verified"
    sent = posts(emulator)
    assert [p["status"] for p in sent] == [503, 200]  # the 503 scheduled nothing: safe to send again
    assert all(p["body"]["amplitude_ids"] == [aid] for p in sent)
    # Between the two POSTs a job listing proved Amplitude did not have the ID.
    log = emulator.admin.request_log()
    first, second = (e["seq"] for e in log if e["method"] == "POST")
    assert any(e["method"] == "GET" and first < e["seq"] < second for e in log if e["path"].endswith(DELETIONS))


def test_nobody_found_means_nothing_posted(make_runtime: Any, emulator: EmulatorServer) -> None:
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", "nobody-at-all@example.org")])
    assert api.wait(rt, rid) == "nothing_found"
    assert posts(emulator) == []


def test_audit_trail_detects_an_edited_row(make_runtime: Any, catalog: dict[str, Any]) -> None:
    user_id, _ = user_id_of(catalog, index=7)
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)])
    assert api.wait(rt, rid) == "verified"
    with rt.engine.connect() as conn:
        audit.verify(conn)
        receipt = next(e for e in audit.entries(conn, rid) if e.kind == "deletion_receipt")
    edited = json.dumps({**receipt.detail, "invalid": 7})
    with rt.engine.begin() as conn:
        conn.execute(sa.update(audit.dsr_audit).where(audit.dsr_audit.c.id == receipt.id).values(detail=edited))
    with rt.engine.connect() as conn, pytest.raises(AuditTamperDetected):
        audit.verify(conn)


def test_org_wide_deletion_creates_and_tracks_a_job_in_each_project(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    web, mobile = catalog["web"]["cross_project"][0], catalog["mobile"]["cross_project"][0]
    assert web["user_id"] == mobile["user_id"] and web["amplitude_id"] != mobile["amplitude_id"]
    rt = make_runtime(projects=("web", "mobile"))
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", web["user_id"])], options={"org_wide": True})
    assert api.wait(rt, rid) == "verified"
    sent = posts(emulator)
    assert {p["project"]: p["body"]["amplitude_ids"] for p in sent} == {
        "web": [web["amplitude_id"]],
        "mobile": [mobile["amplitude_id"]],
    }
    assert all(p["body"]["delete_from_org"] == "True" for p in sent)
    items = repo.items_for(rt.engine, rid)
    assert {(i.project, i.job_status) for i in items} == {("web", "done"), ("mobile", "done")}
    # each project's job was followed with that project's own key
    listed = {e["project"] for e in api_calls(emulator, DELETIONS) if e["status"] == 200}
    assert listed == {"web", "mobile"}
    row = repo.get_request(rt.engine, rid)
    cert = json.loads((Path(row.out_dir or "") / "certificate.json").read_text())
    assert cert["request"]["org_wide"] is True
    assert {r["project"] for r in cert["receipts"]} == {"web", "mobile"}
    assert all(r["app"] is not None for r in cert["receipts"])


def test_a_receipt_lost_to_our_database_is_reconciled_at_once_not_after_minutes(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Amplitude answered the POST, then our database dropped the write of its receipt: the batch
    is left ``posting`` by this very process. No thread posts it any more, so the next round
    reconciles it by listing jobs (one POST in all), instead of waiting for the 10-minute staleness
    rule that covers other processes' batches (bench/PROBLEMS.md, P-7)."""
    user_id, aid = user_id_of(catalog, index=7)
    real = repo.record_receipt
    lost: list[str] = []

    def dropped_once(engine: Any, batch_id: str, *args: Any, **kwargs: Any) -> bool:
        if not lost and kwargs.get("state", "receipted") == "receipted":
            lost.append(batch_id)
            raise sa.exc.OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))
        return real(engine, batch_id, *args, **kwargs)

    monkeypatch.setattr(repo, "record_receipt", dropped_once)
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user_id)])
    assert api.wait(rt, rid, timeout=120) == "verified"
    assert lost  # the fault happened
    [post] = posts(emulator)
    assert post["body"]["amplitude_ids"] == [aid] and post["status"] == 200
    assert repo.get_batch(rt.engine, lost[0]).state == "reconciled"
    with rt.engine.connect() as conn:
        assert "deletion_reconciled" in [e.kind for e in audit.entries(conn, rid)]


def test_a_thread_that_loses_the_race_to_post_a_batch_does_not_unmark_the_poster(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    """Two threads find the same claimed batch; the one that loses ``mark_posting`` leaves while
    the other's POST is in flight. The batch must still count as being posted by this process, or
    a reconciliation would list jobs before Amplitude has it and queue its IDs again."""
    from amplitude_dsr.dsr import submission

    rt = make_runtime()
    batch = repo.Batch(
        id="batch_race", project="web", org_wide=False, state="posting", amplitude_ids=[1],
        created_at=datetime.now(UTC), posted_at=datetime.now(UTC), posted_by=rt.poster_tag, receipt=None,
    )  # fmt: skip
    with rt._mutex:
        rt.posting_now[batch.id] += 1  # the winner, mid-POST
    assert submission.post_batch(rt, batch) is False  # the loser: mark_posting finds it taken
    assert not submission._posting_is_dead(rt, batch, datetime.now(UTC))
    with rt._mutex:
        rt.posting_now[batch.id] -= 1
        del rt.posting_now[batch.id]
    assert submission._posting_is_dead(rt, batch, datetime.now(UTC))  # nobody posts it any more


def test_cancel_while_resolving_stops_the_workflow_before_its_next_call(
    make_runtime: Any, emulator: EmulatorServer, catalog: dict[str, Any]
) -> None:
    from dbos import DBOS

    user, _ = user_id_of(catalog, index=6)
    emulator.admin.inject_fault("slow", path="/api/2/usersearch", delay=3.0)
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("user_id", user)])
    eventually(lambda: api_calls(emulator, "/usersearch") or emulator.admin.faults() == [], "the search to start")
    eventually(lambda: repo.get_request(rt.engine, rid).status == "resolving", "resolution")
    assert api.cancel(rt, rid) == "cancelled"
    assert api.wait(rt, rid, timeout=60) == "cancelled"
    eventually(lambda: DBOS.get_workflow_status(rid).status == "CANCELLED", "DBOS to cancel the workflow")
    time.sleep(4)  # the slow search has answered by now: a live workflow would go on to its next call
    assert api_calls(emulator, "/useractivity") == []
    assert posts(emulator) == []
    assert repo.get_request(rt.engine, rid).status == "cancelled"
