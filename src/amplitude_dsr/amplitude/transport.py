"""The one place where an HTTP outcome becomes a result or an exception from ``errors.py``.

:func:`classify` turns an :class:`httpx.Response` into parsed JSON or raises;
:func:`transport_error` does the same for an :class:`httpx.TransportError` raised before a
response arrived. Messages carry the status, a redacted URL (path only; query values and long
numeric path segments such as Amplitude IDs replaced) and a scrubbed body excerpt. Never a
secret, an email or a user ID.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from amplitude_dsr.errors import (
    AmplitudeError,
    AuthenticationError,
    BadRequest,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedStatus,
)

REGION_HINT = "check the key, secret and region (EU keys only work on analytics.eu.amplitude.com)"
EXCERPT_CHARS = 200
_EMAIL = re.compile(r"[^\s\"'<>,;:@]+@[^\s\"'<>,;:@]+")
_LONG_NUMBER = re.compile(r"^\d{7,}$")


def redact_url(url: httpx.URL | str) -> str:
    """``url`` as path only, query keys kept with values hidden, long numeric segments (IDs)
    replaced: ``/api/2/usersearch?user=***``."""
    url = httpx.URL(str(url))
    segments = [":id" if _LONG_NUMBER.match(s) else s for s in url.path.split("/")]
    path = "/".join(segments)
    keys = sorted({key for key, _ in url.params.multi_items()})
    return f"{path}?{'&'.join(f'{k}=***' for k in keys)}" if keys else path


def scrub(text: str) -> str:
    """``text`` cut to :data:`EXCERPT_CHARS` with anything shaped like an email hidden."""
    return _EMAIL.sub("<email>", text[: EXCERPT_CHARS * 2])[:EXCERPT_CHARS]


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), ``None`` when
    absent or unreadable. Negative values become 0; clamping is the backoff's job."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _excerpt(response: httpx.Response) -> str:
    """:func:`scrub` of the body's text. Only its head is decoded: ``response.text`` would decode
    (and keep) the whole body, 10 MB for a job listing of 100,000 IDs (``bench/PROBLEMS.md`` P-8).
    The head holds at least the characters :func:`scrub` reads (4 bytes a character at most)."""
    try:
        content = response.content
        head = content[: EXCERPT_CHARS * 8]
        if len(head) == len(content):
            return scrub(response.text)
        decoder = codecs.getincrementaldecoder(response.encoding or "utf-8")(errors="replace")
        return scrub(decoder.decode(head))
    except (httpx.ResponseNotRead, UnicodeDecodeError, LookupError):
        return ""


def classify(
    response: httpx.Response,
    *,
    pool: str = "",
    now: float | None = None,
    decode: Callable[[bytes], Any] = json.loads,
) -> Any:
    """Parsed JSON of a 2xx ``response`` (``None`` for an empty body; ``decode`` parses it: a
    deletion listing is decoded compactly, ``amplitude/listing.py``), else raise.

    ======================  ===========================================================
    status                  outcome
    ======================  ===========================================================
    2xx, JSON body          the parsed JSON
    2xx, empty body         ``None``
    2xx, not JSON           :class:`MalformedResponse`
    400, 422                :class:`BadRequest`
    401, 403                :class:`AuthenticationError` (message has the region hint)
    404                     :class:`NotFound`
    429                     :class:`RateLimited` (``pool``, ``retry_after`` from the header)
    5xx                     :class:`ServerError`
    anything else           :class:`UnexpectedStatus`
    ======================  ===========================================================
    """
    status = response.status_code
    try:
        url = redact_url(response.request.url)
    except RuntimeError:  # a Response built by hand has no request
        url = ""
    body = _excerpt(response)
    if 200 <= status < 300:
        if not response.content.strip():
            return None
        try:
            return decode(response.content)
        except ValueError:
            raise MalformedResponse(
                "Amplitude returned a body that is not JSON",
                status=status,
                url=url,
                body_excerpt=body,
            ) from None
    raise error_for_status(
        status,
        url,
        body,
        retry_after_header=response.headers.get("retry-after"),
        pool=pool,
        now=now,
    )


def error_for_status(
    status: int,
    url: str,
    body: str,
    *,
    retry_after_header: str | None = None,
    pool: str = "",
    now: float | None = None,
) -> AmplitudeError:
    """The exception for a non-2xx ``status`` (see :func:`classify`)."""
    kwargs: dict[str, Any] = {"status": status, "url": url, "body_excerpt": body}
    if status in (400, 422):
        return BadRequest("Amplitude refused the request parameters", **kwargs)
    if status == 401:
        return AuthenticationError(f"Amplitude rejected the credentials: {REGION_HINT}", **kwargs)
    if status == 403:
        return AuthenticationError(
            f"Amplitude refused access (missing permission, or an expired link): {REGION_HINT}",
            **kwargs,
        )
    if status == 404:
        return NotFound("Amplitude has no such resource", **kwargs)
    if status == 429:
        clock = datetime.now(UTC).timestamp() if now is None else now
        retry_after = parse_retry_after(retry_after_header, clock)
        return RateLimited(
            f"Amplitude rate limit hit ({pool or 'unknown'} pool)",
            pool=pool,
            retry_after=retry_after,
            **kwargs,
        )
    if 500 <= status < 600:
        return ServerError("Amplitude had a server error", **kwargs)
    return UnexpectedStatus(f"Amplitude returned unexpected HTTP {status}", **kwargs)


# Failures that happen before a single byte of the request can have reached Amplitude.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def request_was_not_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves the request never reached the server (nothing happened), so even
    a non-idempotent call may be repeated."""
    cause = exc.__cause__ if isinstance(exc, TransportError) else exc
    return isinstance(cause, _NOT_SENT)


def transport_error(exc: httpx.TransportError, url: httpx.URL | str) -> TransportError:
    """A :class:`TransportError` for a network failure or timeout; chain it with ``from exc``.
    The message names the failure kind only (httpx messages may echo hosts, never secrets,
    but we keep it minimal)."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        message = f"no response from Amplitude in time ({kind})"
    else:
        message = f"connection to Amplitude failed ({kind})"
    return TransportError(message, url=redact_url(url))


class RedactHttpxUrls(logging.Filter):
    """Rewrites the URLs httpx logs at INFO ("HTTP Request: GET https://...?user=jane%40...")
    to their redacted form: query values carry emails and user IDs."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact any URL argument of ``record``; never drops the record."""
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                f"{a.scheme}://{a.netloc.decode('ascii', 'replace')}{redact_url(a)}" if isinstance(a, httpx.URL) else a
                for a in record.args
            )
        return True


_HTTPX_FILTER = RedactHttpxUrls()


def install_log_redaction() -> None:
    """Attach :class:`RedactHttpxUrls` to the ``httpx`` logger (idempotent)."""
    logger = logging.getLogger("httpx")
    if _HTTPX_FILTER not in logger.filters:
        logger.addFilter(_HTTPX_FILTER)
