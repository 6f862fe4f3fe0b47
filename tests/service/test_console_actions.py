"""The console's retry, hold/release and resume actions over plain HTTP, against the real
``amplitude-dsr serve`` and its database: each allowed, refused with its reason, refused without
the CSRF token, and absent for a read-only token. Where Amplitude is involved, the emulator's
request log says what was posted."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from amplitude_dsr.store import repo
from amplitude_dsr.store.tables import deletion_batches, deletion_items, requests

from .conftest import erasure, eventually
from .test_console import REQUESTS, csrf_of, engine, insert_requests, sign_in

__all__ = ["engine"]


def workflow_table(engine: sa.Engine) -> str:
    return "dbos.workflow_status" if engine.dialect.name == "postgresql" else "workflow_status"


def workflow(engine: sa.Engine, workflow_id: str) -> tuple[Any, ...] | None:
    query = sa.text(f"SELECT status, queue_name, name FROM {workflow_table(engine)} WHERE workflow_uuid = :w")
    with engine.connect() as conn:
        found = conn.execute(query, {"w": workflow_id}).first()
    return tuple(found) if found else None


def status_of(engine: sa.Engine, request_id: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(requests.c.status).where(requests.c.id == request_id)).scalar_one())


def audit_kinds(engine: sa.Engine, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    query = sa.text("SELECT kind, detail FROM dsr_audit WHERE request_id = :r ORDER BY id")
    with engine.connect() as conn:
        return [(k, json.loads(d) if isinstance(d, str) else d) for k, d in conn.execute(query, {"r": request_id})]


def item_states(engine: sa.Engine, request_id: str) -> list[str]:
    with engine.connect() as conn:
        query = sa.select(deletion_items.c.state).where(deletion_items.c.request_id == request_id)
        return sorted(conn.execute(query.order_by(deletion_items.c.id)).scalars())


def add_items(engine: sa.Engine, request_id: str, rows: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for r in rows:
            conn.execute(
                deletion_items.insert().values(
                    request_id=request_id, project="default", org_wide=False, created_at=now, **r
                )
            )


def refusal_text(client: httpx.Client, response: httpx.Response) -> str:
    assert response.status_code == 303 and "?refused=" in response.headers["location"], response.text[:300]
    return client.get(response.headers["location"]).text


def test_hold_and_release_a_started_request(start_service: Any, make_token: Any, engine: sa.Engine) -> None:
    admin, reader = make_token("dpo", "admin"), make_token("auditor", "read")
    svc = start_service("--no-worker")
    auth = {"Authorization": f"Bearer {admin}"}
    posted = httpx.post(f"{svc.url}{REQUESTS}", json=erasure(str(uuid.uuid4()), ("device_id", "d-1")), headers=auth)
    assert posted.status_code == 201
    with engine.connect() as conn:
        request_id = conn.execute(sa.select(requests.c.id)).scalar_one()
    assert workflow(engine, request_id) == ("ENQUEUED", "amplitude-dsr-deletion", "deletion_workflow")

    reading = sign_in(svc, reader)
    page = reading.get(f"/ui/requests/{request_id}")
    assert "Put on hold" not in page.text  # no action for a read-only token
    forged = reading.post(f"/ui/requests/{request_id}/hold", data={"csrf": csrf_of(page), "reason": "x"})
    assert forged.status_code == 403
    client = sign_in(svc, admin)
    page = client.get(f"/ui/requests/{request_id}")
    assert "Put on hold" in page.text
    token = csrf_of(page)
    assert client.post(f"/ui/requests/{request_id}/hold", data={"reason": "no csrf"}).status_code == 403
    assert client.post(f"/ui/requests/{request_id}/hold", data={"csrf": token, "reason": " "}).status_code == 400
    assert status_of(engine, request_id) == "received"

    # Not started: its workflow waits on the hold queue, the request says held.
    done = client.post(f"/ui/requests/{request_id}/hold", data={"csrf": token, "reason": "legal review"})
    assert done.status_code == 303 and "refused" not in done.headers["location"]
    assert status_of(engine, request_id) == "held"
    assert workflow(engine, request_id) == ("ENQUEUED", "amplitude-dsr-held", "deletion_workflow")
    page = client.get(f"/ui/requests/{request_id}")
    assert "Release" in page.text and "Approve the erasure" not in page.text
    again = client.post(f"/ui/requests/{request_id}/hold", data={"csrf": token, "reason": "twice"})
    assert "cannot hold: the request is already on hold" in refusal_text(client, again)
    released = client.post(f"/ui/requests/{request_id}/release", data={"csrf": token, "reason": "cleared"})
    assert released.status_code == 303 and "refused" not in released.headers["location"]
    assert status_of(engine, request_id) == "received"
    assert workflow(engine, request_id) == ("ENQUEUED", "amplitude-dsr-deletion", "deletion_workflow")
    kinds = [(k, d.get("by"), d.get("reason")) for k, d in audit_kinds(engine, request_id)]
    assert ("put_on_hold", "dpo", "legal review") in kinds and ("released", "dpo", "cleared") in kinds
    not_held = client.post(f"/ui/requests/{request_id}/release", data={"csrf": token, "reason": "again"})
    assert "cannot release: the request is not on hold" in refusal_text(client, not_held)

    # A deletion whose IDs wait in our queue: the items are held and the flusher skips them.
    [queued_id] = insert_requests(engine, 1, start=datetime.now(UTC), prefix="dsr_queued", status="queued")
    add_items(engine, queued_id, [{"amplitude_id": 901, "state": "queued"}, {"amplitude_id": 902, "state": "queued"}])
    done = client.post(f"/ui/requests/{queued_id}/hold", data={"csrf": token, "reason": "dispute"})
    assert done.status_code == 303 and "refused" not in done.headers["location"]
    assert (status_of(engine, queued_id), item_states(engine, queued_id)) == ("held", ["held", "held"])
    assert repo.claim_batch(engine, "default", False) is None  # nothing to claim while held
    released = client.post(f"/ui/requests/{queued_id}/release", data={"csrf": token, "reason": "resolved"})
    assert "refused" not in released.headers["location"]
    assert (status_of(engine, queued_id), item_states(engine, queued_id)) == ("queued", ["queued", "queued"])
    query = sa.text(f"SELECT status, queue_name FROM {workflow_table(engine)} WHERE name = 'flush_workflow'")
    with engine.connect() as conn:
        assert conn.execute(query).all() == [("ENQUEUED", "amplitude-dsr-jobs")]  # its flusher, through DBOSClient

    # Refused with the reason: IDs at Amplitude, a resolution in progress, an access request collecting.
    [staging_id] = insert_requests(engine, 1, start=datetime.now(UTC), prefix="dsr_staging", status="staging")
    add_items(engine, staging_id, [{"amplitude_id": 903, "state": "receipted", "job_day": "2030-01-01"}])
    refused = client.post(f"/ui/requests/{staging_id}/hold", data={"csrf": token, "reason": "x"})
    assert "Amplitude&#39;s deletion job cannot be paused" in refusal_text(client, refused)
    [resolving_id] = insert_requests(engine, 1, start=datetime.now(UTC), prefix="dsr_resolving", status="resolving")
    refused = client.post(f"/ui/requests/{resolving_id}/hold", data={"csrf": token, "reason": "x"})
    assert "hold it once its IDs are queued" in refusal_text(client, refused)
    [access_id] = insert_requests(
        engine, 1, start=datetime.now(UTC), prefix="dsr_collect", status="collecting", kind="access"
    )
    refused = client.post(f"/ui/requests/{access_id}/hold", data={"csrf": token, "reason": "x"})
    assert "can be held only before collection" in refusal_text(client, refused)
    assert (status_of(engine, staging_id), status_of(engine, access_id)) == ("staging", "collecting")


def test_retry_refusals_and_what_restarts(start_service: Any, make_token: Any, engine: sa.Engine) -> None:
    admin, reader = make_token("dpo", "admin"), make_token("auditor", "read")
    svc = start_service("--no-worker")
    now = datetime.now(UTC)
    [access_id] = insert_requests(engine, 1, start=now, prefix="dsr_afail", status="failed", kind="access")
    reading = sign_in(svc, reader)
    page = reading.get(f"/ui/requests/{access_id}")
    assert "Retry this request" not in page.text
    as_reader = reading.post(f"/ui/requests/{access_id}/retry", data={"csrf": csrf_of(page), "reason": "x"})
    assert as_reader.status_code == 403
    client = sign_in(svc, admin)
    page = client.get(f"/ui/requests/{access_id}")
    assert "Retry this request" in page.text
    token = csrf_of(page)
    assert client.post(f"/ui/requests/{access_id}/retry", data={"reason": "no csrf"}).status_code == 403
    assert status_of(engine, access_id) == "failed"

    # An access request runs again from the start, under a new workflow ID, through DBOS's queue.
    done = client.post(f"/ui/requests/{access_id}/retry", data={"csrf": token, "reason": "outage over"})
    assert done.status_code == 303 and "refused" not in done.headers["location"]
    assert status_of(engine, access_id) == "received"
    assert workflow(engine, f"{access_id}-retry-1") == ("ENQUEUED", "amplitude-dsr", "access_workflow")
    retried = [d for k, d in audit_kinds(engine, access_id) if k == "retried"]
    assert [(d["by"], d["reason"], d["restart"]) for d in retried] == [("dpo", "outage over", "resolution")]
    refused = client.post(f"/ui/requests/{access_id}/retry", data={"csrf": token, "reason": "again"})
    assert "only a failed request can be retried (it is &#39;received&#39;)" in refusal_text(client, refused)
    with engine.begin() as conn:  # failed again while its retry is still enqueued: refused
        conn.execute(requests.update().where(requests.c.id == access_id).values(status="failed"))
    refused = client.post(f"/ui/requests/{access_id}/retry", data={"csrf": token, "reason": "again"})
    assert "a run of it is still enqueued or running" in refusal_text(client, refused)

    # A deletion Amplitude refused as a bad request (400): the same POST would be refused again.
    def failed_deletion(prefix: str, error: str) -> str:
        [rid] = insert_requests(engine, 1, start=datetime.now(UTC), prefix=prefix, status="failed")
        with engine.begin() as conn:
            conn.execute(
                deletion_batches.insert().values(
                    id=f"batch_{prefix}", project="default", org_wide=False, state="failed", amplitude_ids=[905],
                    created_at=now, error=error,
                )
            )  # fmt: skip
        add_items(
            engine, rid,
            [{"amplitude_id": 904, "state": "receipted", "batch_id": "batch_r", "job_day": "2030-01-01",
              "job_status": "done"},
             {"amplitude_id": 905, "state": "failed", "batch_id": f"batch_{prefix}"}],
        )  # fmt: skip
        return rid

    bad = failed_deletion("dsr_bad", "Amplitude refused the request (400 /api/2/deletions/users)")
    refused = client.post(f"/ui/requests/{bad}/retry", data={"csrf": token, "reason": "x"})
    assert "refused its IDs as a bad request" in refusal_text(client, refused)
    assert (status_of(engine, bad), item_states(engine, bad)) == ("failed", ["failed", "receipted"])

    # Refused for another reason: the refused ID goes back to the queue, the receipted one keeps its receipt.
    odd = failed_deletion("dsr_odd", "unexpected status (409 /api/2/deletions/users)")
    done = client.post(f"/ui/requests/{odd}/retry", data={"csrf": token, "reason": "transient"})
    assert "refused" not in done.headers["location"]
    assert (status_of(engine, odd), item_states(engine, odd)) == ("queued", ["queued", "receipted"])
    retried = [d for k, d in audit_kinds(engine, odd) if k == "retried"]
    assert [(d["restart"], d["requeued"]) for d in retried] == [("submission", 1)]

    [not_failed] = insert_requests(engine, 1, start=datetime.now(UTC), prefix="dsr_ok", status="staging")
    refused = client.post(f"/ui/requests/{not_failed}/retry", data={"csrf": token, "reason": "x"})
    assert "only a failed request can be retried" in refusal_text(client, refused)


def test_retry_posts_only_what_amplitude_never_accepted(
    start_service: Any, make_token: Any, engine: sa.Engine, emulator: Any, catalog: dict[str, Any]
) -> None:
    """Against the emulator with a worker: a failed deletion with one receipted ID and one
    refused ID is retried; the emulator sees one POST, holding only the refused ID."""
    admin = make_token("dpo", "admin")
    user = catalog["web"]["ordinary"][0]
    [rid] = insert_requests(
        engine, 1, start=datetime.now(UTC), prefix="dsr_retry", status="failed",
        identifiers=[{"kind": "amplitude_id", "value": str(user["amplitude_id"])}],
        options={"requester": "dsr-test", "deletion_path": "resolve-first"},
    )  # fmt: skip
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            deletion_batches.insert().values(
                id="batch_refused", project="default", org_wide=False, state="failed",
                amplitude_ids=[user["amplitude_id"]], created_at=now,
                error="unexpected status (409 /api/2/deletions/users)",
            )
        )  # fmt: skip
    accepted = 777_000_001
    add_items(
        engine, rid,
        [{"amplitude_id": accepted, "state": "receipted", "batch_id": "batch_ok", "job_day": "2030-01-01",
          "job_status": "done"},
         {"amplitude_id": user["amplitude_id"], "state": "failed", "batch_id": "batch_refused"}],
    )  # fmt: skip
    emulator.admin.clear_log()
    svc = start_service()
    client = sign_in(svc, admin)
    token = csrf_of(client.get(f"/ui/requests/{rid}"))
    done = client.post(f"/ui/requests/{rid}/retry", data={"csrf": token, "reason": "Amplitude recovered"})
    assert "refused" not in done.headers["location"]

    def posted() -> list[dict[str, Any]]:
        return [e for e in emulator.admin.request_log() if e["method"] == "POST" and "deletions" in e["path"]]

    eventually(lambda: posted() and status_of(engine, rid) != "queued", "the retried ID posted and settled")
    [post] = posted()
    assert [int(i) for i in post["body"]["amplitude_ids"]] == [user["amplitude_id"]]
    assert accepted not in [int(i) for i in post["body"]["amplitude_ids"]]
    assert item_states(engine, rid) == ["receipted", "receipted"]


def test_resume_a_stuck_request_from_the_workers_page(start_service: Any, make_token: Any, engine: sa.Engine) -> None:
    admin, reader = make_token("dpo", "admin"), make_token("auditor", "read")
    svc = start_service("--no-worker")
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    [stuck] = insert_requests(engine, 1, start=long_ago, prefix="dsr_stuck", status="resolving")
    with engine.begin() as conn:
        conn.execute(requests.update().where(requests.c.id == stuck).values(updated_at=long_ago))
    reading = sign_in(svc, reader)
    page = reading.get("/ui/workers")
    assert f'data-request="{stuck}"' in page.text and "Resume its workflow" not in page.text
    assert reading.post(f"/ui/requests/{stuck}/resume", data={"csrf": csrf_of(page), "reason": "x"}).status_code == 403
    client = sign_in(svc, admin)
    page = client.get("/ui/workers")
    assert "Resume its workflow" in page.text
    token = csrf_of(page)
    assert client.post(f"/ui/requests/{stuck}/resume", data={"reason": "no csrf"}).status_code == 403

    # Its workflow is gone (a request written without one): a fresh run is enqueued.
    done = client.post(f"/ui/requests/{stuck}/resume", data={"csrf": token, "reason": "worker lost it"})
    assert done.status_code == 303 and done.headers["location"] == f"/ui/requests/{stuck}"
    assert workflow(engine, f"{stuck}-resume-1") == ("ENQUEUED", "amplitude-dsr-deletion", "deletion_workflow")
    # Its workflow exists, cancelled: resumed from its last checkpoint on its queue.
    resumed = [d for k, d in audit_kinds(engine, stuck) if k == "resumed"]
    assert [(d["by"], d["reason"], d["workflow"]) for d in resumed] == [("dpo", "worker lost it", f"{stuck}-resume-1")]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE {workflow_table(engine)} SET status = 'CANCELLED' WHERE workflow_uuid = '{stuck}-resume-1'"
        )
    done = client.post(f"/ui/requests/{stuck}/resume", data={"csrf": token, "reason": "again"})
    assert "refused" not in done.headers["location"]
    assert workflow(engine, f"{stuck}-resume-1") == ("ENQUEUED", "amplitude-dsr-deletion", "deletion_workflow")

    # Final requests and deletions waiting on Amplitude's jobs are refused with the reason.
    [final] = insert_requests(engine, 1, start=long_ago, prefix="dsr_final", status="verified")
    refused = client.post(f"/ui/requests/{final}/resume", data={"csrf": token, "reason": "x"})
    assert "cannot resume: the request is already &#39;verified&#39;" in refusal_text(client, refused)
    [staging] = insert_requests(engine, 1, start=long_ago, prefix="dsr_waits", status="staging")
    refused = client.post(f"/ui/requests/{staging}/resume", data={"csrf": token, "reason": "x"})
    assert "waits for Amplitude&#39;s deletion job" in refusal_text(client, refused)
