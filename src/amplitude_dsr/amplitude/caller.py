"""One budgeted, classified, retried HTTP call: the loop both clients share.

Each attempt spends from the pool's budget (``Budget.acquire``), sends once, and goes through
:func:`~amplitude_dsr.amplitude.transport.classify`. Then:

* 429: the pool is paused for every process (``Budget.pause``) for the backoff, and the next
  attempt waits it out inside ``acquire``; out of attempts or time -> ``BudgetExhausted``.
* 5xx / transport failure: retried with capped backoff for safe calls; for unsafe calls
  (deletion POST/DELETE) -> ``UncertainOutcome`` unless the request provably never left.
* anything else: raised as classified.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from json import loads as json_loads
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from amplitude_dsr.amplitude import hosts
from amplitude_dsr.amplitude.budget import Budget
from amplitude_dsr.amplitude.limits import pool_spec
from amplitude_dsr.amplitude.retry import (
    SERVER_BACKOFF,
    backoff_delay,
    is_concurrency_limit,
    out_of_retries,
    rate_limit_backoff,
    should_retry,
)
from amplitude_dsr.amplitude.transport import (
    classify,
    install_log_redaction,
    redact_url,
    request_was_not_sent,
    transport_error,
)
from amplitude_dsr.config import Credentials
from amplitude_dsr.errors import (
    BudgetExhausted,
    MalformedResponse,
    RateLimited,
    RetriableError,
    UncertainOutcome,
    UnexpectedStatus,
)

log = logging.getLogger("amplitude_dsr.amplitude")
USER_AGENT = "amplitude-dsr/0.1 (+https://github.com/amplitude-dsr)"

M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any, url: str) -> M:
    """``data`` validated as ``model``; a mismatch becomes :class:`MalformedResponse` whose
    message names the failing fields only (pydantic messages echo values: identifiers)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors()[:3])
        raise MalformedResponse(
            f"Amplitude response does not have the documented shape ({model.__name__}: {where})",
            url=url,
        ) from None


