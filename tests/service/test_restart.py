"""The service stopped in the middle of 100 requests (access and erasure) and started again on the
same database loses none: every request reaches its final state, every Amplitude ID is posted
exactly once, every callback the service queued reached the receiver, and nothing is left owed.

Stopped gracefully (SIGTERM) and killed (SIGKILL): after a kill a callback may come twice (delivery
is at least once), never a deletion POST."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from amplitude_dsr.config import normalize_database_url

from .conftest import Receiver, api_calls, eventually, request_body
from .test_callbacks import deliveries
from .test_opendsr import DELETIONS, REQUESTS, bearer, detail

REQUESTS_IN_FLIGHT = 100
ERASURES = 60  # the rest are access requests
FINAL = {"access": "completed", "erasure": "verified"}


def final_flags(db_url: str) -> list[bool]:
    engine = sa.create_engine(normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            return [bool(f) for f in conn.execute(sa.text("SELECT notified_final FROM dsr_service_requests")).scalars()]
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_restart_in_the_middle_of_100_requests_loses_none_and_sends_every_callback(
    stop: str, start_service: Any, make_token: Any, receiver: Receiver, emulator: Any, db_url: str
) -> None:
    users = [
        emulator.admin.add_user("web", user_id=f"svc-restart-{n:03d}@example.org", events=2)
        for n in range(REQUESTS_IN_FLIGHT)
    ]
    token = make_token("acme", "submit", "read")
    first = start_service("--callback-retry-base", "0.2")
    sent: dict[str, tuple[str, dict[str, Any]]] = {}  # subject_request_id -> (type, user)
    for n, user in enumerate(users):
        kind = "erasure" if n < ERASURES else "access"
        sid = str(uuid.uuid4())
        body = request_body(
            kind, sid, ("controller_customer_id", user["user_id"]), status_callback_urls=[receiver.url]
        )  # fmt: skip
        response = httpx.post(f"{first.url}{REQUESTS}", json=body, headers=bearer(token), timeout=60)
        assert response.status_code == 201, response.text
        sent[sid] = (kind, user)

    # Stop in the middle: some callbacks out, not every request final yet.
    eventually(lambda: len(receiver.received) >= 10, "the first callbacks")
    if stop == "sigterm":
        assert first.stop() == 0
    else:
        first.proc.kill()
        first.proc.wait()
    finals = {r.json()["subject_request_id"] for r in receiver.received if r.json()["request_status"] == "completed"}
    assert len(finals) < len(sent), "every request finished before the stop; the test proves nothing"

    second = start_service("--callback-retry-base", "0.2")

    def states() -> dict[str, str]:
        out = {}
        for sid in sent:
            response = httpx.get(f"{second.url}{REQUESTS}/{sid}", headers=bearer(token), timeout=60)
            assert response.status_code == 200, response.text  # none lost
            out[sid] = str(detail(response.json())["state"])
        return out

    eventually(
        lambda: all(state == FINAL[sent[sid][0]] for sid, state in states().items()),
        "every request to reach its final state after the restart",
        timeout=600,
    )

    # Amplitude received each erased Amplitude ID exactly once, restart or not; no access user's.
    posted = Counter(aid for p in api_calls(emulator, DELETIONS, "POST") for aid in p["body"]["amplitude_ids"])
    assert posted == Counter({user["amplitude_id"]: 1 for kind, user in sent.values() if kind == "erasure"})
    searched = {c["query"].get("user") for c in api_calls(emulator, "/usersearch")}
    assert {user["user_id"] for _, user in sent.values()} <= searched  # every request really ran

    # Every callback the service queued was received, and none is owed.
    eventually(lambda: all(d["delivered_at"] is not None for d in deliveries(db_url)), "no delivery owed")
    queued = Counter((d["subject_request_id"], d["state"]) for d in deliveries(db_url))
    got = Counter((r.json()["subject_request_id"], detail(r.json())["state"]) for r in receiver.received)
    assert set(got) == set(queued)
    assert max(queued.values()) == 1  # the service queues each state of a request once
    if stop == "sigterm":
        assert max(got.values()) == 1  # a graceful stop sends nothing twice
    for sid, (kind, _) in sent.items():
        assert got[(sid, FINAL[kind])] >= 1, sid  # every final state announced
    assert all(final_flags(db_url)) and len(final_flags(db_url)) == len(sent)
