"""Operations endpoints against the real service: ``/readyz`` of an API-only process follows the
workers' executor locks, and ``/metrics`` (parsed as Prometheus text) reports queue depth, budget
room and the 429s the emulator really sent."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from amplitude_dsr.dsr.liveness import held_in
from tests.e2e import proc

from .conftest import api_calls, erasure, eventually, request_body
from .test_opendsr import REQUESTS, bearer, detail

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text format: (name, labels) -> value; every line must parse, and every sample
    must belong to a family declared by a TYPE line."""
    declared: set[str] = set()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        assert name in declared, line
        key = (name, frozenset(_LABEL.findall(labels or "")))
        assert key not in samples, line
        samples[key] = float(value)
    return samples


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def readyz(svc: Any) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{svc.url}/readyz", timeout=30)
    doc: dict[str, Any] = response.json()
    return response.status_code, doc


def test_an_api_only_service_is_ready_only_while_a_worker_lives(
    start_service: Any, service_env: dict[str, str], make_token: Any, emulator: Any, tmp_path: Path
) -> None:
    svc = start_service("--no-worker")
    code, doc = readyz(svc)
    assert code == 503
    assert doc["checks"]["database"] == "ok"
    assert doc["checks"]["worker"].startswith("no live worker")

    worker = proc.start_worker(service_env, tmp_path)
    try:
        eventually(lambda: readyz(svc)[0] == 200, "ready once a worker holds its lock")
        assert readyz(svc)[1]["checks"]["worker"] == "ok"
        # That worker really runs what the API-only process accepts.
        user = emulator.admin.add_user("web", user_id="ready-subject@example.org", events=2)
        token = make_token("acme", "submit", "read")
        sid = str(uuid.uuid4())
        body = request_body("access", sid, ("controller_customer_id", user["user_id"]))
        assert httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token), timeout=60).status_code == 201

        def state() -> str:
            doc = httpx.get(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(token)).json()
            return str(detail(doc)["state"])

        eventually(lambda: state() == "completed", "the worker to answer the request")
    finally:
        proc.stop(worker)
    eventually(lambda: readyz(svc)[0] == 503, "not ready once the worker is gone")
    assert readyz(svc)[1]["checks"]["worker"].startswith("no live worker")


def test_a_lock_is_seen_held_from_proc_locks_without_taking_it() -> None:
    text = "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2147444 0 EOF\n2: -> FLOCK  ADVISORY  WRITE 77 fe:00:99 0 EOF\n"
    assert held_in(text, 0xFE, 0, 2147444)
    assert not held_in(text, 0xFE, 0, 99)  # only a waiter: nobody holds it
    assert not held_in(text, 0xFE, 1, 2147444)  # another device
    assert not held_in("", 0xFE, 0, 2147444)


@pytest.mark.slow
def test_metrics_report_queues_budgets_and_the_429s_amplitude_sent(
    start_service: Any, make_token: Any, emulator: Any
) -> None:
    # (the project configured from the environment is called "default")
    users = [emulator.admin.add_user("web", user_id=f"metrics-{n}@example.org", events=2) for n in range(3)]
    token = make_token("acme", "submit", "read")
    api_only = start_service("--no-worker")
    # Queued while no worker runs: the deletion queue holds them, enqueued.
    sids = []
    for user in users:
        sid = str(uuid.uuid4())
        body = erasure(sid, ("controller_customer_id", user["user_id"]))
        assert httpx.post(f"{api_only.url}{REQUESTS}", json=body, headers=bearer(token), timeout=60).status_code == 201
        sids.append(sid)
    before = parse_metrics(httpx.get(f"{api_only.url}/metrics").text)
    assert sample(before, "amplitude_dsr_queue_workflows", queue="amplitude-dsr-deletion", status="enqueued") == 3
    assert sample(before, "amplitude_dsr_queue_workflows", queue="amplitude-dsr-deletion", status="pending") == 0
    assert sample(before, "amplitude_dsr_requests", kind="deletion", state="received") == 3
    api_only.stop()

    emulator.admin.inject_fault("429", path="/api/2/usersearch", count=2)
    svc = start_service()

    def verified() -> bool:
        docs = [httpx.get(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(token)).json() for sid in sids]
        return all(detail(doc)["state"] == "verified" for doc in docs)

    eventually(verified, "every erasure verified")
    text = httpx.get(f"{svc.url}/metrics").text
    samples = parse_metrics(text)
    refused = [c for c in api_calls(emulator, "/usersearch") if c.get("status") == 429]
    assert len(refused) == 2, text
    assert sample(samples, "amplitude_dsr_amplitude_429_total", project="default", pool="user") == len(refused), text
    assert sample(samples, "amplitude_dsr_amplitude_429_total", project="default", pool="deletion") == 0
    for pool in ("user", "deletion"):
        capacity = sample(samples, "amplitude_dsr_budget_capacity", project="default", pool=pool)
        assert capacity >= 1
        assert sample(samples, "amplitude_dsr_budget_tokens", project="default", pool=pool) <= capacity
        assert 0 < sample(samples, "amplitude_dsr_budget_rate_factor", project="default", pool=pool) <= 1
    # The 429s halved the user pool's rate; it recovers over windows, not at once.
    assert sample(samples, "amplitude_dsr_budget_rate_factor", project="default", pool="user") < 1
    queued = {k: v for k, v in samples.items() if k[0] == "amplitude_dsr_queue_workflows"}
    assert sample(samples, "amplitude_dsr_queue_workflows", queue="amplitude-dsr-deletion", status="enqueued") == 0
    assert {dict(labels)["queue"] for _, labels in queued} >= {"amplitude-dsr", "amplitude-dsr-deletion"}
    assert sample(samples, "amplitude_dsr_callback_failed_attempts_total") == 0
    # No label names a person.
    for user in users:
        assert user["user_id"] not in text and str(user["amplitude_id"]) not in text
