"""DBOS steps: each one Amplitude call (or a small group) whose result is checkpointed, so a
restarted workflow never spends the budget twice for data it already has.

Steps raise the client's exceptions; :func:`call` (used by workflows) turns a deferred budget
into a durable sleep and transient failures into bounded, durable retries. While it sleeps on a
budget, the workflow's :data:`BUDGET_WAIT_EVENT` says which pool and until when, so a foreground
command can give up waiting (``api.wait``) instead of blocking silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from dbos import DBOS

from amplitude_dsr.amplitude.models import DsarRequest, Event, UserData, UserSearchResult
from amplitude_dsr.dsr.activity import PAGE_SIZE, EventStats, most_recent_session, needs_next_page
from amplitude_dsr.dsr.model import SessionSummary
from amplitude_dsr.dsr.runtime import current
from amplitude_dsr.errors import DeferredError, DsrError, RetriableError, UncertainOutcome
from amplitude_dsr.store import audit

log = logging.getLogger("amplitude_dsr.dsr")
T = TypeVar("T")

MAX_TRANSIENT_ROUNDS = 6  # durable retries of a step after the client's own retries ran out
TRANSIENT_SLEEP = 30.0  # seconds between those rounds (scaled by AMPLITUDE_DSR_RATE_SCALE)
# Workflow event set while the workflow sleeps on an exhausted budget: {"pool": name,
# "resume_at": ISO 8601 UTC}; None when it is not. Never holds an identifier or a secret.
BUDGET_WAIT_EVENT = "budget_wait"


def call(step: Callable[..., T], *args: Any) -> T:
    """Run ``step`` inside a workflow, sleeping durably while budgets are exhausted and retrying
    transient failures a bounded number of times. Fatal and uncertain outcomes propagate."""
    rounds = 0
    while True:
        try:
            return step(*args)
        except DeferredError as exc:
            wait = max(1.0, (exc.resume_at - datetime.now(UTC)).total_seconds())
            log.info("budget %s exhausted; sleeping %.0f s durably", exc.pool or "?", wait)
            # Published before the sleep (a foreground ``wait`` reads it) and cleared after it;
            # both are checkpointed, so a recovered workflow replays them without re-publishing.
            DBOS.set_event(BUDGET_WAIT_EVENT, budget_wait_value(exc))
            DBOS.sleep(wait)
            DBOS.set_event(BUDGET_WAIT_EVENT, None)
        except UncertainOutcome:
            raise
        except RetriableError:
            rounds += 1
            if rounds >= MAX_TRANSIENT_ROUNDS:
                raise
            DBOS.sleep(TRANSIENT_SLEEP / max(1.0, current().settings.rate_scale))


def budget_wait_value(exc: DeferredError) -> dict[str, str]:
    """The :data:`BUDGET_WAIT_EVENT` value for a deferral: the pool and when it resumes (UTC)."""
    return {"pool": exc.pool, "resume_at": exc.resume_at.astimezone(UTC).isoformat()}


@DBOS.step(retries_allowed=False)
def search_step(project: str, term: str) -> UserSearchResult:
    """One User Search call (user pool)."""
    return current().client(project).user_search(term)


@dataclass
class ActivityOutcome:
    """What one subject's User Activity paging produced (events are on disk)."""

    user_data: UserData
    events_path: str | None
    event_count: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    sessions: list[SessionSummary] = field(default_factory=list)
    pages: int = 0
    recent_session_complete: bool = True


