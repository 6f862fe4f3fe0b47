"""The DataGrail-style webhook: HMAC-SHA256 over ``<timestamp>:<body>``, a replay window, health
check, a deletion end to end with its completion reported to the callback URL, signed the same
way. Signatures are computed here with ``hmac`` alone, not with the service's code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx

from .conftest import Receiver, api_calls, eventually
from .test_callbacks import deliveries
from .test_opendsr import DELETIONS, requests_in_db

SECRET = "shared-secret-for-tests-0123456789"
WEBHOOK = "/datagrail/webhook"


def sign(body: bytes, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), ts.encode() + b":" + body, hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": base64.b64encode(mac).decode(),
            "Content-Type": "application/json"}  # fmt: skip


def notification(kind: str, **extra: Any) -> bytes:
    doc = {"integration_name": "Amplitude (self-hosted)", "integration_kind": "webhook",
           "webhook_request_id": str(uuid.uuid4()), "request_type": kind, **extra}  # fmt: skip
    return json.dumps(doc).encode()


def test_only_a_fresh_good_signature_is_accepted(start_service: Any, service_env: dict[str, str], db_url: str) -> None:
    service_env["AMPLITUDE_DSR_DATAGRAIL_SECRET"] = SECRET
    svc = start_service("--no-worker")
    url = f"{svc.url}{WEBHOOK}"
    health = notification("health_check")
    assert httpx.post(url, content=health, headers=sign(health)).status_code == 200
    prefixed = sign(health)
    prefixed["X-Webhook-Signature"] = "v1=" + prefixed["X-Webhook-Signature"]
    assert httpx.post(url, content=health, headers=prefixed).status_code == 200
    now = int(time.time())
    refused = [
        ("wrong secret", health, sign(health, secret="not-the-secret")),
        ("body changed", health + b" ", sign(health)),
        ("stale", health, sign(health, timestamp=now - 310)),  # the exact edge: the unit table
        ("from the future", health, sign(health, timestamp=now + 310)),
        ("no signature", health, {"X-Webhook-Timestamp": str(now)}),
        ("no timestamp", health, {"X-Webhook-Signature": sign(health)["X-Webhook-Signature"]}),
        ("timestamp not a number", health, {**sign(health), "X-Webhook-Timestamp": "yesterday"}),
    ]
    for what, body, headers in refused:
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code == 401, what
        assert response.json()["error"]["errors"][0]["reason"] == "InvalidSignature", what
    # Authentic but unusable: a 400 that names the field, never the value.
    bad = [
        notification("deletion", identifiers={"email": ["jane@"]}, callback_url="https://cb.example.com/x"),
        notification("deletion", identifiers={"email": ["jane@example.com"]}),  # no callback_url
        notification("deletion", identifiers={}, callback_url="https://cb.example.com/x"),
        notification("rectification"),
        notification("opt_out", identifiers={"email": ["jane@example.com"]}),
        b"{not json",
    ]
    for body in bad:
        response = httpx.post(url, content=body, headers=sign(body))
        assert response.status_code == 400, body
        assert "jane" not in response.text
    assert requests_in_db(db_url) == 0


def test_the_webhook_is_off_without_a_secret(start_service: Any) -> None:
    svc = start_service("--no-worker")
    health = notification("health_check")
    response = httpx.post(f"{svc.url}{WEBHOOK}", content=health, headers=sign(health))
    assert response.status_code == 404


def test_a_deletion_through_the_webhook_reports_its_completion(
    start_service: Any, service_env: dict[str, str], receiver: Receiver, catalog: dict[str, Any], emulator: Any,
    db_url: str,
) -> None:  # fmt: skip
    service_env["AMPLITUDE_DSR_DATAGRAIL_SECRET"] = SECRET
    user = catalog["web"]["ordinary"][4]
    svc = start_service()
    body = notification("deletion", identifiers={"user_id": [user["user_id"]]}, callback_url=receiver.url)
    first = httpx.post(f"{svc.url}{WEBHOOK}", content=body, headers=sign(body))
    assert first.status_code == 202, first.text
    again = httpx.post(f"{svc.url}{WEBHOOK}", content=body, headers=sign(body))  # DataGrail retried it
    assert again.json() == first.json()
    assert requests_in_db(db_url) == 1

    [got] = eventually(lambda: receiver.received, "the completion callback")
    sent_at = int(got.headers["x-webhook-timestamp"])
    assert abs(time.time() - sent_at) < 300
    expected = hmac.new(SECRET.encode(), str(sent_at).encode() + b":" + got.body, hashlib.sha256).digest()
    assert got.headers["x-webhook-signature"] == base64.b64encode(expected).decode()
    doc = got.json()
    assert doc["webhook_request_id"] == json.loads(body)["webhook_request_id"]
    assert (doc["request_type"], doc["status"]) == ("deletion", "completed")
    assert doc["details"]["state"] == "verified"
    assert doc["details"]["request_id"] == first.json()["request_id"]
    certificate = httpx.get(doc["results_url"])  # the signed link to the certificate, no token
    assert certificate.status_code == 200
    assert certificate.headers["content-type"] == "application/zip"
    assert user["user_id"] not in got.body.decode()
    [post] = api_calls(emulator, DELETIONS, "POST")
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]
    # Only the final state is reported: one delivery was ever queued for this request.
    assert [(d["state"], d["channel"]) for d in deliveries(db_url)] == [("verified", "datagrail")]
    assert len(receiver.received) == 1
