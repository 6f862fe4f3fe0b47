"""DSAR export jobs (docs/amplitude.md#dsar-export-api) and their gzip JSON-lines outputs.

staging -> submitted after 1 emulated hour -> done (or failed) after 1 emulated day; links
expire 2 days after done. Outputs are one file per project per month with data, generated while
streaming (constant memory), including synthetic outputs of any size.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .model import DSAR_MAX_EVENTS_PER_MONTH, User, stable_uuid, to_ms
from .render import event_json, fmt_time

if TYPE_CHECKING:
    from .world import World

SUBMIT_AFTER = timedelta(hours=1)
DONE_AFTER = timedelta(days=1)
# docs/amplitude.md#dsar-limits-and-sla: output links expire after 2 days.
LINKS_VALID = timedelta(days=2)
FIRST_REQUEST_ID = 53367


@dataclass
class OutputFile:
    """One output: a project's events of one month, or a synthetic blob of about N bytes."""

    project: str
    month: str
    users: list[User]
    lo_ms: int
    hi_ms: int
    synthetic_bytes: int = 0


@dataclass
class DsarRequest:
    """One DSAR job."""

    request_id: int
    region: str
    user_id: str | None
    amplitude_id: int | None
    start: date
    end: date
    created: datetime
    token: str
    outputs: list[OutputFile] | None = None
    fail_reason: str | None = None

    @property
    def done_at(self) -> datetime:
        """When the job finishes."""
        return self.created + DONE_AFTER

    @property
    def expires_at(self) -> datetime:
        """When the output links stop working."""
        return self.done_at + LINKS_VALID

    def status(self, now: datetime) -> str:
        """staging, submitted, done or failed."""
        if now < self.created + SUBMIT_AFTER:
            return "staging"
        if now < self.done_at:
            return "submitted"
        return "failed" if self.fail_reason else "done"


def month_bounds(start: date, end: date) -> list[tuple[str, int, int]]:
    """(YYYY-MM, lo_ms, hi_ms) for each month overlapping [start, end], clipped to it."""
    out: list[tuple[str, int, int]] = []
    cursor = date(start.year, start.month, 1)
    lo_limit = to_ms(datetime(start.year, start.month, start.day, tzinfo=UTC))
    end_next = end + timedelta(days=1)
    hi_limit = to_ms(datetime(end_next.year, end_next.month, end_next.day, tzinfo=UTC))
    while cursor <= end:
        nxt = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
        lo = max(lo_limit, to_ms(datetime(cursor.year, cursor.month, 1, tzinfo=UTC)))
        hi = min(hi_limit, to_ms(datetime(nxt.year, nxt.month, 1, tzinfo=UTC)))
        out.append((cursor.strftime("%Y-%m"), lo, hi))
        cursor = nxt
    return out


