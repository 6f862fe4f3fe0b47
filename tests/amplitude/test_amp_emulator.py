"""The client over real HTTP against the emulator: every endpoint, regions, faults, and what the
emulator's request log saw (how many calls, no duplicate POST)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from amp_helpers import EMULATOR_RATE_SCALE

from amplitude_dsr.amplitude import AmplitudeClient, Budget, DsarClient
from amplitude_dsr.config import OrgConfig, ProjectConfig
from amplitude_dsr.errors import (
    AuthenticationError,
    MalformedResponse,
    TransportError,
    UncertainOutcome,
)

Calls = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def budget(make_budget: Callable[..., Budget]) -> Budget:
    return make_budget(rate_scale=EMULATOR_RATE_SCALE)


@pytest.fixture
def client(project_of: Callable[..., ProjectConfig], budget: Budget) -> Iterator[AmplitudeClient]:
    with AmplitudeClient(project_of("web"), budget, timeout=10) as amp:
        yield amp


@pytest.fixture
def alice(emu: Any) -> dict[str, Any]:
    ordinary: list[dict[str, Any]] = emu.admin.catalog()["web"]["ordinary"]
    return ordinary[0]


def emulated_today(emu: Any) -> date:
    return date.fromisoformat(emu.admin.state()["now"][:10])


def test_user_search_and_activity(client: AmplitudeClient, alice: dict[str, Any], calls: Calls) -> None:
    found = client.user_search(alice["user_id"])
    assert found.type == "match_user_or_device_id"
    assert [m.amplitude_id for m in found.matches] == [alice["amplitude_id"]]
    activity = client.user_activity(alice["amplitude_id"])
    assert activity.user_data.num_events == alice["num_events"]
    assert len(activity.events) == alice["num_events"]
    nothing = client.user_search("nobody-at-all-zz9")
    assert (nothing.type, nothing.matches) == ("nomatch", [])
    log = calls()
    assert [(e["path"], e["status"]) for e in log] == [
        ("/api/2/usersearch", 200),
        ("/api/2/useractivity", 200),
        ("/api/2/usersearch", 200),
    ]
    assert log[0]["query"] == {"user": alice["user_id"]}


def test_events_list(client: AmplitudeClient, calls: Calls) -> None:
    events = client.events_list()
    assert events and all(e.name or e.value for e in events)
    assert calls()[0]["pool"] == "cost"


def test_deletion_lifecycle_calls(client: AmplitudeClient, alice: dict[str, Any], emu: Any, calls: Calls) -> None:
    jobs = client.create_deletion(
        amplitude_ids=[alice["amplitude_id"]], user_ids=["no-such-user-zz9"], requester="dpo@corp"
    )
    assert len(jobs) == 1 and jobs[0].status == "staging"
    assert [e.amplitude_id for e in jobs[0].amplitude_ids] == [alice["amplitude_id"]]
    assert jobs[0].invalid_ids == ["no-such-user-zz9"]
    day = date.fromisoformat(jobs[0].day)
    today = emulated_today(emu)
    listed = client.list_deletions(today, day + timedelta(days=1))
    assert any(job.day == jobs[0].day for job in listed)
    removal = client.remove_from_deletion(alice["amplitude_id"], day)
    assert removal.amplitude_id == alice["amplitude_id"]
    post = calls("/api/2/deletions/users", "POST")
    assert len(post) == 1
    assert post[0]["body"]["ignore_invalid_id"] == "True"
    assert post[0]["body"]["delete_from_org"] == "False"
    assert [e["method"] for e in calls("/api/2/deletions/users")] == ["POST", "GET", "DELETE"]


def test_list_deletions_over_a_year_splits_into_windows(client: AmplitudeClient, calls: Calls) -> None:
    client.list_deletions(date(2025, 1, 1), date(2025, 12, 31))
    gets = calls("/api/2/deletions/users", "GET")
    assert len(gets) == 3
    assert all(e["status"] == 200 for e in gets)


def test_eu_keys_at_the_us_host_get_the_region_hint(
    project_of: Callable[..., ProjectConfig], budget: Budget, emu: Any
) -> None:
    eu_at_us = project_of("eu-app", base_url=emu.base_url)
    with AmplitudeClient(eu_at_us, budget) as amp, pytest.raises(AuthenticationError) as info:
        amp.user_search("anyone")
    assert info.value.status == 401
    assert "analytics.eu.amplitude.com" in str(info.value)
    with AmplitudeClient(project_of("eu-app"), budget) as amp:
        assert amp.user_search("nobody-zz9").type == "nomatch"


def test_a_malformed_body_is_transient_and_retried(client: AmplitudeClient, emu: Any, alice: dict[str, Any]) -> None:
    emu.admin.clear_log()
    emu.admin.inject_fault("malformed", path="/api/2/usersearch", count=1)
    assert client.user_search(alice["user_id"]).matches[0].amplitude_id == alice["amplitude_id"]
    searches = [e for e in emu.admin.request_log() if e["path"].endswith("/usersearch")]
    assert len(searches) == 2  # the unreadable answer, then the retry


def test_malformed_bodies_beyond_the_inline_retries_raise(
    client: AmplitudeClient, emu: Any, alice: dict[str, Any]
) -> None:
    emu.admin.inject_fault("malformed", path="/api/2/usersearch", count=None)
    with pytest.raises(MalformedResponse):
        client.user_search(alice["user_id"])
    emu.admin.clear_faults()


def test_hung_response_times_out(
    project_of: Callable[..., ProjectConfig], budget: Budget, emu: Any, calls: Calls
) -> None:
    emu.admin.inject_fault("hang", path="/api/2/usersearch", count=2)
    amp = AmplitudeClient(project_of("web"), budget, timeout=0.5, max_attempts=2)
    with amp, pytest.raises(TransportError) as info:
        amp.user_search("someone")
    assert info.value.status is None
    assert len(calls("/api/2/usersearch")) == 2  # a safe GET: retried once, then given up


def test_429_storm_backs_off_then_succeeds(
    client: AmplitudeClient, emu: Any, alice: dict[str, Any], calls: Calls
) -> None:
    emu.admin.inject_fault("429", path="/api/2/usersearch", count=3)
    found = client.user_search(alice["user_id"])
    assert found.matches
    assert [e["status"] for e in calls("/api/2/usersearch")] == [429, 429, 429, 200]


def test_server_errors_on_a_safe_get_are_retried(client: AmplitudeClient, emu: Any, calls: Calls) -> None:
    emu.admin.inject_fault("503", path="/api/2/deletions/users", method="GET", count=2)
    today = emulated_today(emu)
    client.list_deletions(today, today)
    assert [e["status"] for e in calls("/api/2/deletions/users")] == [503, 503, 200]


def test_dropped_deletion_post_is_uncertain_and_never_resent(
    client: AmplitudeClient, emu: Any, alice: dict[str, Any], calls: Calls
) -> None:
    emu.admin.inject_fault("drop_after", path="/api/2/deletions/users", method="POST", count=1)
    with pytest.raises(UncertainOutcome):
        client.create_deletion(amplitude_ids=[alice["amplitude_id"]], requester="dpo@corp")
    assert len(calls("/api/2/deletions/users", "POST")) == 1
    # The request did land: reconcile by reading state, not by re-posting.
    today = emulated_today(emu)
    jobs = client.list_deletions(today, today + timedelta(days=30))
    ids = {entry.amplitude_id for job in jobs for entry in job.amplitude_ids}
    assert alice["amplitude_id"] in ids
    assert len(calls("/api/2/deletions/users", "POST")) == 1


def test_server_error_on_deletion_post_is_uncertain(
    client: AmplitudeClient, emu: Any, alice: dict[str, Any], calls: Calls
) -> None:
    emu.admin.inject_fault("500", path="/api/2/deletions/users", method="POST", count=1)
    with pytest.raises(UncertainOutcome):
        client.create_deletion(amplitude_ids=[alice["amplitude_id"]], requester="dpo@corp")
    assert len(calls("/api/2/deletions/users", "POST")) == 1


def test_dsar_export_through_the_storage_redirect(
    emu_org: OrgConfig, budget: Budget, emu: Any, alice: dict[str, Any], calls: Calls
) -> None:
    with DsarClient(emu_org, budget) as dsar:
        today = emulated_today(emu)
        request_id = dsar.create(
            amplitude_id=alice["amplitude_id"], start_date=today - timedelta(days=400), end_date=today
        )
        assert dsar.get(request_id).status == "staging"
        emu.admin.advance(days=2)
        done = dsar.get(request_id)
        assert done.status == "done" and done.urls
        rows = [row for url in done.urls for row in dsar.iter_output(url)]
    assert len(rows) == alice["num_events"]
    assert {row["amplitude_id"] for row in rows} == {alice["amplitude_id"]}
    log = emu.admin.request_log()
    storage = [e for e in log if e["pool"] == "storage"]
    assert len(storage) == len(done.urls)
    assert all(e["status"] == 200 for e in storage)  # no Authorization reached storage
    assert len(calls("/api/2/dsar/requests", "POST")) == 1


def test_dsar_with_project_keys_is_refused(project_of: Callable[..., ProjectConfig], budget: Budget, emu: Any) -> None:
    web = project_of("web")
    org_like = OrgConfig(api_key=web.api_key, secret_key=web.secret_key, base_url=emu.base_url)
    with DsarClient(org_like, budget) as dsar, pytest.raises(AuthenticationError):
        dsar.get(1)
