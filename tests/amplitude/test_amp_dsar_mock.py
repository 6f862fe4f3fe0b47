"""DSAR client edge cases over MockTransport: request shapes, redirects, streaming gunzip."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from amp_helpers import FakeClock

from amplitude_dsr.amplitude import Budget, DsarClient
from amplitude_dsr.amplitude.dsar import CHUNK_OUT, inflate, json_lines
from amplitude_dsr.config import OrgConfig
from amplitude_dsr.errors import AuthenticationError, MalformedResponse

LINES = [{"amplitude_id": 1, "event_type": f"e{i}", "app": 7} for i in range(50)]


def gz_lines(lines: list[dict[str, Any]], members: int = 1) -> bytes:
    text = "".join(json.dumps(line) + "\n" for line in lines).encode()
    step = max(1, len(text) // members)
    return b"".join(gzip.compress(text[i : i + step]) for i in range(0, len(text), step))


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
def dsar_for(
    org: OrgConfig, make_budget: Callable[..., Budget], clock: FakeClock
) -> Iterator[Callable[[Callable[[httpx.Request], httpx.Response]], DsarClient]]:
    budget = make_budget(clock=clock, sleep=clock.sleep)
    made: list[DsarClient] = []

    def make(handler: Callable[[httpx.Request], httpx.Response]) -> DsarClient:
        client = DsarClient(org, budget, transport=httpx.MockTransport(handler))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_create_sends_json_and_returns_the_request_id(dsar_for: Any) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"requestId": 53367})

    client = dsar_for(handler)
    assert client.create(amplitude_id=90102919293, start_date=date(2020, 4, 24), end_date=date(2022, 2, 20)) == 53367
    assert client.create(user_id="12345", start_date=date(2020, 4, 24), end_date=date(2020, 4, 24)) == 53367
    assert json.loads(seen[0].content) == {
        "amplitudeId": 90102919293,
        "startDate": "2020-04-24",
        "endDate": "2022-02-20",
    }
    assert json.loads(seen[1].content)["userId"] == "12345"
    assert seen[0].url.path == "/api/2/dsar/requests"
    with pytest.raises(ValueError):
        client.create(start_date=date(2020, 1, 1), end_date=date(2020, 1, 2))
    with pytest.raises(ValueError):
        client.create(amplitude_id=1, user_id="x", start_date=date(2020, 1, 1), end_date=date(2020, 1, 2))
    with pytest.raises(ValueError):
        client.create(amplitude_id=1, start_date=date(2020, 1, 2), end_date=date(2020, 1, 1))
    assert len(seen) == 2


def test_get_parses_status_and_urls(dsar_for: Any) -> None:
    body = {
        "requestId": 53367,
        "userId": 12345,
        "amplitudeId": "90102919293",
        "status": "done",
        "failReason": None,
        "urls": ["https://amplitude.com/api/2/dsar/requests/53367/outputs/0"],
        "expires": "2022-02-24",
        "newField": True,
    }
    client = dsar_for(lambda request: httpx.Response(200, json=body))
    got = client.get(53367)
    assert (got.request_id, got.user_id, got.amplitude_id, got.status) == (
        53367,
        "12345",
        90102919293,
        "done",
    )
    assert got.urls == body["urls"]


def test_output_follows_a_cross_host_redirect_without_credentials(dsar_for: Any) -> None:
    seen: list[httpx.Request] = []
    payload = gz_lines(LINES, members=3)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "amplitude.com":
            return httpx.Response(302, headers={"Location": "https://bucket.s3.amazonaws.com/x?sig=1"})
        if "authorization" in request.headers:
            return httpx.Response(400, text="Only one auth mechanism allowed")
        return httpx.Response(200, content=chunked(payload, 37))

    client = dsar_for(handler)
    rows = list(client.iter_output("https://amplitude.com/api/2/dsar/requests/53367/outputs/0"))
    assert rows == LINES
    assert "authorization" in seen[0].headers
    assert "authorization" not in seen[1].headers


def test_output_on_a_foreign_host_never_gets_credentials(dsar_for: Any) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=gz_lines(LINES[:2]))

    rows = list(dsar_for(handler).iter_output("https://evil.example/steal"))
    assert len(rows) == 2
    assert "authorization" not in seen[0].headers


def test_expired_output_link(dsar_for: Any) -> None:
    client = dsar_for(lambda request: httpx.Response(403, text="Request has expired"))
    with pytest.raises(AuthenticationError):
        list(client.iter_output("https://amplitude.com/api/2/dsar/requests/1/outputs/0"))


def test_inflate_handles_members_chunking_and_plain_text() -> None:
    data = gz_lines(LINES, members=4)
    for size in (1, 7, 1000, len(data)):
        assert list(json_lines(inflate(chunked(data, size)))) == LINES
    plain = b'{"a": 1}\n{"a": 2}'
    assert list(json_lines(inflate(chunked(plain, 3)))) == [{"a": 1}, {"a": 2}]


def test_inflate_output_is_bounded_per_step() -> None:
    bomb = gzip.compress(b"\n" * 20_000_000)
    sizes = [len(part) for part in inflate(chunked(bomb, 65536))]
    assert sum(sizes) == 20_000_000
    assert max(sizes) <= CHUNK_OUT


@pytest.mark.parametrize("bad", [b"{not json}\n", b"[1, 2]\n"])
def test_bad_lines_are_malformed(bad: bytes) -> None:
    with pytest.raises(MalformedResponse):
        list(json_lines(iter([b'{"ok": 1}\n', bad])))


def test_corrupt_gzip_is_malformed() -> None:
    data = bytearray(gz_lines(LINES))
    data[20:40] = b"\x00" * 20
    with pytest.raises(MalformedResponse):
        list(json_lines(inflate(iter([bytes(data)]))))
