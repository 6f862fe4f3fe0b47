"""The project-key client: User Search, User Activity, events list, User Privacy v1.

Facts (endpoints, parameters, limits, gotchas): ``docs/amplitude.md``. Every call spends
from its documented pool through the shared :class:`~amplitude_dsr.amplitude.budget.Budget`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any, Literal, TypeVar

import httpx

from amplitude_dsr.amplitude.budget import Budget
from amplitude_dsr.amplitude.caller import Caller, CallerOwner, parse_model
from amplitude_dsr.amplitude.limits import (
    DELETION_LIST_MAX_DAYS,
    EVENTS_LIST_COST,
    MAX_IDS_PER_DELETION,
    USER_ACTIVITY_MAX_LIMIT,
)
from amplitude_dsr.amplitude.listing import ListedJob, ReadAgain, decode_listing, parse_listing, read_listing
from amplitude_dsr.amplitude.models import (
    DeletionJob,
    DeletionRemoval,
    EventTypeInfo,
    UserActivity,
    UserSearchResult,
)
from amplitude_dsr.config import ProjectConfig
from amplitude_dsr.errors import AmplitudeError, MalformedResponse, UncertainOutcome

T = TypeVar("T")
log = logging.getLogger("amplitude_dsr.amplitude")

USERSEARCH = "/api/2/usersearch"
USERACTIVITY = "/api/2/useractivity"
EVENTS_LIST = "/api/2/events/list"
DELETIONS = "/api/2/deletions/users"


def wire_bool(value: bool) -> str:
    """A boolean as the v1 deletion API wants it: the string ``"True"`` or ``"False"``
    (``docs/amplitude.md#gotchas``, gotcha 1: JSON ``true`` has been refused with a 400)."""
    return "True" if value else "False"


def deletion_body(
    *,
    amplitude_ids: Sequence[int],
    user_ids: Sequence[str],
    requester: str,
    delete_from_org: bool,
    ignore_invalid_id: bool,
    include_mapped_user_ids: bool = False,
) -> dict[str, Any]:
    """The JSON body of ``POST /api/2/deletions/users``; ``ValueError`` for no IDs or more
    than :data:`MAX_IDS_PER_DELETION`. The flag is the singular ``ignore_invalid_id``."""
    total = len(amplitude_ids) + len(user_ids)
    if total == 0:
        raise ValueError("a deletion needs at least one amplitude_id or user_id")
    if total > MAX_IDS_PER_DELETION:
        raise ValueError(
            f"{total} IDs in one deletion request; Amplitude accepts at most "
            f"{MAX_IDS_PER_DELETION}: split them into batches"
        )
    if not requester:
        raise ValueError("requester is required (kept by Amplitude for audit)")
    body: dict[str, Any] = {}
    if amplitude_ids:
        body["amplitude_ids"] = [int(a) for a in amplitude_ids]
    if user_ids:
        body["user_ids"] = [str(u) for u in user_ids]
    body["requester"] = requester
    body["ignore_invalid_id"] = wire_bool(ignore_invalid_id)
    body["delete_from_org"] = wire_bool(delete_from_org)
    if include_mapped_user_ids:
        # Only changes the answer: each entry then names the user ID it was resolved from.
        body["include_mapped_user_ids"] = wire_bool(True)
    return body


def deletion_windows(start_day: date, end_day: date) -> list[tuple[date, date]]:
    """``start_day..end_day`` (inclusive) cut into consecutive windows of at most
    :data:`DELETION_LIST_MAX_DAYS` days, inside Amplitude's 6-month maximum."""
    if end_day < start_day:
        raise ValueError("end_day is before start_day")
    windows = []
    cursor = start_day
    while cursor <= end_day:
        last = min(end_day, cursor + timedelta(days=DELETION_LIST_MAX_DAYS - 1))
        windows.append((cursor, last))
        cursor = last + timedelta(days=1)
    return windows


def parse_jobs(data: Any, url: str) -> list[DeletionJob]:
    """Deletion jobs from a POST or GET body: one object, or an array of (per-project) jobs."""
    if isinstance(data, dict):
        return [parse_model(DeletionJob, data, url)]
    if isinstance(data, list):
        return [parse_model(DeletionJob, item, url) for item in data]
    raise MalformedResponse("Amplitude deletion response is neither an object nor a list", url=url)


class AmplitudeClient(CallerOwner):
    """One Amplitude project (project API key + secret key), sync, budgeted, retried.

    Use as a context manager, or call :meth:`close`. Exceptions are those of
    :mod:`amplitude_dsr.errors` (see ``docs/client.md`` for what each means to a caller).
    """

    def __init__(
        self,
        project: ProjectConfig,
        budget: Budget,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        max_attempts: int = 5,
        max_retry_time: float = 120.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.project_name = project.name
        self._caller = Caller(
            project,
            budget,
            timeout=timeout,
            transport=transport,
            max_attempts=max_attempts,
            max_retry_time=max_retry_time,
            jitter=jitter,
        )

    @property
    def scope(self) -> str:
        """The budget scope of this project (a hash of the API key, never the key)."""
        return self._caller.scope

    def __repr__(self) -> str:
        return f"AmplitudeClient(project={self.project_name!r}, base_url={self.base_url!r})"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`Caller.call`, with the project's name on any error it raises (a refused
        credential pauses that project's requests, not everyone's)."""
        try:
            return self._caller.call(method, path, **kwargs)
        except AmplitudeError as exc:
            exc.project = self.project_name
            raise

    # --- Dashboard REST ------------------------------------------------------------------

    def user_search(self, user: str) -> UserSearchResult:
        """``GET /api/2/usersearch``: matches for an Amplitude ID, device ID, user ID or user ID
        *prefix* (filter prefix matches yourself). ``nomatch`` is a 200 with no matches.
        Spends 1 from the ``user`` pool (360/hour per project)."""
        if not str(user).strip():
            raise ValueError("user must not be empty")
        data = self._call("GET", USERSEARCH, pool="user", safe=True, params={"user": str(user)})
        return parse_model(UserSearchResult, data, USERSEARCH)

    def user_activity(
        self,
        amplitude_id: int,
        *,
        offset: int = 0,
        limit: int = USER_ACTIVITY_MAX_LIMIT,
        direction: Literal["latest", "earliest"] = "latest",
    ) -> UserActivity:
        """``GET /api/2/useractivity``: the user summary and one page of events (pages may hold
        more than ``limit`` events and overlap; de-duplicate by ``uuid``). Spends 1 from the
        ``user`` pool."""
        if not 1 <= limit <= USER_ACTIVITY_MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {USER_ACTIVITY_MAX_LIMIT}")
        if offset < 0:
            raise ValueError("offset must not be negative")
        if direction not in ("latest", "earliest"):
            raise ValueError("direction must be 'latest' or 'earliest'")
        params: dict[str, str | int] = {
            "user": int(amplitude_id),
            "offset": offset,
            "limit": limit,
            "direction": direction,
        }
        data = self._call("GET", USERACTIVITY, pool="user", safe=True, params=params)
        return parse_model(UserActivity, data, USERACTIVITY)

    def events_list(self) -> list[EventTypeInfo]:
        """``GET /api/2/events/list``: the project's event types (the cheapest check that the
        keys work; cost 1 from the ``cost`` pool). Do not log the payload."""
        data = self._call("GET", EVENTS_LIST, pool="cost", safe=True, cost=EVENTS_LIST_COST)
        items = data.get("data") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise MalformedResponse("events/list has no 'data' array", url=EVENTS_LIST)
        return [parse_model(EventTypeInfo, item, EVENTS_LIST) for item in items]

    # --- User Privacy API v1 -------------------------------------------------------------

    def create_deletion(
        self,
        *,
        amplitude_ids: Sequence[int] = (),
        user_ids: Sequence[str] = (),
        requester: str,
        delete_from_org: bool = False,
        ignore_invalid_id: bool = True,
        include_mapped_user_ids: bool = False,
    ) -> list[DeletionJob]:
        """``POST /api/2/deletions/users``: schedule the deletion of up to 100 IDs; returns the
        receipt (one job, or one per project for ``delete_from_org``).

        Never re-sent blindly: a 5xx, a timeout or a dropped connection raises
        :class:`~amplitude_dsr.errors.UncertainOutcome` (reconcile with :meth:`list_deletions`).
        A 429 (refused, nothing happened) is retried after backoff. ``ValueError`` before
        sending for no IDs or more than 100.
        """
        body = deletion_body(
            amplitude_ids=amplitude_ids,
            user_ids=user_ids,
            requester=requester,
            delete_from_org=delete_from_org,
            ignore_invalid_id=ignore_invalid_id,
            include_mapped_user_ids=include_mapped_user_ids,
        )
        data = self._call("POST", DELETIONS, pool="deletion", safe=False, json=body)
        return _receipt_or_uncertain(lambda: parse_jobs(data, DELETIONS))

    def list_deletions(self, start_day: date, end_day: date) -> list[ListedJob]:
        """``GET /api/2/deletions/users``: jobs whose ``day`` is in ``start_day..end_day``, each
        held compactly (a job lists every one of its IDs: ``amplitude/listing.py``). Ranges over
        6 months are split into several calls (each 1 from the ``deletion`` pool)."""
        jobs: list[ListedJob] = []
        seen: set[tuple[int | None, str, bytes]] = set()
        for first, last in deletion_windows(start_day, end_day):
            params = {"start_day": first.isoformat(), "end_day": last.isoformat()}
            get = {"pool": "deletion", "safe": True, "params": params, "decode": decode_listing}
            try:
                data = self._call("GET", DELETIONS, **get, stream=read_listing)
            except ReadAgain:  # a long body not of the plain shape: one more GET, decoded whole
                log.info("a deletion listing was not of the usual shape; asking for it again to read it whole")
                data = self._call("GET", DELETIONS, **get)
            for job in parse_listing(data, DELETIONS):
                key = (job.app, job.day, job.fingerprint())
                if key not in seen:
                    seen.add(key)
                    jobs.append(job)
        return jobs

    def remove_from_deletion(self, amplitude_id: int, day: date) -> DeletionRemoval:
        """``DELETE /api/2/deletions/users/{amplitude_id}/{day}``: take a user out of a job that
        is still ``staging`` and more than 3 days before its ``day`` (the job's day, not
        ``requested_on_day``). Not retried after a 5xx/timeout: ``UncertainOutcome``."""
        path = f"{DELETIONS}/{int(amplitude_id)}/{day.isoformat()}"
        data = self._call("DELETE", path, pool="deletion", safe=False)
        return _receipt_or_uncertain(lambda: parse_model(DeletionRemoval, data, f"{DELETIONS}/:id/{day.isoformat()}"))


def _receipt_or_uncertain(parse: Callable[[], T]) -> T:
    """The parsed answer of a non-idempotent call. An answer we cannot read means the call may
    well have taken effect: :class:`UncertainOutcome` (reconcile by listing), never a failure."""
    try:
        return parse()
    except MalformedResponse as exc:
        raise UncertainOutcome(
            "Amplitude answered the deletion call with a body we cannot read; reconcile by listing jobs",
            status=exc.status,
            url=exc.url,
        ) from exc
