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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from dbos import DBOS
from dbos._context import snapshot_step_context
from dbos._core import record_sleep
from dbos._dbos import _get_dbos_instance

from amplitude_dsr.amplitude.models import DsarRequest, Event, UserData, UserSearchResult
from amplitude_dsr.dsr.activity import PAGE_SIZE, EventStats, most_recent_session, needs_next_page
from amplitude_dsr.dsr.dbfaults import db_step, is_transient_db_error
from amplitude_dsr.dsr.model import SessionSummary
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.errors import (
    AuthenticationError,
    DeferredError,
    DsrError,
    OutputUnwritable,
    RetriableError,
    ShuttingDown,
    UncertainOutcome,
)
from amplitude_dsr.store import audit, pauses

log = logging.getLogger("amplitude_dsr.dsr")
T = TypeVar("T")

# Durable retries of a read-only step after the client's own inline retries ran out: capped
# exponential backoff (divided by AMPLITUDE_DSR_RATE_SCALE), for as long as the request's horizon
# allows (see docs/operations.md, "Transient faults").
TRANSIENT_BASE = 30.0
TRANSIENT_CAP = 900.0
# Workflow event set while the workflow sleeps on an exhausted budget: {"pool": name,
# "resume_at": ISO 8601 UTC}; None when it is not. Never holds an identifier or a secret.
BUDGET_WAIT_EVENT = "budget_wait"
# Workflow event set while the workflow waits for a project's refused credentials to work again:
# {"project": name, "since": ISO 8601 UTC}; None when it is not.
PAUSE_EVENT = "credentials_pause"
OUTAGE_LOG_EVERY = 600.0  # seconds: one log line per kind of outage per process


@dataclass(frozen=True)
class RetryPolicy:
    """How :func:`call` treats faults that waiting fixes, for the workflow that set it.

    ``horizon``: the moment (UTC) after which a transient fault is given up and propagates
    (``None``: never). ``pause_on_auth``: a refused credential (HTTP 401/403) pauses the
    project's requests until the keys work again instead of failing them (deletions, whose jobs
    Amplitude may already hold)."""

    horizon: datetime | None = None
    pause_on_auth: bool = False


_policy: ContextVar[RetryPolicy | None] = ContextVar("amplitude_dsr_retry_policy", default=None)
_outages: dict[str, float] = {}
_outages_lock = threading.Lock()


@contextmanager
def retry_policy(policy: RetryPolicy) -> Iterator[RetryPolicy]:
    """Apply ``policy`` to every :func:`call` made inside the block (in this workflow thread)."""
    token = _policy.set(policy)
    try:
        yield policy
    finally:
        _policy.reset(token)


def transient_wait(attempt: int, rate_scale: float) -> float:
    """Seconds before durable retry ``attempt + 1`` of a transient fault (``attempt`` from 1)."""
    scale = max(rate_scale, 1.0)
    return min(TRANSIENT_CAP, TRANSIENT_BASE * 2.0 ** min(attempt - 1, 16)) / scale


def gives_up(now: datetime, wait: float, horizon: datetime | None) -> bool:
    """Whether a transient fault propagates: the next retry would start after ``horizon``."""
    return horizon is not None and now.timestamp() + wait > horizon.timestamp()


