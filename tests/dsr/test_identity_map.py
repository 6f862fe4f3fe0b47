"""The identity map: a CSV file or the operator's HTTP lookup (httpx.MockTransport)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from amplitude_dsr.dsr import identity_map
from amplitude_dsr.errors import UsageError


def write(tmp_path: Path, text: str, name: str = "map.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_keeps_only_the_wanted_emails_case_insensitively(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        " Email , User_ID \nJane@Example.com,U-1\njane@example.com,U-2\njane@example.com,U-1\nbob@x.co,B\nx@y.co,\n",
    )
    assert identity_map.load_csv(path, ["JANE@example.com", "nobody@x.co", "x@y.co"]) == {
        "jane@example.com": ["U-1", "U-2"]  # user IDs verbatim (case-sensitive), no duplicates
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("mail,id\na@b.co,1\n", "needs the columns email,user_id"),
        ("", "needs the columns email,user_id"),
    ],
)
def test_csv_without_the_columns_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        identity_map.load_csv(write(tmp_path, content), ["a@b.co"])


def test_csv_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="identity map not found"):
        identity_map.load_csv(tmp_path / "nope.csv", ["a@b.co"])
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"email,user_id\n\xff\xfe,1\n")
    with pytest.raises(UsageError, match="cannot read identity map"):
        identity_map.load_csv(bad, ["a@b.co"])


def lookup(handler: httpx.MockTransport, emails: list[str]) -> dict[str, list[str]]:
    return identity_map.lookup_http("https://ids.example/lookup", emails, transport=handler)


def test_http_lookup_asks_once_per_email_and_keeps_answers() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        email = request.url.params["email"]
        seen.append(email)
        if email == "jane@example.com":
            return httpx.Response(200, json={"user_ids": ["U-1", 42]})
        if email == "empty@example.com":
            return httpx.Response(200, json={"user_ids": []})
        return httpx.Response(404)

    got = lookup(httpx.MockTransport(handler), ["jane@example.com", "empty@example.com", "Nobody@example.com"])
    assert got == {"jane@example.com": ["U-1", "42"]}
    assert seen == ["jane@example.com", "empty@example.com", "Nobody@example.com"]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500), "answered HTTP 500"),
        (httpx.Response(401), "answered HTTP 401"),
        (httpx.Response(200, content=b"not json"), "did not answer"),
        (httpx.Response(200, json=["U-1"]), "did not answer"),
    ],
)
def test_http_lookup_failures_are_usage_errors_without_the_email(response: httpx.Response, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        lookup(httpx.MockTransport(lambda request: response), ["secret.person@example.com"])
    assert "secret.person" not in str(info.value)


def test_http_lookup_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UsageError, match="unreachable"):
        lookup(httpx.MockTransport(handler), ["a@b.co"])


def test_build_dispatches_on_the_source(tmp_path: Path) -> None:
    path = write(tmp_path, "email,user_id\na@b.co,U\n")
    assert identity_map.build(str(path), ["a@b.co"]) == {"a@b.co": ["U"]}
    assert identity_map.build(None, ["a@b.co"]) == {}
    assert identity_map.build(str(path), []) == {}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("ftp://example.com/map", "http:// or https://"),
        ("https://", "http:// or https://"),
        ("/nonexistent/map.csv", "identity map not found"),
    ],
)
def test_check_source_refuses_unusable_maps(source: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        identity_map.check_source(source)


def test_check_source_accepts_usable_maps(tmp_path: Path) -> None:
    identity_map.check_source(None)
    identity_map.check_source("https://ids.example/lookup")
    identity_map.check_source(str(write(tmp_path, "email,user_id\n")))
