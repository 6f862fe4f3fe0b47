"""Signed status callbacks, delivered durably.

Each round of the delivery loop (a thread of every service process):

1. **Detect**: requests submitted through OpenDSR (or the DataGrail webhook) whose status
   differs from the last one whose callbacks were queued. OpenDSR hears of every state, DataGrail
   only of the final one. For each, one delivery row per callback URL is written, holding the
   exact status body, in the same transaction that records the state as notified (a
   compare-and-set, so two service processes never queue the same change twice).
2. **Deliver**: due deliveries are claimed (their next attempt moved past a lease) and POSTed
   with ``X-OpenDSR-Processor-Domain`` and ``X-OpenDSR-Signature`` (the signature of the raw
   body; ``X-OpenGDPR-*`` too). A 2xx answer delivers; anything else is recorded (status or
   error type) and retried after a capped exponential backoff, across restarts, until
   ``callback_max_attempts``.

The rows are the record: attempts, last attempt, last error, delivered or given up.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from datetime import UTC, datetime, timedelta

import httpx

from amplitude_dsr.errors import RequestNotFound
from amplitude_dsr.service import datagrail
from amplitude_dsr.service.context import Service
from amplitude_dsr.service.results import results_url
from amplitude_dsr.service.status import status_body
from amplitude_dsr.states import is_final
from amplitude_dsr.store import repo, service_repo

log = logging.getLogger("amplitude_dsr.service.callbacks")
JITTER = 0.1  # up to +10% on each wait, so retries of many deliveries spread out


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base, 2x, 4x, ... capped."""
    return float(min(cap, base * 2.0 ** max(0, attempts - 1)))


def jitter(delay: float, draw: float) -> float:
    """``delay`` stretched by ``draw`` (0..1) times :data:`JITTER`."""
    return delay * (1 + JITTER * draw)


def next_attempt(attempts: int, service: Service, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failures, or ``None`` to give up."""
    config = service.config
    if attempts >= config.callback_max_attempts:
        return None
    delay = jitter(backoff(attempts, config.callback_base_delay, config.callback_max_delay), random.random())
    return now + timedelta(seconds=delay)


def detect(service: Service) -> int:
    """Queue the callbacks of every status change not queued yet; returns how many changes."""
    engine = service.rt.engine
    queued = 0
    for change in service_repo.changed_requests(engine):
        try:
            row = repo.get_request(engine, change.mapped.request_id)
        except RequestNotFound:  # the request row is gone: nothing to say about it
            continue
        items = repo.items_for(engine, row.id) if row.kind == "deletion" else []
        bodies = callback_bodies(service, change.mapped, row, items)
        # The bodies describe the row as read now; the change recorded is that row's status.
        moved = service_repo.Change(change.mapped, row.status, final=is_final(row.kind, row.status))
        if service_repo.queue_callbacks(engine, moved, bodies):
            queued += 1
    return queued


def callback_bodies(
    service: Service, mapped: service_repo.MappedRequest, row: repo.RequestRow, items: list[repo.Item]
) -> dict[str, str]:
    """URL -> JSON body to send for the request's current state: OpenDSR's status document for
    every state; DataGrail's completion only for a final state (nothing otherwise)."""
    link = results_url(service, mapped.subject_request_id, row)
    if mapped.channel == datagrail.CHANNEL:
        if not is_final(row.kind, row.status):
            return {}
        return dict.fromkeys(mapped.callback_urls, datagrail.completion_body(mapped, row, items, link))
    return {
        url: json.dumps(
            status_body(
                subject_request_id=mapped.subject_request_id,
                controller_id=mapped.controller_id,
                domain=service.config.domain,
                row=row,
                items=items,
                callback_url=url,
                results_url=link,
            ),
            separators=(",", ":"),
        )
        for url in mapped.callback_urls
    }


def deliver_due(service: Service, client: httpx.Client) -> int:
    """POST every due delivery once; returns how many were delivered."""
    engine = service.rt.engine
    lease = timedelta(seconds=service.config.callback_timeout * 3)
    delivered = 0
    for delivery in service_repo.claim_due(engine, lease=lease):
        error = send(service, client, delivery)
        now = datetime.now(UTC)
        retry = None if error is None else next_attempt(delivery.attempts + 1, service, now)
        service_repo.record_attempt(engine, delivery.id, error=error, next_attempt_at=retry)
        if error is None:
            delivered += 1
        elif retry is None:
            log.warning("gave up a status callback of request %s: %s", delivery.subject_request_id, error)
    return delivered


def send(service: Service, client: httpx.Client, delivery: service_repo.Delivery) -> str | None:
    """One signed POST; ``None`` when the receiver answered 2xx, else a short error."""
    body = delivery.body.encode()
    headers = {"Content-Type": "application/json"}
    if delivery.channel == datagrail.CHANNEL:
        secret = service.config.datagrail_secret
        if not secret:
            return "no DataGrail secret configured to sign the callback"
        headers.update(datagrail.signed_headers(secret, body))
    else:
        signature = service.signer.sign(body)
        domain = service.config.domain
        headers.update({
            "X-OpenDSR-Processor-Domain": domain, "X-OpenDSR-Signature": signature,
            "X-OpenGDPR-Processor-Domain": domain, "X-OpenGDPR-Signature": signature,
        })  # fmt: skip
    try:
        response = client.post(delivery.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"transport error: {type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


class DeliveryLoop:
    """The thread that runs :func:`detect` and :func:`deliver_due` every ``delivery_interval``
    seconds until stopped. A round that fails (the database is away) is logged by type only and
    the next round tries again."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opendsr-callbacks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.service.config.callback_timeout + 5)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        with httpx.Client(timeout=self.service.config.callback_timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    detect(self.service)
                    deliver_due(self.service, client)
                except Exception as exc:
                    log.warning("callback round failed: %s", type(exc).__name__)
                self._stop.wait(self.service.config.delivery_interval)
