"""The console over plain HTTP (no browser): sign-in and roles, CSRF, sessions that end, keyset
paging through every row exactly once, filters, and the identifier search by digest. Against the
real ``amplitude-dsr serve`` and its database."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from amplitude_dsr.config import normalize_database_url
from amplitude_dsr.store.tables import requests

from .conftest import ServiceProcess, cli, erasure, request_body

REQUESTS = "/opendsr/v2/requests"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def sign_in(svc: ServiceProcess, token: str) -> httpx.Client:
    """A client holding a session of ``token`` (the form's way: GET the form, POST it)."""
    client = httpx.Client(base_url=svc.url)
    form = client.get("/ui/login")
    done = client.post("/ui/login", data={"token": token, "csrf": csrf_of(form)})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/requests"
    return client


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    e = sa.create_engine(normalize_database_url(db_url))
    yield e
    e.dispose()


def insert_requests(
    engine: sa.Engine, count: int, *, start: datetime, prefix: str = "dsr_bulk", **values: Any
) -> list[str]:
    """``count`` deletion requests written straight into the table, one second apart."""
    rows = [
        {
            "id": f"{prefix}_{i:05d}", "kind": "deletion", "status": "staging", "regulation": "gdpr",
            "created_at": start + timedelta(seconds=i), "updated_at": start, "deadline": start + timedelta(days=30),
            "identifiers": [], "options": {}, **values,
        }
        for i in range(count)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(requests.insert(), rows)
    return [r["id"] for r in rows]


def test_sign_in_roles_csrf_and_sessions(start_service: Any, make_token: Any, service_env: dict[str, str]) -> None:
    admin, reader, submitter = make_token("dpo", "admin"), make_token("auditor", "read"), make_token("form", "submit")
    svc = start_service("--no-worker")
    anonymous = httpx.Client(base_url=svc.url)
    assert anonymous.get("/ui/requests").headers["location"] == "/ui/login"
    form = anonymous.get("/ui/login")
    assert form.headers["set-cookie"].lower().count("httponly") == 1
    assert "samesite=strict" in form.headers["set-cookie"].lower()
    # No form cookie, or a wrong CSRF token: refused before the token is even looked at.
    assert httpx.post(f"{svc.url}/ui/login", data={"token": admin, "csrf": csrf_of(form)}).status_code == 403
    assert anonymous.post("/ui/login", data={"token": admin, "csrf": "forged"}).status_code == 403
    wrong = anonymous.post("/ui/login", data={"token": admin[:-2] + "xx", "csrf": csrf_of(form)})
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert anonymous.post("/ui/login", data={"token": submitter, "csrf": csrf_of(wrong)}).status_code == 403

    sid = str(uuid.uuid4())
    auth = {"Authorization": f"Bearer {admin}"}
    posted = httpx.post(f"{svc.url}{REQUESTS}", json=erasure(sid, ("device_id", "d-console")), headers=auth)
    assert posted.status_code == 201
    reading = sign_in(svc, reader)
    cookie = reading.cookies.get("adsr_console")
    assert cookie is not None and reader.split("_", 2)[2] not in cookie  # the secret is not in the cookie
    page = reading.get("/ui/requests")
    assert page.status_code == 200 and "read-only" in page.text
    [request_id] = re.findall(r'data-request="([^"]+)"', page.text)
    detail = reading.get(f"/ui/requests/{request_id}")
    assert detail.status_code == 200
    assert "Cancel this deletion" not in detail.text  # no action for a read-only token
    token = csrf_of(detail)
    refused = reading.post(f"/ui/requests/{request_id}/cancel", data={"csrf": token, "reason": "try"})
    assert refused.status_code == 403 and "admin" in refused.text
    acting = sign_in(svc, admin)
    assert "Cancel this deletion" in acting.get(f"/ui/requests/{request_id}").text
    forged = acting.post(f"/ui/requests/{request_id}/cancel", data={"reason": "no csrf"})
    assert forged.status_code == 403
    other = acting.post(f"/ui/requests/{request_id}/cancel", data={"csrf": token, "reason": "another session's"})
    assert other.status_code == 403  # a CSRF token belongs to its session
    assert acting.get(f"/ui/requests/{request_id}").text.count("console_action") == 0  # nothing was audited

    # A tampered cookie is no session; revoking the token ends its sessions at once.
    tampered = httpx.Client(base_url=svc.url, cookies={"adsr_console": cookie[:-3] + "AAA"})
    assert tampered.get("/ui/requests").status_code == 303
    token_id = reader.split("_")[1]
    assert cli(service_env, "tokens", "revoke", token_id).returncode == 0
    assert reading.get("/ui/requests").headers["location"] == "/ui/login"
    # Signing out needs the CSRF token too, then clears the cookie.
    assert acting.post("/ui/logout", data={}).status_code == 403
    out = acting.post("/ui/logout", data={"csrf": csrf_of(acting.get("/ui/requests"))})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert acting.get("/ui/requests").status_code == 303


def test_paging_filters_and_search_by_identifier_digest(
    start_service: Any, make_token: Any, engine: sa.Engine, tmp_path: Any
) -> None:
    admin = make_token("dpo", "admin")
    svc = start_service("--no-worker")
    start = datetime.now(UTC) - timedelta(days=1)
    bulk = insert_requests(engine, 120, start=start)
    [late_id] = insert_requests(engine, 1, start=start - timedelta(days=60), prefix="dsr_late", status="queued")
    email = "Console.Person@example.com"
    sid = str(uuid.uuid4())
    body = request_body("access", sid, ("email", email))
    posted = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers={"Authorization": f"Bearer {admin}"})
    assert posted.status_code == 201
    client = sign_in(svc, admin)

    # Every row exactly once, newest first, following the pages' own links.
    seen: list[str] = []
    url: str | None = "/ui/requests"
    pages = 0
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200
        seen += re.findall(r'data-request="([^"]+)"', page.text)
        found = re.search(r'rel="next" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 122
    assert seen[1:121] == list(reversed(bulk)) and seen[-1] == late_id  # newest first, the OpenDSR one on top

    overdue = client.get("/ui/requests", params={"overdue": "1"})
    assert re.findall(r'data-request="([^"]+)"', overdue.text) == [late_id]
    assert re.search(r'class="overdue" data-request="dsr_late_00000"', overdue.text)
    assert "OVERDUE by" in overdue.text  # the flag is text, not colour alone
    access = client.get("/ui/requests", params={"kind": "access"})
    [access_id] = re.findall(r'data-request="([^"]+)"', access.text)
    assert ">OpenDSR<" in access.text

    # The identifier goes in a POST body: found by its digest, never in a URL or the log.
    token = csrf_of(access)
    found = client.post("/ui/requests/search", data={"csrf": token, "q": email})
    assert found.status_code == 200
    assert re.findall(r'data-request="([^"]+)"', found.text) == [access_id]
    assert email not in str(found.url)
    nothing = client.post("/ui/requests/search", data={"csrf": token, "q": "nobody@example.com"})
    assert re.findall(r'data-request="([^"]+)"', nothing.text) == []
    by_platform_id = client.post("/ui/requests/search", data={"csrf": token, "q": sid})
    assert by_platform_id.status_code == 303 and by_platform_id.headers["location"] == f"/ui/requests/{access_id}"
    assert client.post("/ui/requests/search", data={"q": email}).status_code == 403  # no CSRF token
    assert email.lower() not in svc.log.read_text().lower()


def test_extending_a_deadline_is_audited_and_bounded(
    start_service: Any, make_token: Any, engine: sa.Engine, db_url: str
) -> None:
    admin, reader = make_token("dpo", "admin"), make_token("auditor", "read")
    svc = start_service("--no-worker")
    received = datetime.now(UTC) - timedelta(days=3)
    [request_id] = insert_requests(engine, 1, start=received, prefix="dsr_extend", status="resolving")
    original = received + timedelta(days=30)
    client = sign_in(svc, admin)
    page = client.get(f"/ui/requests/{request_id}")
    assert "Extend the deadline" in page.text
    token = csrf_of(page)

    def deadline() -> datetime:
        with engine.connect() as conn:
            value = conn.execute(sa.select(requests.c.deadline).where(requests.c.id == request_id)).scalar_one()
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def extend(**data: str) -> httpx.Response:
        return client.post(f"/ui/requests/{request_id}/extend", data={"csrf": token, **data})

    why = "complex request, subject told on day 3"
    done = extend(days="40", reason=why)
    assert done.status_code == 303 and done.headers["location"] == f"/ui/requests/{request_id}"
    assert abs((deadline() - (original + timedelta(days=40))).total_seconds()) < 1
    shown = client.get(f"/ui/requests/{request_id}")
    assert "(extended by 40 days)" in shown.text
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT kind, detail FROM dsr_audit WHERE request_id = :r ORDER BY id"), {"r": request_id}
        ).all()
    kinds = [k for k, _ in rows]
    assert kinds == ["console_action", "deadline_extended"]
    extended = json.loads(rows[1][1])
    assert (extended["by"], extended["days"], extended["reason"]) == (
        "dpo",
        40,
        "complex request, subject told on day 3",
    )

    # GDPR allows 60 days in all: 21 more is refused with the reason, and nothing moves.
    refused = extend(days="21", reason="more time")
    assert refused.status_code == 303 and "?refused=" in refused.headers["location"]
    page = client.get(refused.headers["location"])
    assert "GDPR allows at most 60 days beyond the original deadline in all; 20 days left" in page.text
    assert abs((deadline() - (original + timedelta(days=40))).total_seconds()) < 1
    assert extend(days="zero", reason="x").status_code == 400
    assert extend(days="5", reason=" ").status_code == 400
    assert client.post(f"/ui/requests/{request_id}/extend", data={"days": "5", "reason": "x"}).status_code == 403
    reading = sign_in(svc, reader)
    as_reader = reading.post(
        f"/ui/requests/{request_id}/extend",
        data={"csrf": csrf_of(reading.get("/ui/requests")), "days": "5", "reason": "x"},
    )
    assert as_reader.status_code == 403
    assert abs((deadline() - (original + timedelta(days=40))).total_seconds()) < 1


def test_a_held_erasure_can_be_cancelled_and_its_workflow_never_runs(
    start_service: Any, make_token: Any, engine: sa.Engine, db_url: str
) -> None:
    admin = make_token("dpo", "admin")
    svc = start_service("--hold-erasures", "--no-worker")
    sid = str(uuid.uuid4())
    auth = {"Authorization": f"Bearer {admin}"}
    assert (
        httpx.post(f"{svc.url}{REQUESTS}", json=erasure(sid, ("device_id", "d-held")), headers=auth).status_code == 201
    )
    with engine.connect() as conn:
        request_id, status = conn.execute(sa.select(requests.c.id, requests.c.status)).one()
    assert status == "held"
    table = "dbos.workflow_status" if engine.dialect.name == "postgresql" else "workflow_status"

    def workflow() -> tuple[Any, ...]:
        query = sa.text(f"SELECT status, queue_name, started_at_epoch_ms FROM {table} WHERE workflow_uuid = :w")
        with engine.connect() as conn:
            return tuple(conn.execute(query, {"w": request_id}).one())

    assert workflow() == ("ENQUEUED", "amplitude-dsr-held", None)
    client = sign_in(svc, admin)
    page = client.get(f"/ui/requests/{request_id}")
    assert "Approve the erasure" in page.text and "Cancel this deletion" in page.text
    done = client.post(f"/ui/requests/{request_id}/cancel", data={"csrf": csrf_of(page), "reason": "withdrawn"})
    assert done.status_code == 303 and "refused" not in done.headers["location"]
    with engine.connect() as conn:
        status = conn.execute(sa.select(requests.c.status).where(requests.c.id == request_id)).scalar_one()
    assert status == "cancelled"
    assert workflow()[0] == "CANCELLED" and workflow()[2] is None  # cancelled without ever starting
    refused = client.post(f"/ui/requests/{request_id}/approve", data={"csrf": csrf_of(page), "reason": "late"})
    assert "?refused=" in refused.headers["location"]
    assert (
        "cannot approve: the request is not held (it is &#39;cancelled&#39;)"
        in client.get(refused.headers["location"]).text
    )
