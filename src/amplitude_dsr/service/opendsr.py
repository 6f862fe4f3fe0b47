"""The OpenDSR 2.0 processor API under ``/opendsr/v2`` (and the legacy ``opengdpr_requests``
route names): discovery, the certificate, submit, status and cancel.

Requests go in through ``dsr.api.submit`` only. A ``subject_request_id`` maps to one of our
requests (``dsr_service_requests``); the same ID with the same content gets the same answer and
creates nothing (its request's idempotency key holds the ID, so two concurrent POSTs agree on one
request), the same ID with other content is refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.errors import AmplitudeError, DomainError, RequestNotFound, UsageError
from amplitude_dsr.service import models
from amplitude_dsr.service.auth import Caller
from amplitude_dsr.service.context import Service, require, service_of
from amplitude_dsr.service.errors import ApiError, validation_details
from amplitude_dsr.service.results import results_url
from amplitude_dsr.service.status import API_VERSION, status_body
from amplitude_dsr.store import repo, service_repo

PREFIX = "/opendsr/v2"
CERTIFICATE_PATH = f"{PREFIX}/processor-certificate.pem"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": models.ErrorResponse, "description": text}
    for code, text in ((400, "Bad input"), (401, "No valid token"), (403, "Scope missing"), (404, "Unknown"))
}
router = APIRouter(prefix=PREFIX, tags=["OpenDSR"])


def signed(service: Service, doc: dict[str, Any], status_code: int = 200) -> Response:
    """A JSON response signed as OpenDSR asks: the processor's domain and the signature of the
    exact body bytes, under both the OpenDSR and the legacy OpenGDPR header names."""
    body = json.dumps(doc, separators=(",", ":"), default=str).encode()
    signature = service.signer.sign(body)
    domain = service.config.domain
    headers = {
        "X-OpenDSR-Processor-Domain": domain, "X-OpenDSR-Signature": signature,
        "X-OpenGDPR-Processor-Domain": domain, "X-OpenGDPR-Signature": signature,
    }  # fmt: skip
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


def with_signature(service: Service, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` plus ``processor_signature``: the signature of the other fields as compact JSON
    with sorted keys (the field cannot sign a body that contains it)."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()
    return {**doc, "processor_signature": service.signer.sign(canonical)}


@router.get("/discovery", response_model=models.Discovery)
def discovery(request: Request) -> Response:
    """What this processor supports, and where its signing certificate is (no token needed)."""
    service = service_of(request)
    doc = models.Discovery(
        api_version=API_VERSION,
        supported_identities=[models.SupportedIdentity(identity_type=t) for t in models.IDENTITY_KINDS],
        supported_subject_request_types=["access", "portability", "erasure"],
        processor_certificate=service.config.url(CERTIFICATE_PATH),
    )
    return signed(service, doc.model_dump(mode="json"))


@router.get(
    "/processor-certificate.pem",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}, "description": "PEM certificate"}},
)
def certificate(request: Request) -> Response:
    """The X.509 certificate (PEM) whose key signs callbacks and responses (no token needed)."""
    return Response(service_of(request).signer.certificate_pem, media_type="application/x-pem-file")


@router.post("/requests", status_code=201, response_model=models.Accepted, responses=ERRORS)
async def create_request(
    request: Request, body: models.SubjectRequest, caller: Caller = Depends(require("submit"))
) -> Response:
    """Submit an access, portability or erasure request. Idempotent on ``subject_request_id``.

    The request joins the POSTs that arrived with it in one transaction (the group commit,
    ``service/group_commit.py``); the 201 is sent once that transaction committed."""
    raw = await request.body()
    service = service_of(request)
    content = hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    kind, identifiers, options = _translate(service, body)
    spec = api.Spec(kind, identifiers, options, body.regulation)
    try:
        prepared = api.prepare(service.rt, spec, hold=service.config.hold_erasures)
    except UsageError as exc:  # an unknown project, say
        raise ApiError(400, str(exc), type(exc).__name__) from None
    new = service_repo.MappedRequest(
        subject_request_id=body.subject_request_id, request_id="", controller_id=caller.name,
        request_type=body.subject_request_type, body_sha256=content, callback_urls=body.status_callback_urls,
        received_time=datetime.now(UTC), api_version=body.api_version or API_VERSION, notified_state=None,
    )  # fmt: skip
    assert service.group_commit is not None  # made by create_app
    try:
        stored = await asyncio.wrap_future(service.group_commit.submit(new, prepared))
    except sa.exc.SQLAlchemyError:  # the group's transaction wrote nothing: the client may retry
        raise ApiError(503, "the request could not be stored; try again shortly", "Unavailable") from None
    known = stored.mapped
    if known.body_sha256 != content or known.controller_id != caller.name:
        raise ApiError(400, "subject_request_id is already used by a different request", "DuplicateRequestId")
    if stored.deadline is None:  # the mapped request was purged (retention): as unknown as a missing one
        raise ApiError(400, "subject_request_id is already used by a different request", "DuplicateRequestId")
    doc = {
        "controller_id": known.controller_id,
        # The regulation deadline, fixed at creation: a repeated POST gets the same answer (the
        # status gives the current estimate).
        "expected_completion_time": stored.deadline.isoformat(),
        "received_time": known.received_time.isoformat(),
        "encoded_request": base64.b64encode(raw).decode("ascii"),
        "subject_request_id": known.subject_request_id,
    }
    return signed(service, with_signature(service, doc), 201)


def _translate(service: Service, body: models.SubjectRequest) -> tuple[str, list[Identifier], dict[str, Any]]:
    """Our request kind, identifiers and options for an OpenDSR request (ApiError 400 if bad)."""
    kind = models.REQUEST_KINDS[body.subject_request_type]
    identifiers: list[Identifier] = []
    for n, identity in enumerate(body.subject_identities):
        try:
            parsed = Identifier.parse(models.IDENTITY_KINDS[identity.identity_type], identity.identity_value)
        except UsageError as exc:  # its message names the kind and the problem, never the value
            raise ApiError(400, f"subject_identities[{n}]: {exc}", "InvalidIdentity") from None
        if parsed not in identifiers:
            identifiers.append(parsed)
    raw_extension = (body.extensions or {}).get(service.config.domain, {})
    try:
        extension = models.OurExtension.model_validate(raw_extension)
    except ValidationError as exc:
        details = validation_details(exc.errors())
        message = f"extensions.{service.config.domain}: {details[0]['message']}"
        raise ApiError(400, message, details[0]["reason"]) from None
    options: dict[str, Any] = {"projects": extension.projects, "batch_key": f"opendsr:{body.subject_request_id}"}
    if kind == "access":
        options["full_history"] = extension.full_history
    else:
        options["org_wide"] = extension.org_wide
    for name in ("dsar_start", "dsar_end", "deletion_path"):  # only when given; dsr.api says where they apply
        if getattr(extension, name) is not None:
            options[name] = getattr(extension, name)
    return kind, identifiers, options


def _mapped(service: Service, subject_request_id: str, caller: Caller) -> service_repo.MappedRequest:
    """The caller's request of that ID (another controller's is as unknown as a missing one)."""
    known = service_repo.get_mapped(service.rt.engine, subject_request_id)
    if known is None or (known.controller_id != caller.name and not caller.may("admin")):
        raise ApiError(404, "no request with this subject_request_id", "NotFound")
    return known


@router.get("/requests/{subject_request_id}", response_model=models.Status, responses=ERRORS)
def get_request(subject_request_id: str, request: Request, caller: Caller = Depends(require("read"))) -> Response:
    """A request's status, expected completion time, and our detail in the extension."""
    service = service_of(request)
    known = _mapped(service, subject_request_id, caller)
    try:
        row = repo.get_request(service.rt.engine, known.request_id)
    except RequestNotFound:
        raise ApiError(404, "no request with this subject_request_id", "NotFound") from None
    items = repo.items_for(service.rt.engine, row.id) if row.kind == "deletion" else []
    doc = status_body(
        subject_request_id=known.subject_request_id, controller_id=known.controller_id,
        domain=service.config.domain, row=row, items=items,
        results_url=results_url(service, known.subject_request_id, row),
    )  # fmt: skip
    return signed(service, doc)