@DBOS.step(retries_allowed=False)
def activity_step(
    request_id: str, project: str, amplitude_id: int, keep_events: bool, full_history: bool
) -> ActivityOutcome:
    """User Activity for one user: page 1 (summary + most recent events), more pages only while
    the most recent session continues (or every page with ``full_history``). Events are
    de-duplicated by ``uuid`` and written to a JSON-lines work file."""
    rt = current()
    client = rt.client(project)
    if not keep_events:
        first = client.user_activity(amplitude_id, limit=1)
        return ActivityOutcome(user_data=first.user_data, events_path=None, pages=1)
    path = rt.work_dir(request_id) / f"{project}-{amplitude_id}.activity.jsonl"
    stats = EventStats()
    offset, pages, recent, user_data = 0, 0, None, None
    with path.open("w", encoding="utf-8") as out:
        while True:
            page = client.user_activity(amplitude_id, offset=offset, limit=PAGE_SIZE)
            pages += 1
            user_data = user_data or page.user_data
            recent = recent if recent is not None else most_recent_session(page.events)
            for event in stats.add(page.events):
                out.write(json.dumps(event.to_wire(), separators=(",", ":"), default=str) + "\n")
            if not needs_next_page(page.events, limit=PAGE_SIZE, full_history=full_history, recent_session=recent):
                break
            offset += PAGE_SIZE
    assert user_data is not None
    return ActivityOutcome(
        user_data=user_data, events_path=str(path), event_count=stats.count,
        events_by_type=dict(stats.by_type), sessions=stats.session_summaries(), pages=pages,
    )  # fmt: skip


@DBOS.step(retries_allowed=False)
def dsar_create_step(amplitude_id: int, start: date, end: date) -> int:
    """Create a DSAR export (DSAR pool, cost 8)."""
    dsar = current().dsar()
    assert dsar is not None
    return dsar.create(amplitude_id=amplitude_id, start_date=start, end_date=end)


@DBOS.step(retries_allowed=False)
def dsar_get_step(dsar_request_id: int) -> DsarRequest:
    """Poll a DSAR export (DSAR pool, cost 1)."""
    dsar = current().dsar()
    assert dsar is not None
    return dsar.get(dsar_request_id)


@dataclass
class DsarDownload:
    """One subject's DSAR export merged with its User Activity events (on disk at ``path``)."""

    path: str
    files: int
    event_count: int
    events_by_type: dict[str, int]
    sessions: list[SessionSummary]
    dsar_events: int = 0


@DBOS.step(retries_allowed=False)
def dsar_download_step(
    request_id: str, project: str, amplitude_id: int, urls: list[str], activity_path: str | None = None
) -> DsarDownload:
    """Download every output file (streamed, gunzipped line by line) into one JSON-lines file,
    then add the User Activity events the export does not hold (matched by ``uuid``), so the
    subject's export is the union of both without duplicates. Only the activity keys are held
    in memory, never the export."""
    rt = current()
    dsar = rt.dsar()
    assert dsar is not None
    activity_keys = {e.dedupe_key() for e in _read_events(activity_path)}
    in_export: set[str] = set()
    path = rt.work_dir(request_id) / f"{project}-{amplitude_id}.dsar.jsonl"
    stats = EventStats(dedupe=False)
    with path.open("w", encoding="utf-8") as out:
        for url in urls:
            for line in dsar.iter_output(url):
                event = Event.model_validate(line)
                key = event.dedupe_key()
                if key in activity_keys:
                    in_export.add(key)
                stats.add([event])
                out.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")
        dsar_events = stats.count
        for event in _read_events(activity_path):
            if event.dedupe_key() not in in_export:
                stats.add([event])
                out.write(json.dumps(event.to_wire(), separators=(",", ":"), default=str) + "\n")
    return DsarDownload(str(path), len(urls), stats.count, dict(stats.by_type), stats.session_summaries(), dsar_events)


def _read_events(path: str | None) -> Iterator[Event]:
    if not path:
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield Event.model_validate_json(line)


@DBOS.step()
def audit_step(request_id: str, kind: str, detail: dict[str, Any]) -> None:
    """Append to the hash-chained audit trail (retried by DBOS: the append is idempotent enough
    because the step is checkpointed once it returns)."""
    with current().engine.begin() as conn:
        audit.append(conn, request_id, kind, detail)


def fatal_message(exc: Exception) -> str:
    """A one-line, identifier-free reason for a failed request."""
    if isinstance(exc, DsrError):  # deliberate errors carry identifier-free messages
        return str(exc)
    return f"{type(exc).__name__}: unexpected error (see logs)"