class DsarBook:
    """All DSAR requests and synthetic-output settings of the world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.requests: dict[int, DsarRequest] = {}
        self.synthetic: dict[int, int] = {}  # amplitude_id -> approx uncompressed bytes
        self._next_id = FIRST_REQUEST_ID

    def create(self, region: str, user_id: str | None, amplitude_id: int | None, start: date, end: date) -> DsarRequest:
        """Register a new request (call under the world lock)."""
        request_id = self._next_id
        self._next_id += 1
        token = stable_uuid(self.world.seed, "dsar", request_id).replace("-", "")
        req = DsarRequest(request_id, region, user_id, amplitude_id, start, end, self.world.clock.now(), token)
        self.requests[request_id] = req
        return req

    def finish(self, req: DsarRequest) -> None:
        """Decide outputs or failure once the job is due (call under the world lock)."""
        if req.outputs is not None or req.fail_reason is not None:
            return
        users = self._users(req)
        months = month_bounds(req.start, req.end)
        outputs: list[OutputFile] = []
        synthetic = [u for u in users if any(a in self.synthetic for a in u.all_ids)]
        if synthetic:
            size = max(self.synthetic.get(a, 0) for u in synthetic for a in u.all_ids)
            label = req.end.strftime("%Y-%m")
            outputs.append(OutputFile(synthetic[0].project, label, synthetic, 0, 0, size))
            req.outputs = outputs
            return
        for user in users:
            for label, count in user.monthly_counts(months).items():
                if count > DSAR_MAX_EVENTS_PER_MONTH:
                    req.fail_reason = (
                        f"User has {count} events in {label}; users with more than "
                        f"{DSAR_MAX_EVENTS_PER_MONTH} events per month are not supported"
                    )
                    return
        for project in sorted({u.project for u in users}):
            members = [u for u in users if u.project == project]
            for label, lo, hi in months:
                if any(c for u in members if (c := u.monthly_counts([(label, lo, hi)])[label])):
                    outputs.append(OutputFile(project, label, members, lo, hi))
        req.outputs = outputs

    def _users(self, req: DsarRequest) -> list[User]:
        world = self.world
        users: list[User] = []
        for name, project in world.projects.items():
            if project.region != req.region:
                continue
            if req.amplitude_id is not None:
                user = world.find_by_amplitude_id(name, req.amplitude_id)
                if user is not None and not user.deleted:
                    users.append(user)
            elif req.user_id is not None:
                users.extend(world.users_with_user_id(name, req.user_id))
        return users

    def wire(self, req: DsarRequest, now: datetime, base_url: str) -> dict[str, Any]:
        """The GET body of a request."""
        status = req.status(now)
        done = status == "done"
        urls = []
        if done and req.outputs is not None:
            urls = [f"{base_url}/api/2/dsar/requests/{req.request_id}/outputs/{n}" for n in range(len(req.outputs))]
        return {
            "requestId": req.request_id,
            "userId": req.user_id,
            "amplitudeId": req.amplitude_id,
            "startDate": req.start.isoformat(),
            "endDate": req.end.isoformat(),
            "status": status,
            "failReason": req.fail_reason if status == "failed" else None,
            "urls": urls,
            "expires": req.expires_at.date().isoformat() if done else None,
        }

    def stream(self, output: OutputFile) -> Iterator[bytes]:
        """The gzip-compressed JSON lines of one output, produced chunk by chunk."""
        level = 1 if output.synthetic_bytes else 6
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        if output.synthetic_bytes:
            lines = _synthetic_lines(output, self.world.projects[output.project].app)
        else:
            lines = self._lines(output)
        buffer: list[bytes] = []
        size = 0
        for line in lines:
            buffer.append(line)
            size += len(line)
            if size >= 256 * 1024:
                chunk = compressor.compress(b"".join(buffer))
                buffer, size = [], 0
                if chunk:
                    yield chunk
        yield compressor.compress(b"".join(buffer)) + compressor.flush()

    def _lines(self, output: OutputFile) -> Iterator[bytes]:
        with self.world.lock:
            rows: list[bytes] = []
            for user in output.users:
                app = self.world.projects[user.project].app
                for i in range(len(user.events)):
                    event = user.event_at(i)
                    if output.lo_ms <= event.time_ms < output.hi_ms:
                        rows.append(json.dumps(event_json(user, event, app)).encode() + b"\n")
        random.Random(output.month).shuffle(rows)  # no ordering guarantee (docs/amplitude.md#downloading-outputs)
        yield from rows


def _synthetic_lines(output: OutputFile, app: int) -> Iterator[bytes]:
    """About ``synthetic_bytes`` of realistic event lines, generated from a template."""
    user = output.users[0]
    base_ms = user.created_ms
    template = json.dumps(
        {
            "app": app,
            "amplitude_id": user.amplitude_id,
            "user_id": user.user_id,
            "device_id": user.device_ids[0] if user.device_ids else None,
            "event_id": 0,
            "event_type": "Synthetic Event",
            "uuid": "UUID",
            "event_time": "EVENT_TIME",
            "server_upload_time": "EVENT_TIME",
            "event_properties": {"payload": "x" * 400},
            "user_properties": dict(user.properties),
        }
    )
    template = template.replace("%", "%%").replace('"event_id": 0', '"event_id": %d')
    template = template.replace('"UUID"', '"%032x"').replace('"EVENT_TIME"', '"%s"') + "\n"
    written = 0
    n = 0
    while written < output.synthetic_bytes:
        when = fmt_time(base_ms + n * 1000)
        line = (template % (n, n, when, when)).encode()
        written += len(line)
        n += 1
        yield line
