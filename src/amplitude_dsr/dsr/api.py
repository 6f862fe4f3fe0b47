"""The application API the shells (CLI, later the HTTP service) call.

Submitting a request stores it, appends ``received`` to the audit trail and enqueues its
workflow under the request ID, all in one transaction (``dsr/intake.py``), so re-submitting never
runs it twice and no request exists without its workflow. :func:`submit_many` does the same for
many requests, one transaction per chunk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from amplitude_dsr.config import Settings
from amplitude_dsr.dsr import deletion_logic as logic
from amplitude_dsr.dsr import intake, jobs, sealing, steps
from amplitude_dsr.dsr.finish import verification_id
from amplitude_dsr.dsr.model import REGULATION_DAYS, Identifier, RequestOptions
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.errors import (
    BadRequest,
    BudgetExhausted,
    CancelRefused,
    ConfigError,
    DomainError,
    NotFound,
    UsageError,
)
from amplitude_dsr.states import WORKFLOW_ACTIVE, WORKFLOW_FINAL
from amplitude_dsr.states import is_final as status_is_final
from amplitude_dsr.store import audit, pauses, repo

WAIT_POLL_SECONDS = 0.2
log = logging.getLogger(__name__)


def idempotency_key(kind: str, identifiers: Sequence[Identifier], options: dict[str, Any]) -> str:
    """A stable key for "the same request again" (batch re-runs do not duplicate requests)."""
    opts = {k: options.get(k) for k in ("projects", "org_wide", "full_history", "batch_key")}
    # Only when set, so the key of a request without a DSAR range is what it always was.
    opts |= {k: str(options[k]) for k in ("dsar_start", "dsar_end") if options.get(k) is not None}
    material = {"kind": kind, "ids": sorted([i.kind.value, i.value] for i in identifiers), "opts": opts}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def resume_key(kind: str, identifiers: Sequence[Identifier], options: dict[str, Any], regulation: str) -> str:
    """The key under which a re-run of the same command finds its unfinished request: the
    identifiers and every option that shapes the answer (projects, history, output, identity
    map, regulation)."""
    shape = [regulation, options.get("out_dir"), options.get("identity_map"), options.get("batch_key")]
    return idempotency_key(kind, identifiers, {**options, "batch_key": "resume:" + json.dumps(shape)})


@dataclass(frozen=True)
class Spec:
    """One request for :func:`submit_many`: what :func:`submit` takes, as a value."""

    kind: str
    identifiers: Sequence[Identifier]
    options: RequestOptions | Mapping[str, Any] = field(default_factory=RequestOptions)
    regulation: str = "gdpr"


def submit(
    rt: Runtime,
    kind: str,
    identifiers: Sequence[Identifier],
    *,
    options: RequestOptions | Mapping[str, Any] | None = None,
    regulation: str = "gdpr",
    dedupe: bool = False,
    resume: bool = False,
    hold: bool = False,
) -> tuple[str, bool]:
    """Store and enqueue a request; returns (request ID, created). ``hold``: a new deletion waits
    for approval (``dsr/hold.py``). ``dedupe`` returns the earlier
    identical request instead of creating a new one. ``resume`` returns it only while it is not
    final (same identifiers, options and regulation: a re-run of an interrupted command picks it
    up); once it is final, the same command creates a new request."""
    spec = Spec(kind, identifiers, options if options is not None else RequestOptions(), regulation)
    prepared = _prepare(rt, spec, keyed="dedupe" if dedupe else "resume" if resume else None)
    if hold and kind == "deletion":
        prepared = intake.Prepared(prepared.row, prepared.digests, held=True)
    [(rid, created)] = intake.store(rt, [prepared])
    if resume and not created and is_final(row := repo.get_request(rt.engine, rid)):
        # Retire the finished request's key (kept unique, 64 characters) and start a new one.
        key = prepared.row.idempotency_key
        retired = hashlib.sha256(f"{key}:{row.id}".encode()).hexdigest()
        repo.update_request(rt.engine, row.id, idempotency_key=retired)
        [(rid, created)] = intake.store(rt, [prepared])
    return rid, created


def submit_many(rt: Runtime, specs: Sequence[Spec], *, chunk_size: int = intake.CHUNK_SIZE) -> list[tuple[str, bool]]:
    """Store and enqueue many requests, deduplicated like ``submit(..., dedupe=True)``; per spec,
    in order: (request ID, created). Every spec is validated before anything is stored. Each
    chunk of ``chunk_size`` requests is one transaction holding the rows, their ``received``
    audit entries and their workflows' enqueues: a failure leaves that chunk unwritten and the
    earlier ones complete, so calling again with the same specs stores only what is missing."""
    prepared = [_prepare(rt, spec, keyed="dedupe") for spec in specs]
    return intake.store(rt, prepared, chunk_size=chunk_size)


def prepare(rt: Runtime, spec: Spec, *, hold: bool = False) -> intake.Prepared:
    """Validate a request (:class:`UsageError` naming the first problem) and build what
    :func:`submit_prepared` stores, deduplicated like ``submit(..., dedupe=True)``. No I/O: a
    caller can refuse bad input before it joins a shared transaction. ``hold``: as for
    :func:`submit`."""
    prepared = _prepare(rt, spec, keyed="dedupe")
    if hold and spec.kind == "deletion":
        prepared = intake.Prepared(prepared.row, prepared.digests, held=True)
    return prepared


def submit_prepared(
    rt: Runtime,
    prepared: Sequence[intake.Prepared],
    *,
    also: intake.Also | None = None,
    engine: sa.Engine | None = None,
) -> list[tuple[str, bool]]:
    """Store requests made by :func:`prepare` in **one** transaction (with their ``received``
    entries and enqueues, and the caller's own rows written by ``also``); per request, in order:
    (request ID, created). All or nothing: an exception leaves none of them written. What the
    service's group commit calls for the POSTs that arrived together (``service/intake.py``)."""
    return intake.store(rt, prepared, chunk_size=max(1, len(prepared)), also=also)


def _prepare(rt: Runtime, spec: Spec, *, keyed: str | None) -> intake.Prepared:
    """Validate a request and build its row; ``keyed``: ``dedupe``, ``resume`` or no key."""
    kind, identifiers, regulation = spec.kind, spec.identifiers, spec.regulation
    if kind not in ("access", "deletion"):
        raise UsageError(f"unknown request kind {kind!r}")
    if not identifiers:
        raise UsageError("give at least one identifier (--email, --user-id, --amplitude-id, --device-id)")
    if regulation not in REGULATION_DAYS:
        raise UsageError("regulation must be 'gdpr' or 'ccpa'")
    if not rt.settings.projects:
        rt.settings.project()  # raises the ConfigError with what to set
    options = request_options(spec.options)
    if kind == "access" and options.org_wide:
        raise UsageError("org_wide applies to deletion requests only")
    if kind == "deletion" and options.full_history:
        raise UsageError("full_history applies to access requests only")
    if kind == "access" and options.deletion_path:
        raise UsageError("deletion_path applies to deletion requests only")
    if options.org_wide and options.deletion_path == "direct":
        raise UsageError("an org-wide deletion resolves its identifiers first: drop --direct or --org-wide")
    check_dsar_range(rt.settings, kind, options, datetime.now(UTC).date())
    for name in options.projects:
        rt.settings.project(name)
    opts = options.stored()
    if kind == "deletion":
        opts.setdefault("requester", rt.settings.requester)
        opts.setdefault("deletion_path", "resolve-first" if options.org_wide else rt.settings.deletion_path)
    key = None
    if keyed == "dedupe":
        key = idempotency_key(kind, identifiers, opts)
    elif keyed == "resume":
        key = resume_key(kind, identifiers, opts, regulation)
    row = repo.NewRequest(
        kind=kind, identifiers=[i.model_dump(mode="json") for i in identifiers], options=opts,
        regulation=regulation, deadline_days=REGULATION_DAYS[regulation], idempotency_key=key,
    )  # fmt: skip
    return intake.Prepared(row, [audit.identifier_digest(i.kind.value, i.value) for i in identifiers])


def check_dsar_range(settings: Settings, kind: str, options: RequestOptions, today: date) -> None:
    """A DSAR date range needs an access request, organisation keys (only the DSAR export reads
    it) and a first day that is not in the future (a later last day ends at the export's day)."""
    if options.dsar_start is None and options.dsar_end is None:
        return
    if kind != "access":
        raise UsageError("dsar_start and dsar_end apply to access requests only")
    if settings.org is None:
        raise UsageError("dsar_start and dsar_end need organisation keys (AMPLITUDE_ORG_API_KEY): the DSAR export")
    if options.dsar_start is not None and options.dsar_start > today:
        raise UsageError("dsar_start is in the future")


def request_options(value: RequestOptions | Mapping[str, Any]) -> RequestOptions:
    """``value`` as validated options; UsageError (one line) naming the first bad option."""
    if isinstance(value, RequestOptions):
        return value
    try:
        return RequestOptions.model_validate(dict(value))
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across options (the DSAR range): its own message
            raise UsageError(f"invalid request options: {first['msg'].removeprefix('Value error, ')}") from None
        where = ".".join(str(part) for part in first["loc"])
        raise UsageError(f"invalid request option {where!r}: {first['msg']}") from None


def wait(rt: Runtime, request_id: str, timeout: float | None = None, *, max_budget_wait: float | None = None) -> str:
    """Block until the request is final; returns its final status.

    An access request is final when its workflow returns. A deletion's own workflow ends once
    its IDs are queued (``queued``); it is final when its verification (or a cancel) says so.

    ``timeout``: raise :class:`DomainError` after that many seconds. ``max_budget_wait``: raise
    :class:`BudgetExhausted` (``pool``, ``resume_at``) as soon as the request's sleeps on an
    exhausted rate budget would add up to more than that many seconds; ``None`` waits for the
    budget however long. Either way the request is untouched: it stays queued and an executor
    (``worker``) finishes it."""
    handle: Any = rt.dbos_client().retrieve_workflow(request_id)
    started = last = time.monotonic()
    budget_waited = 0.0
    while True:
        done = _final_status(rt, request_id, handle)
        if done is not None:
            return done
        if rt.lock_lost is not None:  # this foreground command stops running workflows
            raise DomainError(f"{rt.lock_lost}; the request carries on in a worker")
        now = time.monotonic()
        if max_budget_wait is not None:
            pending = budget_wait(rt, request_id) or budget_wait(rt, verification_id(request_id))
            if pending is not None:
                budget_waited += now - last
                if gives_up(budget_waited, pending.resume_at, max_budget_wait, datetime.now(UTC)):
                    raise pending
        last = now
        if timeout is not None and now - started >= timeout:
            raise DomainError(f"request still running after {timeout:.0f} s; check `amplitude-dsr status`")
        time.sleep(WAIT_POLL_SECONDS)


def _final_status(rt: Runtime, request_id: str, handle: Any) -> str | None:
    """The request's final status, or ``None`` while it is not final."""
    state = handle.get_status().status
    if state == "CANCELLED":  # `cancel` stopped it mid-resolution: the row says the rest
        row = repo.get_request(rt.engine, request_id)
        return row.status if is_final(row) else None
    if state in WORKFLOW_FINAL:
        result = str(handle.get_result())  # raises what the workflow raised
        row = repo.get_request(rt.engine, request_id)
        if row.kind == "access" or status_is_final(row.kind, result):
            return result
        if is_final(row):
            return row.status
        return None
    row = repo.get_request(rt.engine, request_id)
    return row.status if row.kind == "deletion" and row.status == "cancelled" else None


def budget_wait(rt: Runtime, request_id: str) -> BudgetExhausted | None:
    """The exhausted budget the request's workflow is sleeping on now, or ``None`` (not
    sleeping on one, or the published wait is over). Read from the workflow event that
    :func:`steps.call` sets around its durable sleep."""
    value = rt.dbos_client().get_event(request_id, steps.BUDGET_WAIT_EVENT, timeout_seconds=0)
    if not isinstance(value, dict):
        return None
    try:
        resume_at = datetime.fromisoformat(str(value["resume_at"]))
    except (KeyError, ValueError):
        return None
    if resume_at.tzinfo is None:
        resume_at = resume_at.replace(tzinfo=UTC)
    if resume_at <= datetime.now(UTC):
        return None
    pool = str(value.get("pool") or "")
    return BudgetExhausted(
        f"the {pool or 'rate'} budget has no room before {resume_at.isoformat()}", resume_at=resume_at, pool=pool
    )


def gives_up(waited: float, resume_at: datetime, max_budget_wait: float, now: datetime) -> bool:
    """Whether a foreground wait stops: the budget waits seen so far (``waited`` seconds) plus
    the one in progress (until ``resume_at``) exceed ``max_budget_wait`` seconds."""
    return waited + max(0.0, (resume_at - now).total_seconds()) > max_budget_wait


def is_final(row: repo.RequestRow) -> bool:
    return status_is_final(row.kind, row.status)


def is_final_status(kind: str, status: str) -> bool:
    return status_is_final(kind, status)


def deletion_summary(items: Sequence[repo.Item]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """What the shells show of a deletion's items: how many Amplitude IDs are in each state, and
    one row per Amplitude job (project, day, status, how many of the request's IDs it holds)."""
    states = dict(sorted(Counter(i.state for i in items).items()))
    jobs: dict[tuple[str, str], list[repo.Item]] = {}
    for item in items:
        if item.job_day:
            jobs.setdefault((item.project, item.job_day), []).append(item)
    rows = [
        {"project": project, "day": day, "status": group[0].job_status, "amplitude_ids": len(group)}
        for (project, day), group in sorted(jobs.items())
    ]
    return states, rows


def cancel(rt: Runtime, request_id: str, *, today: date | None = None) -> str:
    """Cancel a deletion: queued IDs are dropped; IDs in a ``staging`` job more than three days
    before its ``day`` are removed from it. Raises :class:`CancelRefused` otherwise."""
    row = repo.get_request(rt.engine, request_id)
    if row.kind != "deletion":
        raise CancelRefused("only deletion requests can be cancelled")
    if is_final(row):
        raise CancelRefused(f"the request is already {row.status!r}")
    items = repo.items_for(rt.engine, request_id)
    if any(i.state == "batched" for i in items):
        raise CancelRefused("a submission to Amplitude is in progress; try again in a minute")
    today = today or datetime.now(UTC).date()
    receipted = [i for i in items if i.state == "receipted"]
    for project, day in sorted({(i.project, i.job_day) for i in receipted if i.job_day}):
        ids = [i.amplitude_id for i in receipted if (i.project, i.job_day) == (project, day)]
        found = jobs.locate(rt.client(project).list_deletions, day, ids, row.created_at.date())
        job = found.job
        if job is not None and found.moved_from is not None:
            # Amplitude moved the job: follow it, so the removal names the day it has now.
            repo.move_job_day(rt.engine, request_id, project, day, new_day=job.day, status=job.status)
            with rt.engine.begin() as conn:
                audit.append(
                    conn, request_id, "job_moved",
                    {"project": project, "from_day": day, "day": job.day, "status": job.status},
                )  # fmt: skip
        reason = logic.cancel_refusal(job.status if job else None, job.day if job else day, today)
        if reason:
            raise CancelRefused(reason)
    receipted = [i for i in repo.items_for(rt.engine, request_id) if i.state == "receipted"]
    removed = 0
    for item in receipted:
        assert item.job_day is not None
        try:
            rt.client(item.project).remove_from_deletion(item.amplitude_id, date.fromisoformat(item.job_day))
        except (BadRequest, NotFound) as exc:
            # Amplitude's own clock decides in the end (its job may have frozen already).
            raise CancelRefused(
                f"Amplitude refused to remove the IDs from the job of {item.job_day} (HTTP {exc.status}); "
                "a job can be changed only while 'staging' and more than 3 days before its day"
                + (f"; {removed} of {len(receipted)} IDs were already removed" if removed else "")
            ) from exc
        removed += 1
    dropped = repo.cancel_items(rt.engine, request_id, only_queued=False)
    if dropped is None:
        raise CancelRefused("a submission to Amplitude is in progress; try again in a minute")
    repo.update_request(rt.engine, request_id, status="cancelled", completed_at=datetime.now(UTC))
    with rt.engine.begin() as conn:
        audit.append(conn, request_id, "cancelled", {"removed_from_jobs": removed, "queued_dropped": dropped - removed})
    _stop_workflows(rt, [request_id, verification_id(request_id)])
    return "cancelled"


def _stop_workflows(rt: Runtime, workflow_ids: list[str]) -> None:
    """Cancel (DBOS) whichever of ``workflow_ids`` is still enqueued or running: a resolution
    in progress stops at its next step instead of spending the user pool for nothing. Through a
    ``DBOSClient``, so it works from any process; the request's row already says ``cancelled``,
    so a workflow that finishes first changes nothing (its progress never overwrites a cancel)."""
    try:
        client = rt.dbos_client()
        active = client.list_workflows(workflow_ids=workflow_ids, status=sorted(WORKFLOW_ACTIVE), load_input=False)
        if active:
            client.cancel_workflows([w.workflow_id for w in active])
    except Exception:  # the cancel itself is done; a workflow left running ends at its next check
        log.debug("could not cancel the workflows of a cancelled request", exc_info=True)


def credential_pauses(engine: sa.Engine) -> list[dict[str, str]]:
    """Projects whose requests wait because Amplitude refuses their credentials (see
    ``store/pauses.py``): ``project``, ``reason`` (identifier-free), ``since`` (ISO 8601 UTC)."""
    try:
        found = pauses.active(engine)
    except sa.exc.SQLAlchemyError:  # an older database without the table: nothing was paused
        return []
    return [{"project": p.project, "reason": p.reason, "since": p.since.isoformat(timespec="seconds")} for p in found]


def settings_check(rt: Runtime) -> None:
    if not rt.settings.projects:
        raise ConfigError("no Amplitude project configured")


def new_data_key() -> str:
    """A new key for ``AMPLITUDE_DSR_DATA_KEY`` (what seals DBOS checkpoints, dsr/sealing.py)."""
    return sealing.new_key()
