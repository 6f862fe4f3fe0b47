"""Rate limits: documented counts per pool, scaled windows, concurrency caps, external load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from .conftest import Emu, start_emu

SEARCH_LIMIT = "usersearch/useractivity: 360 queries per hour"


@pytest.fixture
def limited() -> Iterator[Emu]:
    """A private emulator with enforced limits and a 100x rate scale (36 s search window)."""
    yield from start_emu(seed=3, rate_scale=100.0)


def _wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_search_pool_allows_360_then_429(limited: Emu) -> None:
    with limited.client("web") as client:
        statuses = [client.get("/api/2/usersearch", params={"user": f"q{i}"}).status_code for i in range(360)]
        assert statuses == [200] * 360
        refused = client.get("/api/2/usersearch", params={"user": "one-more"})
        assert refused.status_code == 429
        assert refused.json() == {"error": "rate limit exceeded", "limit": SEARCH_LIMIT}
        assert "retry-after" not in refused.headers
        # user activity spends the same pool
        aid = limited.catalog["web"]["heavy"]["amplitude_id"]
        assert client.get("/api/2/useractivity", params={"user": aid}).status_code == 429
        # other pools and other projects are unaffected
        assert client.get("/api/2/events/list").status_code == 200
    with limited.client("mobile") as mobile:
        assert mobile.get("/api/2/usersearch", params={"user": "x"}).status_code == 200
    # The window is measured on real time, divided by rate_scale.
    limited.server.admin.set_limits(rate_scale=36_000.0)  # window now 0.1 s
    time.sleep(0.15)
    with limited.client("web") as client:
        assert client.get("/api/2/usersearch", params={"user": "later"}).status_code == 200
    log = limited.server.admin.request_log()
    assert sum(1 for e in log if e["status"] == 429) == 2


def test_deletions_one_per_second(limited: Emu) -> None:
    limited.server.admin.set_limits(rate_scale=10.0)  # 1 request per 0.1 s
    params = {"start_day": "2024-01-01", "end_day": "2024-01-02"}
    with limited.client("web") as client:
        assert client.get("/api/2/deletions/users", params=params).status_code == 200
        refused = client.get("/api/2/deletions/users", params=params)
        assert refused.status_code == 429
        assert refused.json()["limit"] == "deletions: 1 request per second"
        # POST and DELETE count too
        assert client.post("/api/2/deletions/users", json={"user_ids": ["x"]}).status_code == 429
        time.sleep(0.15)
        assert client.get("/api/2/deletions/users", params=params).status_code == 200


def test_dsar_cost_pool_is_per_org(limited: Emu) -> None:
    # An outside consumer spends 127/128 of 14,400: 112.5 cost remain (POST 8, GET 1).
    limited.server.admin.external_load("dsar", 127 / 128)
    body = {"userId": "alice@example.com", "startDate": "2024-01-01", "endDate": "2024-01-02"}
    with limited.client(None) as client:
        statuses = [client.post("/api/2/dsar/requests", json=body).status_code for _ in range(15)]
        assert statuses == [202] * 14 + [429]
        refused = client.get("/api/2/dsar/requests/53367")
        assert refused.status_code == 429
        assert refused.json()["limit"] == "dsar: 14400 cost per hour"
    with limited.client(None, eu=True) as eu:  # one org budget for both regions
        assert eu.get("/api/2/dsar/requests/53367").status_code == 429
    limited.server.admin.external_load("dsar", 0)
    limited.server.admin.set_limits(reset=True)
    with limited.client(None) as client:
        assert client.get("/api/2/dsar/requests/53367").status_code == 200


def test_cost_pool_events_list(limited: Emu) -> None:
    limited.server.admin.external_load("cost", 1023 / 1024, project="web")  # 105.47 remain
    with limited.client("web") as client:
        statuses = [client.get("/api/2/events/list").status_code for _ in range(106)]
        assert statuses == [200] * 105 + [429]
        assert client.get("/api/2/events/list").json()["limit"] == "cost: 108000 cost per hour"
    with limited.client("mobile") as client:
        assert client.get("/api/2/events/list").status_code == 200


def test_external_load_spends_search_pool(limited: Emu) -> None:
    limited.server.admin.external_load("usersearch", 0.5, project="web")
    with limited.client("web") as client:
        statuses = [client.get("/api/2/usersearch", params={"user": "x"}).status_code for _ in range(181)]
    assert statuses == [200] * 180 + [429]


@pytest.mark.parametrize(
    ("path", "params", "cap", "capacity", "message"),
    [
        ("/api/2/usersearch", {"user": "x"}, "rest", 5, "rest: 5 concurrent requests"),
        ("/api/2/events/list", {}, "rest", 5, "rest: 5 concurrent requests"),
        ("/api/2/deletions/users", {"start_day": "2024-01-01", "end_day": "2024-01-02"},
         "deletions", 8, "deletions: 8 requests in flight"),
    ],
)  # fmt: skip
def test_concurrency_caps(
    limited: Emu, path: str, params: dict[str, str], cap: str, capacity: int, message: str
) -> None:
    admin = limited.server.admin
    admin.set_limits(rate_scale=1e7)  # windows negligible: only concurrency matters here
    admin.inject_fault("slow", path=path, count=capacity, delay=1.0)
    results: list[int] = []

    def call() -> None:
        with limited.client("web") as client:
            results.append(client.get(path, params=params).status_code)

    threads = [threading.Thread(target=call) for _ in range(capacity)]
    for thread in threads:
        thread.start()
    limits = limited.server.world.limits
    _wait_for(lambda: limits.inflight(cap, "web") == capacity)
    with limited.client("web") as client:
        refused = client.get(path, params=params)
    assert refused.status_code == 429
    assert refused.json()["limit"] == message
    with limited.client("mobile") as other:  # caps are per project
        assert other.get(path, params=params).status_code == 200
    for thread in threads:
        thread.join()
    assert results == [200] * capacity
    _wait_for(lambda: limits.inflight(cap, "web") == 0)  # released after the response


def test_enforcement_can_be_switched_off(limited: Emu) -> None:
    limited.server.admin.set_limits(enforce=False)
    with limited.client("web") as client:
        for _ in range(3):
            assert client.get("/api/2/deletions/users", params={
                "start_day": "2024-01-01", "end_day": "2024-01-02"}).status_code == 200  # fmt: skip


def test_unknown_pool_is_400(limited: Emu) -> None:
    response = httpx.post(limited.url + "/_admin/external_load", json={"pool": "nope", "fraction": 0.5})
    assert response.status_code == 400


def test_an_outside_consumer_of_a_one_per_second_pool_leaves_only_the_gaps() -> None:
    """At 90 % of one request per second, the consumer's request holds the window 90 % of the
    time: another caller gets through only in the remaining gaps (whole requests, not a share)."""
    from amplitude_dsr.emulator.limits import external_in_window

    samples = [external_in_window(0.9, 1, 1.0, 0.0, t / 100) for t in range(10_000)]
    assert set(samples) == {0.0, 1.0}
    assert sum(samples) / len(samples) == pytest.approx(0.9, abs=0.01)
    assert external_in_window(0.5, 360, 3600.0, 0.0, 10.0) == 180.0  # large pools: a share
