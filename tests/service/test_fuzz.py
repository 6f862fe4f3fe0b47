"""A schema-driven fuzz run: schemathesis generates requests from ``/openapi.json`` for every
operation of the real service; none may answer 5xx or break its documented response schema."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from .test_opendsr import bearer

EXAMPLES = 30  # per operation


def test_no_operation_answers_5xx_or_breaks_its_schema(start_service: Any, make_token: Any) -> None:
    token = make_token("fuzzer", "admin")
    svc = start_service("--no-worker")  # requests it accepts are stored, never run
    document = httpx.get(f"{svc.url}/openapi.json").text
    assert '"422"' not in document and "HTTPValidationError" not in document  # bad input is a 400 here
    assert "ErrorResponse" in document
    schema = schemathesis.openapi.from_url(f"{svc.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /opendsr/v2/discovery", "POST /opendsr/v2/requests", "GET /opendsr/v2/requests/{subject_request_id}",
        "DELETE /opendsr/v2/requests/{subject_request_id}", "GET /healthz", "GET /readyz",
    }  # fmt: skip
    for operation in operations:
        fuzz(operation, svc.url, token)


def fuzz(operation: Any, url: str, token: str) -> None:
    # An API-only service with no worker is not ready: /readyz answers its documented 503.
    not_ready = operation.path == "/readyz"
    checks = [response_schema_conformance] if not_ready else [not_a_server_error, response_schema_conformance]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        response = case.call(base_url=url, headers=bearer(token))
        assert not not_ready or response.status_code == 503, response.text
        case.validate_response(response, checks=checks)

    check()
