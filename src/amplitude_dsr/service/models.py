"""The OpenDSR 2.0 wire models (requests, responses, the error object), as pydantic models so
that ``/openapi.json`` documents every field."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

IdentityType = Literal["email", "controller_customer_id", "amplitude_id", "device_id"]
RequestType = Literal["access", "portability", "erasure"]
OpenDsrStatus = Literal["pending", "in_progress", "completed", "cancelled"]
# OpenDSR identity type -> our identifier kind (dsr/model.py).
IDENTITY_KINDS: dict[str, str] = {
    "email": "email",
    "controller_customer_id": "user_id",
    "amplitude_id": "amplitude_id",
    "device_id": "device_id",
}
# OpenDSR request type -> our request kind.
REQUEST_KINDS: dict[str, str] = {"access": "access", "portability": "access", "erasure": "deletion"}
MAX_IDENTITIES = 50
MAX_CALLBACKS = 10
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class Identity(BaseModel):
    """One identity of the data subject."""

    model_config = ConfigDict(extra="forbid")

    identity_type: IdentityType = Field(
        description="email; controller_customer_id (the Amplitude user_id); amplitude_id; device_id."
    )
    identity_value: str = Field(min_length=1, max_length=1024, description="The identity, in the clear.")
    identity_format: Literal["raw"] = Field("raw", description="Only raw values are supported.")


class OurExtension(BaseModel):
    """Our extension of a request, under ``extensions.<processor domain>``."""

    model_config = ConfigDict(extra="forbid")

    projects: list[str] = Field(default_factory=list, max_length=100, description="Configured projects (default: all).")
    org_wide: bool = Field(False, description="Erasure: delete from every project of the organisation.")
    full_history: bool = Field(False, description="Access: every event, not only the most recent 1000.")
    deletion_path: Literal["resolve-first", "direct"] | None = Field(
        None,
        description="Erasure: resolve identifiers first, or submit user IDs and Amplitude IDs as given and verify "
        "afterwards (1 user-pool call per person instead of 3; not with org_wide). Default: the service's setting.",
    )
    dsar_start: date | None = Field(
        None,
        description="Access, with organisation keys: first day (YYYY-MM-DD, from 2012-01-01, not in the future) "
        "of the DSAR export. Default: the subject's first use.",
    )
    dsar_end: date | None = Field(
        None,
        description="Access, with organisation keys: last day (YYYY-MM-DD, not before dsar_start) of the DSAR "
        "export; a later day than today ends today. Default: today.",
    )


class SubjectRequest(BaseModel):
    """``POST /requests``: a data subject request from a controller."""

    model_config = ConfigDict(extra="forbid")

    subject_request_id: str = Field(pattern=UUID_PATTERN, description="Lowercase UUID v4 made by the controller.")
    subject_request_type: RequestType
    regulation: Literal["gdpr", "ccpa"]
    subject_identities: list[Identity] = Field(min_length=1, max_length=MAX_IDENTITIES)
    submitted_time: datetime = Field(description="RFC 3339 time the data subject made the request.")
    api_version: str | None = Field(None, max_length=16)
    status_callback_urls: list[str] = Field(default_factory=list, max_length=MAX_CALLBACKS)
    extensions: dict[str, dict[str, Any]] | None = Field(
        None, description="Processor-domain-keyed objects; ours is documented as OurExtension."
    )

    @field_validator("status_callback_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")) or len(url) > 2000 or any(c.isspace() for c in url):
                raise ValueError("every status callback URL must be an http(s) URL")
        return urls


class SupportedIdentity(BaseModel):
    identity_type: IdentityType
    identity_format: Literal["raw"] = "raw"


class Discovery(BaseModel):
    """``GET /discovery``."""

    api_version: str
    supported_identities: list[SupportedIdentity]
    supported_subject_request_types: list[RequestType]
    processor_certificate: str = Field(description="URL of the PEM certificate that signs callbacks and responses.")


class Accepted(BaseModel):
    """``POST /requests`` answer (201; the same again for a repeated ``subject_request_id``)."""

    controller_id: str
    expected_completion_time: datetime
    received_time: datetime
    encoded_request: str = Field(description="Base64 of the request body as received.")
    subject_request_id: str
    processor_signature: str = Field(description="Base64 signature of this body's other fields (docs/service.md).")


class Status(BaseModel):
    """``GET /requests/{id}`` and the body of every status callback."""

    controller_id: str
    expected_completion_time: datetime
    subject_request_id: str
    request_status: OpenDsrStatus
    api_version: str
    results_url: str | None = None
    results_count: int | None = None
    status_callback_url: str | None = Field(None, description="Callbacks only: the URL this body was sent to.")
    extensions: dict[str, dict[str, Any]] = Field(description="Ours, keyed by the processor domain: the detail.")


class Cancelled(BaseModel):
    """``DELETE /requests/{id}`` answer (202)."""

    controller_id: str
    received_time: datetime
    subject_request_id: str
    api_version: str
    processor_signature: str


class ErrorDetail(BaseModel):
    domain: str
    reason: str
    message: str


class ErrorBody(BaseModel):
    code: int
    message: str
    errors: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every error (400, 401, 403, 404, 500) in the spec's shape."""

    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
