"""A webhook endpoint in the shape of DataGrail's Webhooks integration: ``POST /datagrail/webhook``.

DataGrail POSTs a JSON notification (health check, access, deletion, opt-out) with two headers:
``X-Webhook-Timestamp`` (Unix seconds) and ``X-Webhook-Signature``, an HMAC-SHA256 with the
shared secret. We check, in this order: the endpoint is enabled (a secret is configured, else
404), the timestamp is within :data:`REPLAY_WINDOW` of now, the signature matches in constant
time (else 401); then the body. A deletion or access is submitted through ``dsr.api`` like any
request, keyed by ``webhook_request_id`` (a replayed notification creates nothing), and its
completion is POSTed to the ``callback_url`` the notification gave, signed the same way, by the
durable callback loop (``service/callbacks.py``).

The signed message is ``<timestamp>:<raw body>`` and the signature its Base64 HMAC-SHA256 (a
``v1=`` prefix is accepted). The body fields are documented in ``docs/service.md``; check them
against your DataGrail account's webhook settings before production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.errors import UsageError
from amplitude_dsr.service.context import Service, service_of
from amplitude_dsr.service.errors import ApiError
from amplitude_dsr.service.models import UUID_PATTERN, ErrorResponse
from amplitude_dsr.service.status import API_VERSION, detail, opendsr_status
from amplitude_dsr.store import repo, service_repo

CHANNEL = "datagrail"
PATH = "/datagrail/webhook"
REPLAY_WINDOW = 300  # seconds a notification's timestamp may differ from our clock
SIGNATURE_HEADER = "X-Webhook-Signature"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
# DataGrail's identifier categories for Amplitude -> ours ("Service ID" is the Amplitude ID).
CATEGORIES = {"email": "email", "user_id": "user_id", "service_id": "amplitude_id", "device_id": "device_id"}
router = APIRouter(tags=["DataGrail"])


class Identifiers(BaseModel):
    """The data subject's identifiers, by category (each a list of values)."""

    model_config = ConfigDict(extra="forbid")

    email: list[str] = Field(default_factory=list, max_length=20)
    user_id: list[str] = Field(default_factory=list, max_length=20)
    service_id: list[str] = Field(default_factory=list, max_length=20, description="Amplitude IDs.")
    device_id: list[str] = Field(default_factory=list, max_length=20)