def call(rt: Runtime, step: Callable[..., T], *args: Any) -> T:
    """Run ``step(rt, *args)`` inside a workflow; every fault that waiting fixes becomes a
    durable sleep (:func:`pause`).

    * an exhausted budget: sleep until it has room (published as :data:`BUDGET_WAIT_EVENT`);
    * a transient fault (5xx, network, an unreadable body, a package our own disk refused):
      capped exponential backoff until the
      :class:`RetryPolicy` horizon, logged once per outage;
    * refused credentials under ``pause_on_auth``: the project is paused (recorded, shown by
      ``status``, logged once) and the call is retried every poll interval until the keys work.

    An uncertain outcome and every other fault propagate."""
    policy = _policy.get() or RetryPolicy()
    attempts = 0
    paused: str | None = None
    while True:
        if rt.closed:
            raise ShuttingDown("this process is shutting down; the workflow resumes from its last step elsewhere")
        try:
            result = step(rt, *args)
        except DeferredError as exc:
            wait = max(1.0, (exc.resume_at - datetime.now(UTC)).total_seconds())
            log.info("budget %s exhausted; sleeping %.0f s durably", exc.pool or "?", wait)
            # Published before the sleep (a foreground ``wait`` reads it) and cleared after it;
            # both are checkpointed, so a recovered workflow replays them without re-publishing.
            DBOS.set_event(BUDGET_WAIT_EVENT, budget_wait_value(exc))
            pause(rt, wait)
            DBOS.set_event(BUDGET_WAIT_EVENT, None)
            continue
        except UncertainOutcome:
            raise
        except AuthenticationError as exc:
            if not policy.pause_on_auth:
                raise
            project = exc.project or "org"
            if paused is None:
                paused = project
                pause_step(rt, project, str(exc))
                DBOS.set_event(PAUSE_EVENT, {"project": project, "since": now_step().isoformat()})
            pause(rt, rt.settings.poll_interval)
            continue
        except Exception as exc:
            if not isinstance(exc, RetriableError | OutputUnwritable) and not is_transient_db_error(exc):
                raise
            attempts += 1
            wait = transient_wait(attempts, rt.settings.rate_scale)
            if gives_up(now_step(), wait, policy.horizon):
                raise
            _log_outage(step, exc, attempts)
            pause(rt, wait)
            continue
        if paused is not None:
            resume_step(rt, paused)
            DBOS.set_event(PAUSE_EVENT, None)
        if attempts:
            log.info("%s answered again after %d durable retries", _step_name(step), attempts)
        return result


WORKFLOW_DB_ROUNDS = 12  # a workflow waits out our own database this many times (hours in all)


def wait_out_database_fault(rt: Runtime, request_id: str, exc: Exception, rounds: int) -> bool:
    """In a workflow's last-resort handler: when ``exc`` is a transient fault of our own database
    that outlived the steps' own retries, sleep durably and return True (run the phase again);
    False for anything else, or after :data:`WORKFLOW_DB_ROUNDS` rounds."""
    if isinstance(exc, ShuttingDown):
        raise exc
    if rounds >= WORKFLOW_DB_ROUNDS or not is_transient_db_error(exc):
        return False
    wait = transient_wait(rounds + 1, rt.settings.rate_scale)
    log.warning(
        "request %s: our database failed (%s); waiting %.0f s and resuming, the request is not failed",
        request_id, type(exc).__name__, wait,
    )  # fmt: skip
    pause(rt, wait)
    return True


def pause(rt: Runtime, seconds: float) -> None:
    """A durable sleep of the workflow that ends early when this process shuts down.

    Recorded like ``DBOS.sleep`` (one checkpoint holding its end: a recovered workflow sleeps
    only what is left), but waited on the runtime's ``stopping`` event instead of ``time.sleep``,
    so a worker that stops does not wait out an hour's poll interval. The runtime sets that event
    only after DBOS is torn down; :class:`ShuttingDown` then ends the thread without any outcome
    recorded, and the workflow stays pending for the next executor, from this checkpoint."""
    if seconds <= 0:
        return
    if rt.closed:
        raise ShuttingDown("this process is shutting down; the workflow resumes from its last step elsewhere")
    remaining = record_sleep(_get_dbos_instance(), snapshot_step_context(), seconds)
    if rt.stopping.wait(remaining):
        raise ShuttingDown("this process is shutting down; the workflow resumes from its last step elsewhere")


def _step_name(step: Callable[..., Any]) -> str:
    return getattr(step, "__name__", "step")


def _log_outage(step: Callable[..., Any], exc: Exception, attempts: int) -> None:
    """One warning per kind of outage per :data:`OUTAGE_LOG_EVERY` in this process (a thousand
    requests waiting through one outage do not write a thousand lines); identifier-free."""
    key = f"{_step_name(step)}:{type(exc).__name__}"
    now = time.monotonic()
    with _outages_lock:
        last = _outages.get(key)
        if last is not None and now - last < OUTAGE_LOG_EVERY:
            log.debug("%s still failing (%s), attempt %d", _step_name(step), exc, attempts)
            return
        _outages[key] = now
    log.warning("%s failing (%s); retrying durably with backoff", _step_name(step), exc)


