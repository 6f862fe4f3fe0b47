"""The service restarted while requests are in flight loses none: every request reaches its final
state, every Amplitude ID is posted exactly once, and every request's final callback is delivered."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from amplitude_dsr.config import normalize_database_url

from .conftest import Receiver, api_calls, eventually
from .test_callbacks import deliveries
from .test_opendsr import DELETIONS, REQUESTS, bearer, detail, erasure

SUBJECTS = 30


@pytest.mark.slow
def test_a_restart_in_the_middle_loses_no_request_and_no_callback(
    start_service: Any, make_token: Any, receiver: Receiver, emulator: Any, db_url: str
) -> None:
    users = [
        emulator.admin.add_user("web", user_id=f"svc-subject-{n:03d}@example.org", events=3) for n in range(SUBJECTS)
    ]
    token = make_token("acme", "submit", "read")
    first = start_service("--callback-retry-base", "0.2")
    sids = {}
    for user in users:
        sid = str(uuid.uuid4())
        body = erasure(sid, ("controller_customer_id", user["user_id"]), status_callback_urls=[receiver.url])
        response = httpx.post(f"{first.url}{REQUESTS}", json=body, headers=bearer(token), timeout=60)
        assert response.status_code == 201, response.text
        sids[sid] = user
    # Stop in the middle: some callbacks out, not every request final yet.
    eventually(lambda: len(receiver.received) >= 5, "the first callbacks")
    finals = [r for r in receiver.received if r.json()["request_status"] == "completed"]
    assert len(finals) < SUBJECTS, "every request finished before the restart; the test proves nothing"
    assert first.stop() == 0

    second = start_service("--callback-retry-base", "0.2")

    def all_final() -> bool:
        for sid in sids:
            response = httpx.get(f"{second.url}{REQUESTS}/{sid}", headers=bearer(token))
            if response.json()["request_status"] != "completed":
                return False
        return True

    eventually(all_final, "every request to complete after the restart", timeout=300)
    for sid in sids:
        doc = httpx.get(f"{second.url}{REQUESTS}/{sid}", headers=bearer(token)).json()
        assert detail(doc)["state"] == "verified", sid

    # Amplitude received each Amplitude ID exactly once, restart or not.
    posted = Counter(aid for p in api_calls(emulator, DELETIONS, "POST") for aid in p["body"]["amplitude_ids"])
    assert posted == Counter({u["amplitude_id"]: 1 for u in users})

    # Every request's final state was announced, once, and nothing is left owed.
    def final_callbacks() -> Counter[str]:
        return Counter(
            r.json()["subject_request_id"] for r in receiver.received if r.json()["request_status"] == "completed"
        )

    eventually(lambda: set(final_callbacks()) == set(sids), "a completed callback for every request", timeout=120)
    assert set(final_callbacks().values()) == {1}
    announced = Counter((r.json()["subject_request_id"], detail(r.json())["state"]) for r in receiver.received)
    assert max(announced.values()) == 1  # no state announced twice, across the restart either
    eventually(lambda: all(d["delivered_at"] is not None for d in deliveries(db_url)), "no delivery owed")
    # Every request is marked as finally announced: the callback loop reads none of them again.
    engine = sa.create_engine(normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            flags = conn.execute(sa.text("SELECT notified_final FROM dsr_service_requests")).scalars().all()
    finally:
        engine.dispose()
    assert len(flags) == SUBJECTS and all(flags)


@pytest.mark.slow
def test_a_killed_service_resumes_its_requests_and_callbacks(
    start_service: Any, make_token: Any, receiver: Receiver, emulator: Any
) -> None:
    """SIGKILL (no graceful stop): the next process recovers the workflows from their checkpoints
    and sends every final callback; a callback may come twice (at least once), a POST never."""
    count = 15
    users = [emulator.admin.add_user("web", user_id=f"killed-{n:03d}@example.org", events=2) for n in range(count)]
    token = make_token("acme", "submit", "read")
    first = start_service("--callback-retry-base", "0.2")
    sids = []
    for user in users:
        sid = str(uuid.uuid4())
        body = erasure(sid, ("controller_customer_id", user["user_id"]), status_callback_urls=[receiver.url])
        assert httpx.post(f"{first.url}{REQUESTS}", json=body, headers=bearer(token), timeout=60).status_code == 201
        sids.append(sid)
    eventually(lambda: len(receiver.received) >= 5, "the first callbacks")
    first.proc.kill()
    first.proc.wait()
    assert not all(
        any(
            r.json()["subject_request_id"] == sid and r.json()["request_status"] == "completed"
            for r in receiver.received
        )
        for sid in sids
    ), "every request finished before the kill; the test proves nothing"

    second = start_service("--callback-retry-base", "0.2")

    def finished() -> set[str]:
        return {r.json()["subject_request_id"] for r in receiver.received if r.json()["request_status"] == "completed"}

    eventually(lambda: finished() == set(sids), "a completed callback for every request", timeout=300)
    for sid in sids:
        doc = httpx.get(f"{second.url}{REQUESTS}/{sid}", headers=bearer(token)).json()
        assert detail(doc)["state"] == "verified", sid
    posted = Counter(aid for p in api_calls(emulator, DELETIONS, "POST") for aid in p["body"]["amplitude_ids"])
    assert posted == Counter({u["amplitude_id"]: 1 for u in users})
