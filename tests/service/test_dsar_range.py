"""Our extension's DSAR date range, over HTTP: an access request with organisation keys creates its
DSAR export over exactly the range asked (what the emulator received), and a bad range is a 400
error object naming the problem."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from .conftest import api_calls, eventually, request_body
from .test_opendsr import REQUESTS, bearer, detail


@pytest.fixture
def with_org(service_env: dict[str, str], emulator: Any) -> dict[str, str]:
    org = emulator.admin.state()["org"]
    service_env.update({"AMPLITUDE_ORG_API_KEY": org["api_key"], "AMPLITUDE_ORG_SECRET_KEY": org["secret_key"]})
    return service_env


def ours(**extension: Any) -> dict[str, Any]:
    """Our extension block; the processor domain is the public URL's host (127.0.0.1 here)."""
    return {"extensions": {"127.0.0.1": extension}}


def test_an_access_request_exports_the_dsar_range_it_asked_for(
    with_org: dict[str, str], start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any
) -> None:
    user = catalog["web"]["merged"]
    token = make_token("acme", "submit", "read")
    svc = start_service()
    sid = str(uuid.uuid4())
    end = datetime.now(UTC).date().isoformat()
    body = request_body(
        "access", sid, ("controller_customer_id", user["user_id"]), **ours(dsar_start="2021-03-01", dsar_end=end)
    )
    assert httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token), timeout=60).status_code == 201

    def state() -> str:
        return str(detail(httpx.get(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(token)).json())["state"])

    eventually(lambda: state() == "completed", "the access request to complete")
    [post] = api_calls(emulator, "/dsar/requests", "POST")
    assert post["body"]["amplitudeId"] == user["amplitude_id"]
    assert (post["body"]["startDate"], post["body"]["endDate"]) == ("2021-03-01", end)


@pytest.mark.parametrize(
    ("kind", "extension", "message"),
    [
        ("access", {"dsar_start": "2021-02-30"}, "dsar_start"),
        ("access", {"dsar_start": "2021-03-02", "dsar_end": "2021-03-01"}, "dsar_end is before dsar_start"),
        ("access", {"dsar_start": "2011-06-01"}, "before 2012-01-01"),
        ("access", {"dsar_start": "2999-01-01"}, "dsar_start is in the future"),
        ("erasure", {"dsar_start": "2021-03-01"}, "apply to access requests only"),
    ],
)
def test_a_bad_dsar_range_is_a_400(
    with_org: dict[str, str], start_service: Any, make_token: Any, kind: str, extension: dict[str, Any], message: str
) -> None:
    token = make_token("acme", "submit", "read")
    svc = start_service("--no-worker")
    body = request_body(kind, str(uuid.uuid4()), ("controller_customer_id", "someone"), **ours(**extension))
    response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token), timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == 400 and message in error["message"], error
    assert "\n" not in error["message"]


def test_a_dsar_range_without_org_keys_is_a_400(start_service: Any, make_token: Any) -> None:
    token = make_token("acme", "submit", "read")
    svc = start_service("--no-worker")
    subject = ("controller_customer_id", "someone")
    body = request_body("access", str(uuid.uuid4()), subject, **ours(dsar_end="2021-01-01"))
    response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token), timeout=60)
    assert response.status_code == 400
    assert "need organisation keys" in response.json()["error"]["message"]
