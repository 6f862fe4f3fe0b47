"""The group commit of ``POST /opendsr/v2/requests`` (``service/group_commit.py``): concurrent
POSTs share transactions, yet each ID makes one request, every answer is signed and verifiable,
and a group whose transaction fails writes nothing and fails every one of its callers (503, to
retry). Checked against the database and DBOS's queue, not against what the service says."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from amplitude_dsr.config import normalize_database_url
from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.service.group_commit import GroupCommit, Submission
from amplitude_dsr.store import service_repo
from amplitude_dsr.store.service_tables import create_service_tables
from tests.e2e.conftest import make_runtime  # noqa: F401 (a fixture)

from .conftest import request_body
from .test_opendsr import REQUESTS, bearer, certificate_of, signature_valid

POISON = "00000000-0000-4000-8000-00000000dead"  # the ID a test trigger refuses to map


def counts(db_url: str) -> dict[str, int]:
    """Requests, their ``received`` entries and ID mappings in the database."""
    engine = sa.create_engine(normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            one = lambda sql: int(conn.execute(sa.text(sql)).scalar_one())  # noqa: E731
            return {
                "requests": one("SELECT count(*) FROM dsr_requests"),
                "received": one("SELECT count(*) FROM dsr_audit WHERE kind = 'received'"),
                "mapped": one("SELECT count(*) FROM dsr_service_requests"),
            }
    finally:
        engine.dispose()


def poison(db_url: str, on: bool) -> None:
    """A trigger that makes mapping :data:`POISON` fail, half-way through its group's transaction
    (after the requests, their enqueues and the other mappings were written)."""
    engine = sa.create_engine(normalize_database_url(db_url))
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS poison")
                if on:
                    conn.exec_driver_sql(
                        "CREATE TRIGGER poison BEFORE INSERT ON dsr_service_requests "
                        f"WHEN NEW.subject_request_id = '{POISON}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
                    )
            else:
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS poison ON dsr_service_requests")
                if on:
                    conn.exec_driver_sql(
                        "CREATE OR REPLACE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                        f"IF NEW.subject_request_id = '{POISON}' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                        "RETURN NEW; END $$ LANGUAGE plpgsql"
                    )
                    conn.exec_driver_sql(
                        "CREATE TRIGGER poison BEFORE INSERT ON dsr_service_requests "
                        "FOR EACH ROW EXECUTE FUNCTION poison()"
                    )
    finally:
        engine.dispose()


def access(sid: str, user_id: str | None = None) -> dict[str, Any]:
    return request_body("access", sid, ("controller_customer_id", user_id or f"gc-{sid}"))


def test_concurrent_posts_share_commits_yet_each_id_makes_one_request_and_every_answer_verifies(
    start_service: Any, make_token: Any, db_url: str
) -> None:
    token = make_token("acme", "submit", "read")
    svc = start_service()
    cert = certificate_of(svc)
    twice = str(uuid.uuid4())
    distinct = [str(uuid.uuid4()) for _ in range(30)]
    bodies = [access(twice)] * 12 + [access(sid) for sid in distinct]

    with httpx.Client(headers=bearer(token), timeout=60) as http, ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: http.post(f"{svc.url}{REQUESTS}", json=body), bodies))

    assert [a.status_code for a in answers] == [201] * len(bodies)
    for answer in answers:  # the body, and the receipt inside it, both verify with the served certificate
        assert signature_valid(cert, answer.content, answer.headers["X-OpenDSR-Signature"])
        doc = answer.json()
        signature = doc.pop("processor_signature")
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        assert signature_valid(cert, canonical, signature)
    assert len({a.content for a in answers[:12]}) == 1  # one ID, one answer (same received_time)
    assert counts(db_url) == {"requests": 31, "received": 31, "mapped": 31}

    # The same ID with two different contents at once: one content wins, the other is refused,
    # and the refused one leaves no request behind (one committer per ID serialises them).
    contested = str(uuid.uuid4())
    rivals = [access(contested, "gc-first"), access(contested, "gc-second")] * 6
    with httpx.Client(headers=bearer(token), timeout=60) as http, ThreadPoolExecutor(len(rivals)) as pool:
        answers = list(pool.map(lambda body: http.post(f"{svc.url}{REQUESTS}", json=body), rivals))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 6 + [400] * 6
    winners = {a.json()["encoded_request"] for a in answers if a.status_code == 201}
    assert len(winners) == 1
    refused = [a.json() for a in answers if a.status_code == 400]
    assert {r["error"]["errors"][0]["reason"] for r in refused} == {"DuplicateRequestId"}
    assert counts(db_url) == {"requests": 32, "received": 32, "mapped": 32}


def test_a_failed_group_writes_nothing_and_fails_every_caller_then_the_same_group_succeeds(
    make_runtime: Any,  # noqa: F811 (the fixture imported above)
    db_url: str,
) -> None:
    rt = make_runtime(role="submitter")
    create_service_tables(rt.engine)
    poison(db_url, on=True)
    sids = [str(uuid.uuid4()) for _ in range(5)] + [POISON]

    def group() -> list[Submission]:
        out = []
        for sid in sids:
            spec = api.Spec("access", [Identifier.parse("user_id", f"gc-{sid}")], {"batch_key": f"opendsr:{sid}"})
            mapped = service_repo.MappedRequest(
                subject_request_id=sid, request_id="", controller_id="acme", request_type="access",
                body_sha256="0" * 64, callback_urls=[], received_time=service_repo.utcnow(), api_version="2.0",
                notified_state=None,
            )  # fmt: skip
            out.append(Submission(mapped, api.prepare(rt, spec)))
        return out

    committer = GroupCommit(rt)
    failed = group()
    committer.commit(failed)
    for item in failed:  # every caller of the group hears the failure (the service answers 503)
        with pytest.raises(sa.exc.SQLAlchemyError, match="poisoned"):
            item.future.result(timeout=0)
    assert counts(db_url) == {"requests": 0, "received": 0, "mapped": 0}
    assert rt.dbos_client().list_workflows(load_input=False, load_output=False) == []

    poison(db_url, on=False)
    retried = group()
    committer.commit(retried)
    stored = [item.future.result(timeout=0) for item in retried]
    assert [s.mapped.subject_request_id for s in stored] == sids
    assert len({s.mapped.request_id for s in stored}) == 6
    assert counts(db_url) == {"requests": 6, "received": 6, "mapped": 6}
    workflows = rt.dbos_client().list_workflows(load_input=False, load_output=False)
    assert sorted(w.workflow_id for w in workflows) == sorted(s.mapped.request_id for s in stored)
    committer.stop()


def test_a_post_whose_group_fails_is_a_503_to_retry(start_service: Any, make_token: Any, db_url: str) -> None:
    token = make_token("acme", "submit", "read")
    svc = start_service()
    poison(db_url, on=True)
    with httpx.Client(headers=bearer(token), timeout=60) as http:
        failed = http.post(f"{svc.url}{REQUESTS}", json=access(POISON))
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"]["code"] == 503
        assert counts(db_url) == {"requests": 0, "received": 0, "mapped": 0}
        poison(db_url, on=False)
        retried = http.post(f"{svc.url}{REQUESTS}", json=access(POISON))
        assert retried.status_code == 201, retried.text
    assert counts(db_url) == {"requests": 1, "received": 1, "mapped": 1}