@DBOS.step()
def now_step() -> datetime:
    """The current time, checkpointed so a replayed workflow sees the same value."""
    return datetime.now(UTC)


@DBOS.step()
def serves_step(rt: Runtime, project: str) -> bool:
    """Whether this process has ``project``'s keys. A flusher or tracker that lands on an
    executor without them (a recovered workflow, another deployment's configuration) ends at
    once; the sweep of an executor that has them starts it again (``dsr/jobwatch.py``)."""
    if any(p.name == project for p in rt.settings.projects):
        return True
    log.warning(
        "project %s is not configured in this process; its deletion jobs are left to an executor that has its keys",
        project,
    )
    return False


@db_step
def pause_step(rt: Runtime, project: str, reason: str) -> None:
    """Record that Amplitude refuses ``project``'s credentials (logged once per pause)."""
    if pauses.pause(rt.engine, project, reason):
        log.warning("project %s paused: %s; its requests wait until the keys work again", project, reason)


@db_step
def resume_step(rt: Runtime, project: str) -> None:
    """Clear ``project``'s pause once a call with its credentials succeeded (logged once)."""
    if pauses.resume(rt.engine, project):
        log.warning("project %s resumed: Amplitude accepts its credentials again", project)


def budget_wait_value(exc: DeferredError) -> dict[str, str]:
    """The :data:`BUDGET_WAIT_EVENT` value for a deferral: the pool and when it resumes (UTC)."""
    return {"pool": exc.pool, "resume_at": exc.resume_at.astimezone(UTC).isoformat()}


@DBOS.step(retries_allowed=False)
def search_step(rt: Runtime, project: str, term: str) -> UserSearchResult:
    """One User Search call (user pool)."""
    return rt.client(project).user_search(term)


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
def activity_step(  # noqa: PLR0917 - a DBOS step: its arguments are positional
    rt: Runtime, request_id: str, project: str, amplitude_id: int, keep_events: bool, full_history: bool
) -> ActivityOutcome:
    """User Activity for one user: page 1 (summary + most recent events), more pages only while
    the most recent session continues (or every page with ``full_history``). Events are
    de-duplicated by ``uuid`` and written to a JSON-lines work file."""
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
def dsar_create_step(rt: Runtime, amplitude_id: int, start: date, end: date) -> int:
    """Create a DSAR export (DSAR pool, cost 8)."""
    dsar = rt.dsar()
    assert dsar is not None
    return dsar.create(amplitude_id=amplitude_id, start_date=start, end_date=end)


@DBOS.step(retries_allowed=False)
def dsar_get_step(rt: Runtime, dsar_request_id: int) -> DsarRequest:
    """Poll a DSAR export (DSAR pool, cost 1)."""
    dsar = rt.dsar()
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
def dsar_download_step(  # noqa: PLR0917 - a DBOS step: its arguments are positional
    rt: Runtime, request_id: str, project: str, amplitude_id: int, urls: list[str], activity_path: str | None = None
) -> DsarDownload:
    """Download every output file (streamed, gunzipped line by line) into one JSON-lines file,
    then add the User Activity events the export does not hold (matched by ``uuid``), so the
    subject's export is the union of both without duplicates. Only the activity keys are held
    in memory, never the export."""
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


@db_step
def audit_step(rt: Runtime, request_id: str, kind: str, detail: dict[str, Any]) -> None:
    """Append to the hash-chained audit trail exactly once. The entry carries its step's identity
    (workflow ID and step number) as a unique write key: a process that dies after the entry
    committed but before DBOS recorded the step runs the step again on recovery, and the append
    then finds its entry instead of writing a second one (``audit.append``)."""
    workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
    key = f"{workflow_id}#{step_id}" if workflow_id is not None and step_id is not None else None
    engine = rt.engine
    try:
        with engine.begin() as conn:
            audit.append(conn, request_id, kind, detail, write_key=key)
    except sa.exc.IntegrityError:  # another execution of this very step wrote it first
        with engine.connect() as conn:
            if key is None or audit.written(conn, key) is None:
                raise


def fatal_message(exc: Exception) -> str:
    """A one-line, identifier-free reason for a failed request."""
    if isinstance(exc, DsrError):  # deliberate errors carry identifier-free messages
        return str(exc)
    return f"{type(exc).__name__}: unexpected error (see logs)"