class Notification(BaseModel):
    """A DataGrail webhook notification (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    integration_name: str | None = Field(None, max_length=200)
    integration_kind: Literal["webhook"] = "webhook"
    webhook_request_id: str = Field(pattern=UUID_PATTERN)
    request_type: Literal["health_check", "access", "deletion", "opt_out"]
    regulation: Literal["gdpr", "ccpa"] = "gdpr"
    identifiers: Identifiers | None = None
    callback_url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")


class Accepted(BaseModel):
    webhook_request_id: str
    request_id: str
    status: Literal["accepted"] = "accepted"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Base64 HMAC-SHA256 of ``<timestamp>:<body>`` with ``secret``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b":" + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def refusal(secret: str, timestamp: str | None, given: str | None, body: bytes, now: float) -> str | None:
    """Why a notification is not authentic (``None`` when it is): no or stale timestamp, no or
    wrong signature. Constant-time comparison."""
    if not timestamp or not timestamp.strip().isdigit():
        return f"{TIMESTAMP_HEADER} is missing or not Unix seconds"
    if abs(now - int(timestamp)) > REPLAY_WINDOW:
        return f"{TIMESTAMP_HEADER} is more than {REPLAY_WINDOW} seconds from now"
    value = (given or "").strip()
    value = value.removeprefix("v1=")
    if not value or not hmac.compare_digest(value.encode(), signature(secret, timestamp.strip(), body).encode()):
        return f"{SIGNATURE_HEADER} does not match"
    return None


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers of a completion callback: our timestamp and its signature."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def completion_body(
    mapped: service_repo.MappedRequest, row: repo.RequestRow, items: list[repo.Item], results_url: str | None = None
) -> str:
    """What the callback URL receives once the request is final (JSON, no identifier;
    ``results_url``: a signed link to the package or certificate)."""
    status = opendsr_status(row.kind, row.status)
    outcome = "failed" if row.status == "failed" else status
    doc: dict[str, Any] = {
        "webhook_request_id": mapped.subject_request_id,
        "request_type": mapped.request_type,
        "status": outcome,
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
        "results_url": results_url,
        "details": detail(row, items),
    }
    return json.dumps(doc, separators=(",", ":"))


async def authentic(request: Request) -> bytes:
    """The raw body of an authentic notification (a dependency, so it runs before the body is
    validated: a caller without the secret learns nothing about the fields); 404 when the
    webhook is off, 401 when the timestamp or signature is wrong."""
    secret = service_of(request).config.datagrail_secret
    if not secret:
        raise ApiError(404, "the DataGrail webhook is not enabled on this service", "NotFound")
    raw = await request.body()
    reason = refusal(
        secret, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), raw, time.time()
    )
    if reason is not None:
        raise ApiError(401, reason, "InvalidSignature")
    return raw


@router.post(
    PATH,
    status_code=202,
    response_model=Accepted,
    dependencies=[Depends(authentic)],
    responses={200: {"description": "Health check answered"}, 400: {"model": ErrorResponse},
               401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)  # fmt: skip
async def webhook(note: Notification, request: Request) -> Response:
    """Receive a DataGrail notification: health check (200), access or deletion (202)."""
    if note.request_type == "health_check":
        return JSONResponse({"status": "ok", "api_version": API_VERSION}, status_code=200)
    if note.request_type == "opt_out":
        raise ApiError(400, "opt-out requests are not handled by this processor", "Unsupported")
    doc = await run_in_threadpool(_submit, service_of(request), note)
    return JSONResponse(doc, status_code=202)


def _submit(service: Service, note: Notification) -> dict[str, Any]:
    if not note.callback_url:
        raise ApiError(400, "callback_url is required for access and deletion", "Missing")
    identifiers: list[Identifier] = []
    for category, values in (note.identifiers or Identifiers()).model_dump().items():
        for n, value in enumerate(values):
            try:
                parsed = Identifier.parse(CATEGORIES[category], str(value))
            except UsageError as exc:  # names the kind and the problem, never the value
                raise ApiError(400, f"identifiers.{category}[{n}]: {exc}", "InvalidIdentity") from None
            if parsed not in identifiers:
                identifiers.append(parsed)
    if not identifiers:
        raise ApiError(400, "identifiers: give at least one email, user_id, service_id or device_id", "Missing")
    kind = "deletion" if note.request_type == "deletion" else "access"
    engine = service.rt.engine
    content = hashlib.sha256(json.dumps(note.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    known = service_repo.get_mapped(engine, note.webhook_request_id)
    if known is None:
        options: dict[str, Any] = {"batch_key": f"{CHANNEL}:{note.webhook_request_id}"}
        try:
            request_id, _ = api.submit(
                service.rt, kind, identifiers, options=options, regulation=note.regulation, dedupe=True,
                hold=service.config.hold_erasures,
            )  # fmt: skip
        except UsageError as exc:
            raise ApiError(400, str(exc), type(exc).__name__) from None
        known = service_repo.map_request(
            engine,
            service_repo.MappedRequest(
                subject_request_id=note.webhook_request_id,
                request_id=request_id,
                controller_id=CHANNEL,
                request_type=note.request_type,
                body_sha256=content,
                callback_urls=[note.callback_url],
                received_time=datetime.now(UTC),
                api_version=API_VERSION,
                notified_state=None,
                channel=CHANNEL,
            ),
        )
    if known.body_sha256 != content or known.channel != CHANNEL:
        raise ApiError(400, "webhook_request_id is already used by a different request", "DuplicateRequestId")
    return Accepted(webhook_request_id=known.subject_request_id, request_id=known.request_id).model_dump()