@router.delete("/requests/{subject_request_id}", status_code=202, response_model=models.Cancelled, responses=ERRORS)
def cancel_request(subject_request_id: str, request: Request, caller: Caller = Depends(require("submit"))) -> Response:
    """Cancel an erasure while Amplitude still allows it; 400 with the reason otherwise."""
    service = service_of(request)
    known = _mapped(service, subject_request_id, caller)
    try:
        api.cancel(service.rt, known.request_id)
    except DomainError as exc:  # CancelRefused (with the reason), or the request is gone
        raise ApiError(400, str(exc), type(exc).__name__) from None
    except AmplitudeError:
        raise ApiError(502, "Amplitude did not answer the cancellation; try again", "UpstreamError") from None
    doc = {
        "controller_id": known.controller_id, "received_time": datetime.now(UTC).isoformat(),
        "subject_request_id": known.subject_request_id, "api_version": API_VERSION,
    }  # fmt: skip
    return signed(service, with_signature(service, doc), 202)


# The legacy OpenGDPR route names, which the spec asks processors to keep honouring.
router.add_api_route("/opengdpr_requests", create_request, methods=["POST"], status_code=201, include_in_schema=False)
router.add_api_route("/opengdpr_requests/{subject_request_id}", get_request, methods=["GET"], include_in_schema=False)
router.add_api_route(
    "/opengdpr_requests/{subject_request_id}", cancel_request, methods=["DELETE"], status_code=202,
    include_in_schema=False,
)  # fmt: skip
