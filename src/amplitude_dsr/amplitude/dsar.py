"""The org-key client for the DSAR export API (facts: ``docs/amplitude.md#dsar-export-api``).

All DSAR endpoints share one budget per org: 14,400 cost per hour, POST 8, every GET 1
(status polls and output downloads alike). Output files are gzipped JSON lines, reached through
a redirect to storage that must not receive our ``Authorization`` header.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

import httpx

from amplitude_dsr.amplitude import hosts
from amplitude_dsr.amplitude.budget import Budget
from amplitude_dsr.amplitude.caller import Caller, CallerOwner, parse_model
from amplitude_dsr.amplitude.limits import DSAR_GET_COST, DSAR_POST_COST
from amplitude_dsr.amplitude.models import DsarCreated, DsarRequest
from amplitude_dsr.amplitude.transport import classify, redact_url, transport_error
from amplitude_dsr.config import OrgConfig
from amplitude_dsr.errors import MalformedResponse, UnexpectedStatus

DSAR_REQUESTS = "/api/2/dsar/requests"
CHUNK_OUT = 64 * 1024  # most bytes inflated from one step of input: memory stays bounded
MAX_LINE = 64 * 1024 * 1024  # one JSON line larger than this is refused, not buffered
GZIP_MAGIC = b"\x1f\x8b"


def inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompressed bytes of a gzip stream (several members allowed) given in ``chunks``;
    bytes that do not start with the gzip magic pass through unchanged. Memory stays bounded by
    :data:`CHUNK_OUT` per step whatever the compression ratio."""
    decoder: Any = None
    started = False
    for chunk in chunks:
        if not started:
            if not chunk:
                continue
            started = True
            if not chunk.startswith(GZIP_MAGIC[: len(chunk)]):
                decoder = None
                yield chunk
                continue
            decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif decoder is None:
            yield chunk
            continue
        data = chunk
        while data:
            try:
                out = decoder.decompress(data, CHUNK_OUT)
            except zlib.error as exc:
                raise MalformedResponse(f"DSAR output is not valid gzip ({exc})") from None
            if out:
                yield out
            if decoder.eof:
                data = decoder.unused_data
                decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
            else:
                data = decoder.unconsumed_tail
        if decoder is not None and not decoder.eof:
            # Drain output held back by max_length once the input step is consumed.
            while True:
                out = decoder.decompress(b"", CHUNK_OUT)
                if not out:
                    break
                yield out
    if decoder is not None:
        tail = decoder.flush()
        if tail:
            yield tail


def json_lines(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """One JSON object per non-empty line of the byte stream ``chunks``, parsed incrementally."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield _parse_line(line)
        if len(pending) > MAX_LINE:
            raise MalformedResponse("DSAR output has a line larger than 64 MiB")
    if pending.strip():
        yield _parse_line(pending)


def _parse_line(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        raise MalformedResponse("DSAR output has a line that is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedResponse("DSAR output has a line that is not a JSON object")
    return value


class DsarClient(CallerOwner):
    """The DSAR export API with org-level keys (from Amplitude Support), sync and budgeted."""

    def __init__(
        self,
        org: OrgConfig,
        budget: Budget,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        max_attempts: int = 5,
        max_retry_time: float = 120.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._caller = Caller(
            org,
            budget,
            timeout=timeout,
            transport=transport,
            max_attempts=max_attempts,
            max_retry_time=max_retry_time,
            jitter=jitter,
        )

    def __repr__(self) -> str:
        return f"DsarClient(base_url={self.base_url!r})"

    def create(
        self,
        *,
        amplitude_id: int | None = None,
        user_id: str | None = None,
        start_date: date,
        end_date: date,
    ) -> int:
        """``POST /api/2/dsar/requests``: start an export for one user; returns ``requestId``.
        Costs 8. Retried after a 5xx/timeout (a duplicate export job is harmless, only costs)."""
        if (amplitude_id is None) == (user_id is None):
            raise ValueError("give exactly one of amplitude_id and user_id")
        if end_date < start_date:
            raise ValueError("end_date is before start_date")
        body: dict[str, Any] = {
            "startDate": start_date.isoformat(),
            "endDate": end_date.isoformat(),
        }
        if amplitude_id is not None:
            body["amplitudeId"] = int(amplitude_id)
        else:
            body["userId"] = str(user_id)
        data = self._caller.call("POST", DSAR_REQUESTS, pool="dsar", safe=True, cost=DSAR_POST_COST, json=body)
        return parse_model(DsarCreated, data, DSAR_REQUESTS).request_id

    def get(self, request_id: int) -> DsarRequest:
        """``GET /api/2/dsar/requests/{request_id}``: status and, once ``done``, the output
        URLs and their expiry date. Costs 1."""
        path = f"{DSAR_REQUESTS}/{int(request_id)}"
        data = self._caller.call("GET", path, pool="dsar", safe=True, cost=DSAR_GET_COST)
        return parse_model(DsarRequest, data, path)

    def iter_output(self, url: str) -> Iterator[dict[str, Any]]:
        """Stream one output file: follow the redirect to storage (httpx drops the
        ``Authorization`` header when the redirect changes host), gunzip and yield one JSON
        object per line with constant memory. Costs 1.

        Credentials go only to the configured host or an ``https`` Amplitude host; any other
        URL (for example a presigned storage link) is fetched without them. Opening is retried
        like any safe GET; a failure mid-stream raises
        :class:`~amplitude_dsr.errors.TransportError` (restart the file from the beginning).
        """
        target = httpx.URL(url)
        auth: httpx.Auth | None = None
        if hosts.is_amplitude_origin(target, httpx.URL(self.base_url)):
            auth = self._caller.auth
        redacted = redact_url(target)
        response: httpx.Response = self._caller.run(
            lambda: self._open(target, auth),
            pool="dsar",
            safe=True,
            cost=DSAR_GET_COST,
            url=redacted,
        )
        try:
            yield from json_lines(inflate(self._body(response, redacted)))
        finally:
            response.close()

    def _open(self, target: httpx.URL, auth: httpx.Auth | None) -> httpx.Response:
        http = self._caller.http
        request = http.build_request("GET", target)
        try:
            # auth=None sends no credentials at all; httpx strips Authorization itself when a
            # redirect leaves the origin (storage rejects it, like S3).
            response = http.send(request, auth=auth, follow_redirects=True, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc, target) from exc
        except httpx.TooManyRedirects as exc:
            raise UnexpectedStatus("too many redirects", url=redact_url(target)) from exc
        if not 200 <= response.status_code < 300:
            try:
                response.read()
            finally:
                response.close()
            classify(response, pool="dsar", now=self._caller.budget.clock())
        return response

    @staticmethod
    def _body(response: httpx.Response, redacted: str) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise transport_error(exc, redacted) from exc
        except httpx.DecodingError as exc:
            raise MalformedResponse("DSAR output could not be decoded", url=redacted) from exc