class Caller:
    """HTTP plumbing for one credential: Basic auth, host by region, budget scope, retries."""

    def __init__(
        self,
        credentials: Credentials,
        budget: Budget,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None,
        max_attempts: int,
        max_retry_time: float,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.budget = budget
        self.base_url = hosts.base_url(credentials)
        self.scope = hosts.scope_key(credentials)
        install_log_redaction()
        self.max_attempts = max_attempts
        self.max_retry_time = max_retry_time
        self.jitter = jitter
        self.auth = httpx.BasicAuth(credentials.api_key.get_secret_value(), credentials.secret_key.get_secret_value())
        self.http = httpx.Client(
            base_url=self.base_url,
            auth=self.auth,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        pool: str,
        safe: bool,
        cost: int = 1,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        decode: Callable[[bytes], Any] = json_loads,
        stream: StreamRead | None = None,
    ) -> Any:
        """Send ``method path`` within ``pool``'s budget and return the JSON body parsed by ``decode``.

        ``safe`` says whether repeating the call after a 5xx or timeout is harmless. ``stream``
        reads a 2xx body from its chunks as they arrive (a job listing: ``listing.read_listing``);
        a body it gives back whole goes to ``decode`` as any other.
        """
        url = redact_url(httpx.URL(path, params=dict(params or {})))
        return self.run(
            lambda: self._send(method, path, params=params, json=json, pool=pool, decode=decode, stream=stream),
            pool=pool,
            safe=safe,
            cost=cost,
            url=url,
        )

    def run(self, attempt_once: Callable[[], Any], *, pool: str, safe: bool, cost: int, url: str) -> Any:
        """The retry loop around ``attempt_once`` (one budgeted HTTP exchange)."""
        clock = self.budget.clock
        started = clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.budget.acquire(pool, self.scope, cost):
                    return attempt_once()
            except RateLimited as exc:
                self._after_rate_limit(exc, pool, attempt, started, url)
            except RetriableError as exc:
                # Divided by rate_scale like every other wait: an emulator run compresses time.
                scale = max(1.0, self.budget.rate_scale)
                delay = backoff_delay(
                    attempt, None, SERVER_BACKOFF.base / scale, SERVER_BACKOFF.cap / scale, self.jitter()
                )
                elapsed = clock() - started
                give_up = out_of_retries(attempt, elapsed, delay, self.max_attempts, self.max_retry_time)
                if not should_retry(exc, safe=safe) or give_up:
                    if not safe and not request_was_not_sent(exc):
                        raise UncertainOutcome(
                            "the call may or may not have reached Amplitude "
                            f"({type(exc).__name__}); reconcile by reading state, never re-send",
                            status=exc.status,
                            url=exc.url,
                            body_excerpt=exc.body_excerpt,
                        ) from exc
                    raise
                log.info(
                    "retrying %s after %s (attempt %d, wait %.2fs)",
                    url,
                    type(exc).__name__,
                    attempt,
                    delay,
                )
                self.budget.sleep(delay)

    def _after_rate_limit(self, exc: RateLimited, pool: str, attempt: int, started: float, url: str) -> None:
        spec = pool_spec(pool)
        concurrency = is_concurrency_limit(exc.body_excerpt)
        backoff = rate_limit_backoff(spec, self.budget.rate_scale, concurrency)
        delay = backoff_delay(attempt, exc.retry_after, backoff.base, backoff.cap, self.jitter())
        now = self.budget.clock()
        resume = now + delay
        self.budget.pause(pool, self.scope, resume, slow_down=not concurrency)
        log.warning("429 from Amplitude on %s: %s pool paused %.2fs (attempt %d)", url, pool, delay, attempt)
        if out_of_retries(attempt, now - started, delay, self.max_attempts, self.max_retry_time):
            raise BudgetExhausted(
                f"Amplitude kept refusing calls in the {pool} pool (HTTP 429)",
                resume_at=datetime.fromtimestamp(resume, UTC),
                pool=pool,
            ) from exc

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None,
        json: Any,
        pool: str,
        decode: Callable[[bytes], Any] = json_loads,
        stream: StreamRead | None = None,
    ) -> Any:
        try:
            if stream is None:
                response = self.http.request(method, path, params=params, json=json)
            else:
                streamed = self.http.send(self.http.build_request(method, path, params=params, json=json), stream=True)
                try:
                    response = streamed
                    if 200 <= streamed.status_code < 300:
                        data, whole = stream(streamed.iter_bytes())
                        if whole is None:
                            log.debug("%s %s -> %d", method, redact_url(streamed.request.url), streamed.status_code)
                            return data
                        response = _with_body(streamed, whole)
                    else:
                        streamed.read()
                finally:
                    streamed.close()
        except httpx.TransportError as exc:
            raise transport_error(exc, httpx.URL(path)) from exc
        except httpx.DecodingError as exc:
            raise MalformedResponse("Amplitude sent an undecodable body", url=redact_url(path)) from exc
        except httpx.TooManyRedirects as exc:
            raise UnexpectedStatus("too many redirects", url=redact_url(path)) from exc
        log.debug("%s %s -> %d", method, redact_url(response.request.url), response.status_code)
        return classify(response, pool=pool, now=self.budget.clock(), decode=decode)


StreamRead = Callable[[Iterator[bytes]], tuple[Any, bytes | None]]  # (data, None) or (None, the whole body)


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """``response`` as if read whole: the same status and headers (but how its body was
    encoded on the wire: ``body`` is already decoded) with ``body``."""
    headers = [
        (k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request)


class CallerOwner:
    """What both clients share around their :class:`Caller`: its host, closing, ``with``."""

    _caller: Caller

    @property
    def base_url(self) -> str:
        """The API host this client talks to (region default or override)."""
        return self._caller.base_url

    def close(self) -> None:
        """Close the HTTP connections."""
        self._caller.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
