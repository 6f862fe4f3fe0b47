"""Narrow edge cases over ``httpx.MockTransport``: exact request shapes, exact waits with a fake
clock, and which failures are retried (the emulator tests cover the same over real HTTP)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from amp_helpers import FakeClock

from amplitude_dsr.amplitude import AmplitudeClient, Budget
from amplitude_dsr.config import ProjectConfig
from amplitude_dsr.errors import (
    AuthenticationError,
    BudgetExhausted,
    MalformedResponse,
    ServerError,
    TransportError,
    UncertainOutcome,
)

Handler = Callable[[httpx.Request], httpx.Response]
JOB = {
    "day": "2024-06-14",
    "status": "staging",
    "amplitude_ids": [{"amplitude_id": 356896327775, "requested_on_day": "2024-06-01"}],
}
TOKEN_WAIT = 3600 / 270  # one user-pool token at 0.75 x 360/hour


class Recorder:
    """A MockTransport handler that answers from a script and records every request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


def ok(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.fixture
def fake_budget(make_budget: Callable[..., Budget], clock: FakeClock) -> Budget:
    return make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=10_000)


@pytest.fixture
def client_for(project: ProjectConfig, fake_budget: Budget) -> Iterator[Callable[..., AmplitudeClient]]:
    made: list[AmplitudeClient] = []

    def make(recorder: Recorder, **kwargs: Any) -> AmplitudeClient:
        kwargs.setdefault("jitter", lambda: 0.0)
        budget = kwargs.pop("budget", fake_budget)
        client = AmplitudeClient(project, budget, transport=httpx.MockTransport(recorder), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# --- request shapes --------------------------------------------------------------------------


def test_user_search_request(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(ok({"matches": [{"user_id": "a@b.co", "amplitude_id": "42"}], "type": "x"}))
    result = client_for(rec).user_search("a+b@example.com")
    request = rec.requests[0]
    assert request.url.host == "amplitude.com"
    assert request.url.path == "/api/2/usersearch"
    assert request.url.params["user"] == "a+b@example.com"
    assert b"%2B" in request.url.query and b"%40" in request.url.query
    assert request.headers["authorization"].startswith("Basic ")
    assert result.matches[0].amplitude_id == 42


def test_user_activity_request_and_checks(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(ok({"userData": {"user_id": None}, "events": []}))
    client = client_for(rec)
    client.user_activity(356893043036, offset=1000, limit=500, direction="earliest")
    assert dict(rec.requests[0].url.params) == {
        "user": "356893043036",
        "offset": "1000",
        "limit": "500",
        "direction": "earliest",
    }
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"direction": "oldest"}):
        with pytest.raises(ValueError):
            client.user_activity(1, **bad)
    assert len(rec.requests) == 1


def test_events_list(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(ok({"data": [{"name": "Play Song", "totals": 3, "extra": 1}]}))
    events = client_for(rec).events_list()
    assert events[0].name == "Play Song"
    assert rec.requests[0].url.path == "/api/2/events/list"


def test_create_deletion_body(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(ok(JOB))
    jobs = client_for(rec).create_deletion(amplitude_ids=[356896327775], user_ids=["u1"], requester="dpo@example.com")
    body = json.loads(rec.requests[0].content)
    assert body == {
        "amplitude_ids": [356896327775],
        "user_ids": ["u1"],
        "requester": "dpo@example.com",
        "ignore_invalid_id": "True",
        "delete_from_org": "False",
    }
    assert "ignore_invalid_ids" not in body
    assert rec.requests[0].headers["content-type"] == "application/json"
    assert [job.day for job in jobs] == ["2024-06-14"]


def test_create_deletion_org_wide_parses_per_project_jobs(
    client_for: Callable[..., AmplitudeClient],
) -> None:
    rec = Recorder(ok([JOB | {"app": 1}, JOB | {"app": 2, "invalid_ids": ["x"]}]))
    jobs = client_for(rec).create_deletion(
        user_ids=["u1"], requester="dpo", delete_from_org=True, ignore_invalid_id=False
    )
    body = json.loads(rec.requests[0].content)
    assert (body["delete_from_org"], body["ignore_invalid_id"]) == ("True", "False")
    assert [job.app for job in jobs] == [1, 2]
    assert jobs[1].invalid_ids == ["x"]


@pytest.mark.parametrize(
    ("amplitude_ids", "user_ids"),
    [(list(range(101)), []), (list(range(60)), [f"u{i}" for i in range(41)]), ([], [])],
)
def test_create_deletion_refuses_bad_batches_before_sending(
    client_for: Callable[..., AmplitudeClient], amplitude_ids: list[int], user_ids: list[str]
) -> None:
    rec = Recorder(ok(JOB))
    with pytest.raises(ValueError):
        client_for(rec).create_deletion(amplitude_ids=amplitude_ids, user_ids=user_ids, requester="dpo")
    assert rec.requests == []


def test_exactly_one_hundred_ids_is_fine(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(ok(JOB))
    client_for(rec).create_deletion(amplitude_ids=list(range(100)), requester="dpo")
    assert len(json.loads(rec.requests[0].content)["amplitude_ids"]) == 100


def test_list_deletions_splits_windows_over_six_months(
    client_for: Callable[..., AmplitudeClient],
) -> None:
    rec = Recorder(ok([JOB]))
    jobs = client_for(rec).list_deletions(date(2024, 1, 1), date(2024, 12, 31))
    windows = [(r.url.params["start_day"], r.url.params["end_day"]) for r in rec.requests]
    assert windows == [
        ("2024-01-01", "2024-06-28"),
        ("2024-06-29", "2024-12-25"),
        ("2024-12-26", "2024-12-31"),
    ]
    assert len(jobs) == 1  # the same job listed in every window is reported once


def test_list_deletions_one_window(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(ok([]))
    assert client_for(rec).list_deletions(date(2024, 6, 1), date(2024, 7, 1)) == []
    assert len(rec.requests) == 1
    with pytest.raises(ValueError):
        client_for(rec).list_deletions(date(2024, 7, 1), date(2024, 6, 1))


def test_remove_from_deletion_path(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(ok({"amplitude_id": 1234567, "requested_on_day": "2024-06-01"}))
    removal = client_for(rec).remove_from_deletion(1234567, date(2024, 6, 14))
    assert rec.requests[0].method == "DELETE"
    assert rec.requests[0].url.path == "/api/2/deletions/users/1234567/2024-06-14"
    assert removal.amplitude_id == 1234567


def test_eu_region_uses_the_eu_host(fake_budget: Budget) -> None:
    rec = Recorder(ok({"matches": [], "type": "nomatch"}))
    eu = ProjectConfig(api_key="k", secret_key="s", region="eu")
    with AmplitudeClient(eu, fake_budget, transport=httpx.MockTransport(rec)) as client:
        client.user_search("x")
    assert rec.requests[0].url.host == "analytics.eu.amplitude.com"


# --- 429: pause, back off, retry --------------------------------------------------------------


def test_429_pauses_the_pool_then_retries_with_exact_waits(
    client_for: Callable[..., AmplitudeClient], clock: FakeClock, fake_budget: Budget
) -> None:
    too_many = httpx.Response(429, json={"error": "rate limit exceeded"})
    rec = Recorder(too_many, too_many, ok({"matches": [], "type": "nomatch"}))
    client = client_for(rec, max_retry_time=10_000)
    client.user_search("x")
    assert len(rec.requests) == 3
    # Hourly pool: 300 s, then 600 s; after each pause the bucket restarts empty (one token), and
    # each 429 halved the rate (the factor regains 0.1 per hour, a little during the token wait).
    second = 0.5 * (0.5 + 2 * TOKEN_WAIT * 0.1 / 3600)
    assert clock.sleeps == pytest.approx([300, 2 * TOKEN_WAIT, 600, TOKEN_WAIT / second])
    assert fake_budget.rate_factor("user", client.scope) == pytest.approx(second + TOKEN_WAIT / second * 0.1 / 3600)


def test_429_honours_retry_after(client_for: Callable[..., AmplitudeClient], clock: FakeClock) -> None:
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "7"}), ok({"matches": [], "type": "nomatch"}))
    client_for(rec).user_search("x")
    assert clock.sleeps == pytest.approx([7, 2 * TOKEN_WAIT])


def test_429_concurrency_body_backs_off_ten_seconds(
    client_for: Callable[..., AmplitudeClient], clock: FakeClock
) -> None:
    limited = httpx.Response(429, json={"limit": "rest: 5 concurrent requests"})
    rec = Recorder(limited, ok({"matches": [], "type": "nomatch"}))
    client_for(rec).user_search("x")
    assert clock.sleeps == pytest.approx([10, TOKEN_WAIT])


def test_429_that_never_stops_becomes_budget_exhausted(
    client_for: Callable[..., AmplitudeClient], clock: FakeClock
) -> None:
    rec = Recorder(httpx.Response(429))
    start = clock.now
    with pytest.raises(BudgetExhausted) as info:
        client_for(rec, max_attempts=3, max_retry_time=10_000).user_search("x")
    assert len(rec.requests) == 3
    assert info.value.pool == "user"
    assert info.value.resume_at > datetime.fromtimestamp(start, UTC)


def test_429_pause_longer_than_inline_wait_defers(
    project: ProjectConfig, make_budget: Callable[..., Budget], clock: FakeClock
) -> None:
    budget = make_budget(clock=clock, sleep=clock.sleep, max_inline_wait=30)
    rec = Recorder(httpx.Response(429), ok({"matches": [], "type": "nomatch"}))
    client = AmplitudeClient(project, budget, transport=httpx.MockTransport(rec))
    with client, pytest.raises(BudgetExhausted) as info:
        client.user_search("x")
    assert len(rec.requests) == 1
    assert budget.paused_until("user", client.scope) == pytest.approx(info.value.resume_at.timestamp(), abs=1e-5)


def test_deletion_post_429_is_retried(client_for: Callable[..., AmplitudeClient], clock: FakeClock) -> None:
    rec = Recorder(httpx.Response(429), ok(JOB))
    client_for(rec).create_deletion(amplitude_ids=[1], requester="dpo")
    assert [r.method for r in rec.requests] == ["POST", "POST"]


# --- 5xx and transport failures ---------------------------------------------------------------


def test_safe_get_retries_server_errors_with_exact_waits(
    client_for: Callable[..., AmplitudeClient], clock: FakeClock
) -> None:
    rec = Recorder(httpx.Response(503), httpx.Response(500), ok({"matches": [], "type": "nomatch"}))
    client_for(rec).user_search("x")
    assert len(rec.requests) == 3
    assert clock.sleeps == [0.5, 1.0]


def test_safe_get_gives_up_after_max_attempts(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(httpx.Response(502))
    with pytest.raises(ServerError):
        client_for(rec, max_attempts=3).user_search("x")
    assert len(rec.requests) == 3


def test_safe_get_gives_up_after_max_retry_time(
    client_for: Callable[..., AmplitudeClient],
) -> None:
    rec = Recorder(httpx.ReadTimeout("slow"))
    with pytest.raises(TransportError):
        client_for(rec, max_attempts=10, max_retry_time=1.0).user_search("x")
    assert len(rec.requests) == 2  # 0.5 s, then 0.5 + 1.0 > 1.0


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(503),
        httpx.ReadTimeout("no answer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
    ],
)
def test_deletion_post_is_never_resent_after_an_uncertain_failure(
    client_for: Callable[..., AmplitudeClient], failure: httpx.Response | Exception
) -> None:
    rec = Recorder(failure, ok(JOB))
    with pytest.raises(UncertainOutcome) as info:
        client_for(rec).create_deletion(amplitude_ids=[1], requester="dpo")
    assert len(rec.requests) == 1
    assert "reconcile" in str(info.value)


def test_deletion_post_is_resent_when_it_never_left(
    client_for: Callable[..., AmplitudeClient],
) -> None:
    rec = Recorder(httpx.ConnectError("refused"), ok(JOB))
    jobs = client_for(rec).create_deletion(amplitude_ids=[1], requester="dpo")
    assert len(rec.requests) == 2 and jobs[0].day == "2024-06-14"


def test_remove_from_deletion_is_not_retried(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(httpx.Response(502), ok({"amplitude_id": 1}))
    with pytest.raises(UncertainOutcome):
        client_for(rec).remove_from_deletion(1, date(2024, 6, 14))
    assert len(rec.requests) == 1


def test_fatal_errors_are_not_retried(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(httpx.Response(401, json={"error": "Invalid API key"}))
    with pytest.raises(AuthenticationError):
        client_for(rec).user_search("x")
    assert len(rec.requests) == 1


def test_wrong_shape_is_malformed_without_echoing_values(
    client_for: Callable[..., AmplitudeClient],
) -> None:
    rec = Recorder(ok({"matches": [{"user_id": "jane@example.com"}], "type": "x"}))
    with pytest.raises(MalformedResponse) as info:
        client_for(rec).user_search("jane@example.com")
    assert "jane" not in str(info.value)
    assert "matches.0.amplitude_id" in str(info.value)


def test_non_json_body_is_malformed(client_for: Callable[..., AmplitudeClient]) -> None:
    rec = Recorder(httpx.Response(200, content=b"<html>"))
    with pytest.raises(MalformedResponse):
        client_for(rec).list_deletions(date(2024, 1, 1), date(2024, 1, 2))


def _raw(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})


_ENTRIES = ",".join(f'{{"amplitude_id":{n},"requested_on_day":"2024-06-01"}}' for n in range(200))
_PLAIN = f'[{{"day":"2024-06-14","status":"staging","amplitude_ids":[{_ENTRIES}]}}]'.encode()
# Valid JSON but not the plain shape (a key twice, late in the body): the ordinary decoder keeps the last.
_TWICE = f'[{{"day":"2024-06-14","status":"staging","amplitude_ids":[{_ENTRIES}],"status":"done"}}]'.encode()


def test_a_long_listing_not_plain_past_what_is_kept_is_asked_for_again_and_read_whole(
    client_for: Callable[..., AmplitudeClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplitude_dsr.amplitude import listing

    monkeypatch.setattr(listing, "KEEP", 1024)  # the body is 11 KB: its chunks are not kept
    rec = Recorder(_raw(_TWICE))
    jobs = client_for(rec).list_deletions(date(2024, 6, 1), date(2024, 7, 1))
    assert len(rec.requests) == 2  # the streamed read gave up, the second GET was decoded whole
    assert [(j.status, len(j.amplitude_ids)) for j in jobs] == [("done", 200)]
    rec = Recorder(_raw(_PLAIN))
    jobs = client_for(rec).list_deletions(date(2024, 6, 1), date(2024, 7, 1))
    assert len(rec.requests) == 1 and [(j.status, len(j.amplitude_ids)) for j in jobs] == [("staging", 200)]


def test_a_listing_not_plain_within_what_is_kept_is_read_whole_from_the_same_answer(
    client_for: Callable[..., AmplitudeClient],
) -> None:
    rec = Recorder(_raw(_TWICE))
    jobs = client_for(rec).list_deletions(date(2024, 6, 1), date(2024, 7, 1))
    assert len(rec.requests) == 1
    assert [(j.status, len(j.amplitude_ids)) for j in jobs] == [("done", 200)]
