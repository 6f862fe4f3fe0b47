"""Secrets, emails and user IDs never reach a repr, an exception message or a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

import httpx
import pytest

from amplitude_dsr.amplitude import AmplitudeClient, Budget, DsarClient
from amplitude_dsr.config import OrgConfig, ProjectConfig
from amplitude_dsr.errors import AmplitudeError

EMAIL = "jane.doe@example.com"


def test_reprs_hide_secrets(project: ProjectConfig, org: OrgConfig, make_budget: Callable[..., Budget]) -> None:
    budget = make_budget()
    with AmplitudeClient(project, budget) as client, DsarClient(org, budget) as dsar:
        for text in (repr(project), str(project), repr(org), repr(client), repr(dsar)):
            assert "SECRET" not in text
            assert "key-123" not in text
        assert "key-123" not in client.scope and len(client.scope) == 12


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, json={"error": "Invalid API key"}),
        httpx.Response(400, json={"error": f"unknown user {EMAIL}"}),
        httpx.Response(500, text=f"trace for {EMAIL}"),
        httpx.Response(200, json={"matches": [{"user_id": EMAIL}]}),
        httpx.ReadTimeout(f"timed out fetching user={EMAIL}"),
    ],
)
def test_failures_and_logs_carry_no_secret_or_identifier(
    project: ProjectConfig,
    make_budget: Callable[..., Budget],
    caplog: pytest.LogCaptureFixture,
    answer: httpx.Response | Exception,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    budget = make_budget(sleep=lambda seconds: None)
    caplog.set_level(logging.DEBUG)
    with (
        AmplitudeClient(project, budget, transport=httpx.MockTransport(handler), max_attempts=2) as client,
        pytest.raises(AmplitudeError) as info,
    ):
        client.user_search(EMAIL)
    exc = info.value
    texts = [str(exc), repr(exc), exc.url, exc.body_excerpt, caplog.text]
    for text in texts:
        assert "SECRET" not in text
        assert "proj-key-123" not in text
        assert "jane" not in text
        assert "Basic " not in text


def test_deletion_errors_do_not_echo_ids(project: ProjectConfig, make_budget: Callable[..., Budget]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502))
    client = AmplitudeClient(project, make_budget(), transport=transport)
    with client, pytest.raises(AmplitudeError) as info:
        client.remove_from_deletion(356893043036, date(2024, 6, 14))
    assert "356893043036" not in str(info.value)
