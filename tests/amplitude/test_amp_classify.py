"""The one classification place: status and body -> result or exception (a table)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from amplitude_dsr.amplitude.transport import (
    REGION_HINT,
    classify,
    parse_retry_after,
    redact_url,
    request_was_not_sent,
    scrub,
    transport_error,
)
from amplitude_dsr.errors import (
    AmplitudeError,
    AuthenticationError,
    BadRequest,
    FatalError,
    MalformedResponse,
    NotFound,
    RateLimited,
    RetriableError,
    ServerError,
    TransportError,
    UnexpectedStatus,
)

URL = "https://amplitude.com/api/2/usersearch?user=jane%40example.com"


def response(status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, content=content, headers=headers, request=httpx.Request("GET", URL))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, '{"matches": [], "type": "nomatch"}', {"matches": [], "type": "nomatch"}),
        (200, "[]", []),
        (202, '{"requestId": 53367}', {"requestId": 53367}),
        (200, "", None),
        (204, "", None),
        (200, "  \n", None),
    ],
)
def test_success_returns_parsed_json(status: int, body: str, expected: Any) -> None:
    assert classify(response(status, body)) == expected


@pytest.mark.parametrize(
    ("status", "body", "error", "family"),
    [
        (200, '{"matches": [', MalformedResponse, RetriableError),  # transient: a cut-off answer
        (200, "<html>maintenance</html>", MalformedResponse, RetriableError),  # a proxy's page
        (400, '{"error": "ignore_invalid_id can only be True or False"}', BadRequest, FatalError),
        (422, "{}", BadRequest, FatalError),
        (401, '{"error": "Invalid API key"}', AuthenticationError, FatalError),
        (403, "forbidden", AuthenticationError, FatalError),
        (404, "not found", NotFound, FatalError),
        (409, "conflict", UnexpectedStatus, FatalError),
        (302, "", UnexpectedStatus, FatalError),
        (429, '{"error": "rate limit exceeded"}', RateLimited, RetriableError),
        (500, "boom", ServerError, RetriableError),
        (502, "bad gateway", ServerError, RetriableError),
        (503, "", ServerError, RetriableError),
        (504, "", ServerError, RetriableError),
    ],
)
def test_failures_raise_the_tree(
    status: int, body: str, error: type[AmplitudeError], family: type[AmplitudeError]
) -> None:
    with pytest.raises(error) as info:
        classify(response(status, body), pool="user")
    exc = info.value
    assert isinstance(exc, family)
    assert exc.status == status
    assert exc.url == "/api/2/usersearch?user=***"
    assert "jane" not in str(exc) and "example.com" not in str(exc)


def test_401_hints_at_the_region() -> None:
    with pytest.raises(AuthenticationError) as info:
        classify(response(401, '{"error": "Invalid API key or secret key"}'))
    assert REGION_HINT in str(info.value)
    assert "analytics.eu.amplitude.com" in str(info.value)
    assert info.value.body_excerpt == '{"error": "Invalid API key or secret key"}'


def test_429_carries_pool_and_retry_after() -> None:
    with pytest.raises(RateLimited) as info:
        classify(response(429, "{}", {"Retry-After": "7"}), pool="deletion")
    assert info.value.pool == "deletion"
    assert info.value.retry_after == 7.0


def test_429_without_retry_after() -> None:
    with pytest.raises(RateLimited) as info:
        classify(response(429, "{}"), pool="user")
    assert info.value.retry_after is None


def test_body_excerpt_is_short_and_hides_emails() -> None:
    body = "unknown user jane.doe+x@example.com " + "x" * 500
    with pytest.raises(BadRequest) as info:
        classify(response(400, body))
    assert len(info.value.body_excerpt) <= 200
    assert "jane" not in info.value.body_excerpt
    assert "<email>" in info.value.body_excerpt


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Fri, 31 Dec 1999 23:59:59 GMT", 0.0),  # in the past
        ("Thu, 01 Jan 2032 00:00:10 GMT", 10.0),
        ("soon", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1956528000.0  # 2032-01-01T00:00:00Z
    assert parse_retry_after(value, now) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (URL, "/api/2/usersearch?user=***"),
        (
            "https://amplitude.com/api/2/useractivity?user=356893043036&offset=0&limit=1000",
            "/api/2/useractivity?limit=***&offset=***&user=***",
        ),
        (
            "https://amplitude.com/api/2/deletions/users/356893043036/2024-06-14",
            "/api/2/deletions/users/:id/2024-06-14",
        ),
        ("https://amplitude.com/api/2/dsar/requests/53367", "/api/2/dsar/requests/53367"),
        ("/api/2/events/list", "/api/2/events/list"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_scrub_keeps_plain_text() -> None:
    assert scrub('{"error": "rate limit exceeded"}') == '{"error": "rate limit exceeded"}'


@pytest.mark.parametrize(
    ("exc", "not_sent", "word"),
    [
        (httpx.ConnectError("refused"), True, "connection"),
        (httpx.ConnectTimeout("slow"), True, "in time"),
        (httpx.PoolTimeout("pool"), True, "in time"),
        (httpx.ReadTimeout("slow"), False, "in time"),
        (httpx.RemoteProtocolError("Server disconnected"), False, "connection"),
        (httpx.ReadError("reset"), False, "connection"),
        (httpx.WriteError("broken pipe"), False, "connection"),
    ],
)
def test_transport_errors(exc: httpx.TransportError, not_sent: bool, word: str) -> None:
    error = transport_error(exc, URL)
    error.__cause__ = exc
    assert isinstance(error, TransportError)
    assert error.status is None
    assert word in str(error)
    assert "jane" not in str(error)
    assert request_was_not_sent(error) is not_sent


@pytest.mark.parametrize(
    ("text", "charset"),
    [("é" * 3000, "utf-8"), ("mail a@b.example " * 400, "utf-8"), ("ü" * 2000, "latin-1"), ("short", "utf-8")],
)
def test_the_excerpt_decodes_only_the_head_of_a_body_and_reads_as_the_whole_text(text: str, charset: str) -> None:
    def response() -> httpx.Response:
        return httpx.Response(
            503, content=text.encode(charset), headers={"content-type": f"text/plain; charset={charset}"}
        )

    with pytest.raises(ServerError) as caught:
        classify(response())
    assert caught.value.body_excerpt == scrub(response().text)
    big = httpx.Response(200, content=b'{"k": "' + b"x" * 100_000 + b'"}')
    assert classify(big) == {"k": "x" * 100_000}
    assert getattr(big, "_text", None) is None  # the 2xx body was never decoded to text whole
