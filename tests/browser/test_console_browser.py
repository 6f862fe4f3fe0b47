"""The console in a real Chromium: a privacy team's day. Sign in, find the overdue request, open
a deletion and cancel it, see a refused cancel's reason, watch another deletion reach
``verified`` against the emulator and download its certificate, sign out; a read-only token sees
no action and a forged POST is refused. Claims are checked against the emulator's request log,
the downloaded bytes and the database, not only against what the page says."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from playwright.sync_api import expect

from amplitude_dsr.config import normalize_database_url
from amplitude_dsr.store.tables import deletion_batches, deletion_items, requests
from tests.e2e.conftest import FAST_CLOCK
from tests.service.conftest import ServiceProcess, erasure, eventually, request_body

from .conftest import TIMEOUT_MS, api_calls, screenshot

REQUESTS = "/opendsr/v2/requests"
DELETIONS = "/deletions/users"


def status_detail(svc: ServiceProcess, token: str, sid: str) -> dict[str, Any]:
    response = httpx.get(f"{svc.url}{REQUESTS}/{sid}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    [ours] = response.json()["extensions"].values()
    value: dict[str, Any] = ours
    return value


def submit_erasure(svc: ServiceProcess, token: str, user_id: str) -> str:
    sid = str(uuid.uuid4())
    body = erasure(sid, ("controller_customer_id", user_id))
    response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    return sid


def overdue_request(db_url: str) -> str:
    """A CCPA access request received 50 days ago and still collecting (written straight into
    the table: no workflow runs it, so it stays overdue)."""
    engine = sa.create_engine(normalize_database_url(db_url))
    received = datetime.now(UTC) - timedelta(days=50)
    with engine.begin() as conn:
        conn.execute(
            requests.insert().values(
                id="dsr_overdue_example", kind="access", status="collecting", regulation="ccpa", created_at=received,
                updated_at=received, deadline=received + timedelta(days=45), identifiers=[], options={},
            )
        )  # fmt: skip
    engine.dispose()
    return "dsr_overdue_example"


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/ui/requests")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/requests$"))


def audit_kinds(db_url: str, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    engine = sa.create_engine(normalize_database_url(db_url))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT kind, detail FROM dsr_audit WHERE request_id = :r ORDER BY id"), {"r": request_id}
        ).all()
    engine.dispose()
    return [(str(k), json.loads(d)) for k, d in rows]


def test_a_privacy_teams_day(
    start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any, db_url: str, new_page: Any
) -> None:
    emulator.admin.set_speed(1)  # real time: jobs stay `staging` until the test moves them
    first, second = catalog["web"]["ordinary"][4], catalog["web"]["ordinary"][5]
    admin = make_token("dpo", "admin")
    svc = start_service()
    to_cancel = submit_erasure(svc, admin, first["user_id"])
    to_verify = submit_erasure(svc, admin, second["user_id"])
    late = overdue_request(db_url)
    for sid in (to_cancel, to_verify):
        eventually(lambda sid=sid: status_detail(svc, admin, sid)["jobs"], "the deletion to be receipted")
    cancel_id = status_detail(svc, admin, to_cancel)["request_id"]
    verify_id = status_detail(svc, admin, to_verify)["request_id"]

    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, svc.url, admin)
    expect(page.get_by_text("Signed in as")).to_contain_text("dpo")
    overdue_row = page.locator(f'tr[data-request="{late}"]')
    expect(overdue_row).to_have_class("overdue")
    expect(overdue_row).to_contain_text("OVERDUE by 5 days")
    expect(overdue_row).to_contain_text("CCPA")
    for rid in (cancel_id, verify_id):
        expect(page.locator(f'tr[data-request="{rid}"]')).to_contain_text("OpenDSR")
    screenshot(page, "requests")
    page.get_by_label("Overdue only").check()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_have_attribute("data-request", late)

    # Cancel the first deletion: allowed (its job is staging, far from its day).
    page.goto(f"{svc.url}/ui/requests/{cancel_id}")
    [job] = status_detail(svc, admin, to_cancel)["jobs"]
    expect(page.locator("#jobs ~ table, #jobs + table").first).to_contain_text(job["day"])
    screenshot(page, "request-staging")
    page.get_by_label("Reason for the cancellation").fill("the data subject withdrew the request")
    page.get_by_role("button", name="Cancel this deletion").click()
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(page.locator(".timeline")).to_contain_text("console_action")
    [removal] = api_calls(emulator, f"{DELETIONS}/{first['amplitude_id']}/{job['day']}", "DELETE")
    assert removal["status"] == 200
    actions = [d for k, d in audit_kinds(db_url, cancel_id) if k == "console_action"]
    assert actions == [{"action": "cancel", "by": "dpo", "reason": "the data subject withdrew the request"}]
    assert [k for k, _ in audit_kinds(db_url, cancel_id)][-1] == "cancelled"

    # Extending a deadline: allowed before it passes (and shown), refused once it has passed.
    page.goto(f"{svc.url}/ui/requests/{verify_id}")
    page.get_by_label("Days to add").fill("10")
    page.get_by_label("Reason for the extension").fill("the data subject was told on day 1")
    page.get_by_role("button", name="Extend the deadline").click()
    expect(page.locator("dd.soon, dd:has(time)").filter(has_text="extended by 10 days")).to_have_count(1)
    page.goto(f"{svc.url}/ui/requests/{late}")
    page.get_by_label("Days to add").fill("10")
    page.get_by_label("Reason for the extension").fill("too late")
    page.get_by_role("button", name="Extend the deadline").click()
    expect(page.locator("#message")).to_contain_text("the deadline has passed")
    expect(page.locator(".overdue")).to_contain_text("OVERDUE by 5 days")

    # The second one's job moves to two days from now: too close, the cancel is refused.
    [job] = status_detail(svc, admin, to_verify)["jobs"]
    soon = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    emulator.admin.move_job("web", job["day"], soon)
    page.goto(f"{svc.url}/ui/requests/{verify_id}")
    page.get_by_label("Reason for the cancellation").fill("duplicate of another request")
    page.get_by_role("button", name="Cancel this deletion").click()
    expect(page.locator("#message")).to_contain_text("cannot cancel")
    refusal = page.locator("#message").inner_text()
    screenshot(page, "request-cancel-refused")
    refused = [d for k, d in audit_kinds(db_url, verify_id) if k == "console_action_refused"]
    assert refused == [{"action": "cancel", "by": "dpo", "refusal": refusal}]
    assert "?refused=" in page.url and "cannot" not in page.url  # the URL holds the entry's number only
    assert not api_calls(emulator, f"{DELETIONS}/{second['amplitude_id']}/{soon}", "DELETE")

    # Let Amplitude's clock run: the job finishes, the request is verified, its certificate ready.
    emulator.admin.set_speed(FAST_CLOCK)
    eventually(lambda: status_detail(svc, admin, to_verify)["state"] == "verified", "the deletion to be verified")
    page.reload()  # the refusal redirected to a GET: reloading sends nothing again
    expect(page.locator("#status")).to_have_text("verified")
    expect(page.locator("#message")).to_contain_text("cannot cancel")
    expect(page.locator("#verification")).to_contain_text("verified")
    expect(page.get_by_role("button", name="Cancel this deletion")).to_have_count(0)
    actions = [d["action"] for k, d in audit_kinds(db_url, verify_id) if k == "console_action"]
    assert actions == ["extend_deadline", "cancel"]  # the reload sent nothing again
    page.goto(f"{svc.url}/ui/requests/{verify_id}")
    screenshot(page, "request-verified")
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        page.get_by_role("link", name="certificate.json").click()
    certificate = json.loads(Path(info.value.path()).read_bytes())
    assert certificate["outcome"]["document"] == "certificate_of_deletion"
    assert certificate["request"]["id"] == verify_id
    assert second["amplitude_id"] in {i for r in certificate["receipts"] for i in r["amplitude_ids"]}
    evidence = page.locator("#evidence ~ dl code.hash").first.inner_text()
    assert evidence == status_detail(svc, admin, to_verify)["evidence_sha256"]

    for name in ("workers", "audit"):
        page.goto(f"{svc.url}/ui/{name}")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        screenshot(page, name)
    expect(page.locator("#chain")).to_contain_text("checks out")
    page.goto(f"{svc.url}/ui/workers")
    stuck = page.locator(f'tr[data-request="{late}"]')
    expect(stuck).to_contain_text("STUCK in collecting")  # no workflow moves it: listed, with what to do
    expect(stuck).to_contain_text("worker")
    expect(stuck.get_by_role("button", name="Resume its workflow")).to_be_visible()  # admin: the action
    expect(page.locator(f'tr[data-request="{cancel_id}"]')).to_have_count(0)  # final: not stuck

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(f"{svc.url}/ui/requests")
    expect(page).to_have_url(re.compile(r"/ui/login$"))


def test_read_only_sees_no_action_and_a_forged_post_is_refused(
    start_service: Any, make_token: Any, new_page: Any, db_url: str
) -> None:
    admin, reader = make_token("dpo", "admin"), make_token("auditor", "read")
    svc = start_service("--no-worker")
    sid = str(uuid.uuid4())
    body = erasure(sid, ("device_id", "device-console"))
    response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 201
    request_id = status_detail(svc, admin, sid)["request_id"]

    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True)  # a phone
    sign_in(page, svc.url, reader)
    expect(page.get_by_text("Signed in as")).to_contain_text("read-only")
    screenshot(page, "requests-phone")
    page.get_by_role("link", name=request_id).click()
    expect(page.locator("#status")).to_have_text("received")
    expect(page.get_by_role("button", name="Cancel this deletion")).to_have_count(0)
    # A POST without the form's CSRF token, with the session cookie: refused, nothing changed.
    forged = page.request.post(f"{svc.url}/ui/requests/{request_id}/cancel", form={"reason": "forged"})
    assert forged.status == 403
    # With the right CSRF token but a read-only session: refused too.
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    as_reader = page.request.post(
        f"{svc.url}/ui/requests/{request_id}/cancel", form={"reason": "not allowed", "csrf": csrf}
    )
    assert as_reader.status == 403
    assert "admin" in as_reader.text()
    kinds = [k for k, _ in audit_kinds(db_url, request_id)]
    assert kinds == ["received"]


def test_a_429_storm_pauses_the_pool_on_the_budgets_page(
    start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any, new_page: Any
) -> None:
    user = catalog["web"]["ordinary"][7]
    admin = make_token("dpo", "admin")
    svc = start_service()
    emulator.admin.inject_fault("429", path="/api/2/usersearch", count=None, retry_after=3600)
    sid = str(uuid.uuid4())
    body = {
        "subject_request_id": sid, "subject_request_type": "access", "regulation": "gdpr",
        "submitted_time": "2026-12-01T10:00:00Z",
        "subject_identities": [{"identity_type": "email", "identity_value": user["user_id"], "identity_format": "raw"}],
    }  # fmt: skip
    response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 201
    eventually(lambda: [c for c in api_calls(emulator, "/usersearch") if c["status"] == 429], "a 429 from Amplitude")

    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, svc.url, admin)

    def paused_row() -> bool:
        # The storm renews the pause at every retry; a reload may fall between two of them.
        page.goto(f"{svc.url}/ui/budgets")
        return page.locator("tr.overdue", has_text="PAUSED after a 429").count() >= 1

    eventually(paused_row, "the budgets page to show the paused pool")
    row = page.locator("tr.overdue", has_text="PAUSED after a 429").first
    expect(row).to_contain_text("user")
    expect(row).to_contain_text("project default")  # the project whose keys the scope is
    # The 429s every process recorded: at least one, never more than Amplitude answered.
    shown = int(row.locator("td[data-throttled]").get_attribute("data-throttled") or "0")
    answered = [c for c in api_calls(emulator, "/usersearch") if c["status"] == 429]
    assert 1 <= shown <= len(answered)
    chart = row.locator("svg.chart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("aria-label", re.compile(r"answered 429"))
    assert chart.locator('rect[fill="#b00020"]').count() >= 1  # this hour is marked
    screenshot(page, "budgets")
    emulator.admin.clear_faults()


def test_a_held_erasure_waits_for_approval_then_reaches_verified(
    start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any, db_url: str, new_page: Any
) -> None:
    user = catalog["web"]["ordinary"][8]
    admin, reader = make_token("dpo", "admin"), make_token("auditor", "read")
    svc = start_service("--hold-erasures")
    sid = submit_erasure(svc, admin, user["user_id"])
    request_id = status_detail(svc, admin, sid)["request_id"]
    response = httpx.get(f"{svc.url}{REQUESTS}/{sid}", headers={"Authorization": f"Bearer {admin}"})
    assert response.json()["request_status"] == "pending"

    reading = new_page()
    sign_in(reading, svc.url, reader)
    reading.goto(f"{svc.url}/ui/requests/{request_id}")
    expect(reading.locator("#status")).to_have_text("held")
    expect(reading.get_by_role("button", name="Approve the erasure")).to_have_count(0)  # read-only

    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, svc.url, admin)
    page.goto(f"{svc.url}/ui/requests?state=held")
    expect(page.locator(f'tr[data-request="{request_id}"]')).to_contain_text("held")
    page.goto(f"{svc.url}/ui/requests/{request_id}")
    expect(page.locator(".timeline")).to_contain_text("held")
    screenshot(page, "request-held")
    # Held: nothing resolved, nothing sent to Amplitude, while the executor runs other requests (an
    # access request, not held, completes meanwhile).
    other = catalog["web"]["ordinary"][9]
    access_sid = str(uuid.uuid4())
    body = request_body("access", access_sid, ("email", other["user_id"]))
    assert (
        httpx.post(f"{svc.url}{REQUESTS}", json=body, headers={"Authorization": f"Bearer {admin}"}).status_code == 201
    )
    eventually(lambda: status_detail(svc, admin, access_sid)["state"] == "completed", "the access request to complete")
    assert status_detail(svc, admin, sid)["state"] == "held"
    assert [c["query"]["user"] for c in api_calls(emulator, "/usersearch")] == [other["user_id"]]
    assert not api_calls(emulator, DELETIONS, "POST")
    page.get_by_label("Reason for the approval").fill("verified the requester's identity")
    page.get_by_role("button", name="Approve the erasure").click()
    eventually(lambda: status_detail(svc, admin, sid)["state"] == "verified", "the approved erasure to be verified")
    page.reload()
    expect(page.locator("#status")).to_have_text("verified")
    [post] = api_calls(emulator, DELETIONS, "POST")
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]
    kinds = audit_kinds(db_url, request_id)
    assert [k for k, _ in kinds][:4] == ["received", "held", "console_action", "approved"]
    assert dict(kinds)["approved"] == {"by": "dpo", "reason": "verified the requester's identity"}
    # Approving again is refused with the reason, and changes nothing.
    page.goto(f"{svc.url}/ui/requests/{request_id}")
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    again = page.request.post(
        f"{svc.url}/ui/requests/{request_id}/approve", form={"reason": "twice", "csrf": csrf}, max_redirects=0
    )
    assert again.status == 303 and "?refused=" in again.headers["location"]
    assert [k for k, _ in audit_kinds(db_url, request_id)][-1] == "console_action_refused"
    assert len(api_calls(emulator, DELETIONS, "POST")) == 1


def failed_deletion(db_url: str, prefix: str, refused_id: int, error: str) -> str:
    """A deletion that failed after Amplitude accepted one of its IDs (receipted, job done) and
    refused another for good with ``error`` (written straight into the tables)."""
    engine = sa.create_engine(normalize_database_url(db_url))
    now = datetime.now(UTC)
    rid = f"dsr_{prefix}"
    with engine.begin() as conn:
        conn.execute(
            requests.insert().values(
                id=rid, kind="deletion", status="failed", regulation="gdpr", created_at=now, updated_at=now,
                deadline=now + timedelta(days=30), completed_at=now, error=f"Amplitude refused the deletion: {error}",
                identifiers=[{"kind": "amplitude_id", "value": str(refused_id)}],
                options={"requester": "dsr-test", "deletion_path": "resolve-first"},
            )
        )  # fmt: skip
        conn.execute(
            deletion_batches.insert().values(
                id=f"batch_{prefix}", project="default", org_wide=False, state="failed", amplitude_ids=[refused_id],
                created_at=now, error=error,
            )
        )  # fmt: skip
        for aid, state, batch, day in ((777_000_001, "receipted", "batch_ok", "2030-01-01"),
                                       (refused_id, "failed", f"batch_{prefix}", None)):  # fmt: skip
            conn.execute(
                deletion_items.insert().values(
                    request_id=rid, project="default", amplitude_id=aid, org_wide=False, state=state,
                    batch_id=batch, job_day=day, job_status="done" if day else None, created_at=now,
                )
            )  # fmt: skip
    engine.dispose()
    return rid


def test_a_failed_deletion_is_retried_without_reposting_what_amplitude_accepted(
    start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any, db_url: str, new_page: Any
) -> None:
    user = catalog["web"]["ordinary"][10]
    admin = make_token("dpo", "admin")  # (the CLI creates the tables)
    bad = failed_deletion(db_url, "retry_bad", catalog["web"]["ordinary"][11]["amplitude_id"],
                          "Amplitude refused the request (400 /api/2/deletions/users)")  # fmt: skip
    odd = failed_deletion(db_url, "retry_odd", user["amplitude_id"], "unexpected status (409 /api/2/deletions/users)")
    svc = start_service()
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, svc.url, admin)

    # Refused as a bad request: the reason is shown, nothing is posted.
    page.goto(f"{svc.url}/ui/requests/{bad}")
    expect(page.locator("#status")).to_have_text("failed")
    page.get_by_label("Reason for the retry").fill("try once more")
    page.get_by_role("button", name="Retry this request").click()
    expect(page.locator("#message")).to_contain_text("refused its IDs as a bad request")
    screenshot(page, "request-retry-refused")
    assert not api_calls(emulator, DELETIONS, "POST")

    # Refused for another reason: retried; only the refused ID is posted, the accepted one never.
    page.goto(f"{svc.url}/ui/requests/{odd}")
    screenshot(page, "request-failed")
    page.get_by_label("Reason for the retry").fill("Amplitude's outage is over")
    page.get_by_role("button", name="Retry this request").click()
    expect(page.locator(".timeline")).to_contain_text("retried")
    eventually(lambda: api_calls(emulator, DELETIONS, "POST"), "the retried ID to be posted")
    [post] = api_calls(emulator, DELETIONS, "POST")
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]
    page.reload()
    expect(page.locator("#status")).not_to_have_text("failed")
    retried = dict(audit_kinds(db_url, odd))["retried"]
    assert (retried["by"], retried["restart"], retried["requeued"]) == ("dpo", "submission", 1)


def test_a_started_erasure_is_held_then_released(
    start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any, db_url: str, new_page: Any
) -> None:
    user = catalog["web"]["ordinary"][12]
    admin, reader = make_token("dpo", "admin"), make_token("auditor", "read")
    api_only = start_service("--no-worker")  # stored and enqueued; no executor yet
    sid = submit_erasure(api_only, admin, user["user_id"])
    request_id = status_detail(api_only, admin, sid)["request_id"]
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_only.url, admin)
    page.goto(f"{api_only.url}/ui/requests/{request_id}")
    expect(page.locator("#status")).to_have_text("received")
    page.get_by_label("Reason for the hold").fill("the data subject's identity is disputed")
    page.get_by_role("button", name="Put on hold").click()
    expect(page.locator("#status")).to_have_text("held")
    expect(page.get_by_role("button", name="Release")).to_be_visible()
    expect(page.get_by_role("button", name="Approve the erasure")).to_have_count(0)  # held by a person, not the setting
    screenshot(page, "request-on-hold")
    api_only.stop()

    # An executor now runs, other work completes, and the held erasure does not start.
    svc = start_service()
    other = catalog["web"]["ordinary"][13]
    access_sid = str(uuid.uuid4())
    body = request_body("access", access_sid, ("email", other["user_id"]))
    posted = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers={"Authorization": f"Bearer {admin}"})
    assert posted.status_code == 201
    eventually(lambda: status_detail(svc, admin, access_sid)["state"] == "completed", "the access request to complete")
    assert status_detail(svc, admin, sid)["state"] == "held"
    assert [c["query"]["user"] for c in api_calls(emulator, "/usersearch")] == [other["user_id"]]
    reading = new_page()
    sign_in(reading, svc.url, reader)
    reading.goto(f"{svc.url}/ui/requests/{request_id}")
    expect(reading.get_by_role("button", name="Release")).to_have_count(0)  # read-only

    page.goto(f"{svc.url}/ui/requests/{request_id}")  # the session outlives the restart (same console key)
    page.get_by_label("Reason for the release").fill("identity confirmed")
    page.get_by_role("button", name="Release").click()
    eventually(lambda: status_detail(svc, admin, sid)["state"] == "verified", "the released erasure to be verified")
    [post] = api_calls(emulator, DELETIONS, "POST")
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]
    kinds = audit_kinds(db_url, request_id)
    held = [d for k, d in kinds if k == "put_on_hold"]
    released = [d for k, d in kinds if k == "released"]
    assert [(d["by"], d["was"], d["held"]) for d in held] == [("dpo", "received", "workflow")]
    assert [(d["by"], d["to"]) for d in released] == [("dpo", "received")]
