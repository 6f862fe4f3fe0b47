"""Status callbacks are durable: a refused callback is retried with backoff, each attempt is
recorded, and a delivery still owed when the service stops is sent by the next service process."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from amplitude_dsr.config import normalize_database_url

from .conftest import Receiver, eventually
from .test_opendsr import REQUESTS, bearer, certificate_of, erasure, signature_valid


def deliveries(db_url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM dsr_callback_deliveries ORDER BY id")).mappings().all()
        return [dict(r) for r in rows]
    finally:
        engine.dispose()


def metrics(svc: Any) -> str:
    response = httpx.get(f"{svc.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def test_a_refused_callback_is_retried_and_delivered_after_a_restart(
    start_service: Any, make_token: Any, receiver: Receiver, db_url: str
) -> None:
    receiver.fail_first = 10**6  # the controller's endpoint is down
    token = make_token("acme", "submit", "read")
    # No worker: the request stays `pending`, so exactly one state is announced.
    first = start_service("--no-worker", "--callback-retry-base", "0.2")
    sid = str(uuid.uuid4())
    body = erasure(sid, ("device_id", "device-9"), status_callback_urls=[receiver.url])
    assert httpx.post(f"{first.url}{REQUESTS}", json=body, headers=bearer(token)).status_code == 201
    eventually(lambda: len(receiver.refused) >= 3, "three refused attempts")
    text = metrics(first)
    assert 'amplitude_dsr_callbacks{outcome="failing"} 1' in text
    assert 'amplitude_dsr_callbacks{outcome="delivered"} 0' in text
    assert 'amplitude_dsr_requests{kind="deletion",state="received"} 1' in text
    assert first.stop() == 0  # SIGTERM: graceful
    assert "amplitude-dsr service stopped" in first.log.read_text()
    [owed] = deliveries(db_url)
    assert owed["attempts"] >= 3
    assert owed["last_error"] == "HTTP 500"
    assert owed["delivered_at"] is None
    assert owed["next_attempt_at"] is not None

    receiver.fail_first = 0  # the endpoint is back
    second = start_service("--no-worker", "--callback-retry-base", "0.2")
    [got] = eventually(lambda: receiver.received, "the delivery after the restart")
    assert got.json()["request_status"] == "pending"
    assert got.body == receiver.refused[0].body  # the same snapshot, sent again
    assert signature_valid(certificate_of(second), got.body, got.headers["x-opendsr-signature"])
    [done] = eventually(lambda: [d for d in deliveries(db_url) if d["delivered_at"] is not None], "the record")
    assert done["attempts"] == len(receiver.refused) + 1
    assert done["last_error"] is None
    assert done["next_attempt_at"] is None
    text = metrics(second)
    assert 'amplitude_dsr_callbacks{outcome="delivered"} 1' in text
    assert 'amplitude_dsr_callbacks{outcome="pending"} 0' in text


def test_a_request_without_callback_urls_is_never_watched(
    start_service: Any, make_token: Any, receiver: Receiver, catalog: dict[str, Any], db_url: str
) -> None:
    token = make_token("acme", "submit", "read")
    svc = start_service("--no-worker")  # nothing runs: only what the POST itself stored counts
    quiet, heard = str(uuid.uuid4()), str(uuid.uuid4())
    user = catalog["web"]["ordinary"][7]
    for sid, urls in ((quiet, []), (heard, [receiver.url])):
        body = erasure(sid, ("controller_customer_id", user["user_id"]), status_callback_urls=urls)
        assert httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token)).status_code == 201
    eventually(lambda: [r.json()["subject_request_id"] for r in receiver.received] == [heard], "the received callback")
    engine = sa.create_engine(normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT subject_request_id, notified_final FROM dsr_service_requests")
            flags = dict(conn.execute(query).all())
    finally:
        engine.dispose()
    assert bool(flags[quiet]) and not bool(flags[heard])  # the quiet one is never read by the callback loop
    assert {d["subject_request_id"] for d in deliveries(db_url)} == {heard}
