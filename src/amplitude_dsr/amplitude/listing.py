"""Deletion job listings (``GET /api/2/deletions/users``), held compactly.

A listed job carries every one of its Amplitude IDs: a company's job of the month may hold a
hundred thousand. Parsed into one pydantic model per ID, such a listing took about 90 MB of
Python objects at its peak (the decoded JSON, the models, their JSON dump for de-duplication) and
about 2 s of CPU, every tracking round (``bench/PROBLEMS.md``, P-8). Here the JSON decoder turns
each entry into a small tuple as soon as it is read (``object_hook``), and each job into a
:class:`ListedJob` whose IDs are one ``array('q')`` (8 bytes an ID) with, per ID, the index of its
``(requested_on_day, requester)`` pair among the job's few distinct pairs (4 bytes). Nothing
about a job is lost; what would take a model per ID is built only for the IDs asked for.

A body the fast path does not recognise (an unexpected type anywhere) is left as decoded and
validated with :class:`~amplitude_dsr.amplitude.models.DeletionJob`, so what counts as malformed
is exactly what the models say.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable, Iterator, Set
from typing import Any, NamedTuple

from amplitude_dsr.amplitude import listing_stream as stream
from amplitude_dsr.amplitude.caller import parse_model
from amplitude_dsr.amplitude.models import DeletionEntry, DeletionJob
from amplitude_dsr.errors import MalformedResponse

Origin = tuple[str | None, str | None]  # (requested_on_day, requester) of an entry
_INT64 = (-(2**63), 2**63 - 1)


class _Entry(NamedTuple):
    """One entry of a job's ``amplitude_ids`` while the body is decoded (JSON has no tuples)."""

    amplitude_id: int
    origin: Origin


class ListedJob:
    """One job of a listing: ``day``, ``status``, ``app``, ``active_scrub_done_date``,
    ``invalid_ids`` as in :class:`~amplitude_dsr.amplitude.models.DeletionJob`, and its
    Amplitude IDs in listing order as ``ids`` (an ``array('q')``)."""

    __slots__ = ("_origin_of", "_origins", "active_scrub_done_date", "app", "day", "ids", "invalid_ids", "status")

    def __init__(
        self,
        day: str,
        status: str,
        entries: Iterable[tuple[int, Origin]] = (),
        *,
        app: int | None = None,
        active_scrub_done_date: str | None = None,
        invalid_ids: Iterable[str] = (),
    ) -> None:
        self.day = day
        self.status = status
        self.app = app
        self.active_scrub_done_date = active_scrub_done_date
        self.invalid_ids = tuple(invalid_ids)
        self.ids = array("q")
        self._origin_of = array("I")
        index: dict[Origin, int] = {}
        for amplitude_id, origin in entries:
            self.ids.append(amplitude_id)
            self._origin_of.append(index.setdefault(origin, len(index)))
        self._origins: tuple[Origin, ...] = tuple(index)

    @classmethod
    def _of(
        cls,
        day: str,
        status: str,
        read: stream.Origins,
        *,
        app: int | None,
        active_scrub_done_date: str | None,
        invalid_ids: Iterable[str],
    ) -> ListedJob:
        """A job from entries already held in arrays (``listing_stream.Origins``)."""
        job = cls(day, status, app=app, active_scrub_done_date=active_scrub_done_date, invalid_ids=invalid_ids)
        job.ids, job._origin_of, job._origins = read.ids, read.origin_of, tuple(read.index)
        return job

    @classmethod
    def from_model(cls, job: DeletionJob) -> ListedJob:
        """The compact form of a parsed job (entries' ``user_id`` and unknown keys dropped)."""
        entries = [(e.amplitude_id, (e.requested_on_day, e.requester)) for e in job.amplitude_ids]
        return cls(job.day, job.status, entries, app=job.app, active_scrub_done_date=job.active_scrub_done_date,
                   invalid_ids=job.invalid_ids)  # fmt: skip

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"ListedJob(day={self.day!r}, status={self.status!r}, app={self.app!r}, ids={len(self.ids)})"

    def holds_any(self, amplitude_ids: Set[int]) -> bool:
        """Whether any of ``amplitude_ids`` is in this job."""
        return any(map(amplitude_ids.__contains__, self.ids))

    def count_held(self, amplitude_ids: Set[int]) -> int:
        """How many of this job's entries hold one of ``amplitude_ids``."""
        return sum(map(amplitude_ids.__contains__, self.ids))

    def entries(self, only: Set[int] | None = None) -> Iterator[tuple[int, str | None, str | None]]:
        """``(amplitude_id, requested_on_day, requester)`` in listing order, of the IDs in
        ``only`` (every entry when ``None``)."""
        origins, origin_of = self._origins, self._origin_of
        for i, amplitude_id in enumerate(self.ids):
            if only is None or amplitude_id in only:
                day, requester = origins[origin_of[i]]
                yield amplitude_id, day, requester

    @property
    def amplitude_ids(self) -> list[DeletionEntry]:
        """The entries as models, like ``DeletionJob.amplitude_ids``: one object per ID, so for
        small jobs and tests; big ones use :attr:`ids`, :meth:`holds_any` or :meth:`entries`."""
        return [DeletionEntry(amplitude_id=a, requested_on_day=d, requester=r) for a, d, r in self.entries()]

    def wire(self, only: Set[int] | None = None) -> dict[str, Any]:
        """The job as a stored receipt keeps it (``DeletionJob.model_dump(mode="json")`` without
        entries' ``user_id``), with only the entries and ``invalid_ids`` of ``only`` when given."""
        own = None if only is None else {str(i) for i in only}
        return {
            "day": self.day, "status": self.status,
            "amplitude_ids": [{"amplitude_id": a, "requested_on_day": d, "requester": r}
                              for a, d, r in self.entries(only)],
            "invalid_ids": [i for i in self.invalid_ids if own is None or i in own],
            "app": self.app, "active_scrub_done_date": self.active_scrub_done_date,
        }  # fmt: skip

    def fingerprint(self) -> bytes:
        """A digest of everything the job says (the same job listed twice has the same one)."""
        digest = hashlib.sha256(repr((self.app, self.day, self.status, self.active_scrub_done_date,
                                      self.invalid_ids, self._origins)).encode())  # fmt: skip
        digest.update(self.ids.tobytes())
        digest.update(self._origin_of.tobytes())
        return digest.digest()


def _opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _amplitude_id(value: Any) -> int | None:
    """The ID as the models would read it, when it is plainly one (else ``None``: the models decide)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if type(value) is int and _INT64[0] <= value <= _INT64[1]:
        return value
    return None


class _Compactor:
    """The ``object_hook`` of one body: entries to :class:`_Entry`, jobs to :class:`ListedJob`;
    anything else (or anything unexpected) is left as decoded. The ``(requested_on_day,
    requester)`` pairs are shared, so a hundred thousand entries hold a handful of strings."""

    def __init__(self) -> None:
        self.origins: dict[Origin, Origin] = {}

    def __call__(self, obj: dict[str, Any]) -> Any:
        if "day" in obj and "status" in obj:
            return self._job(obj)
        if "amplitude_id" in obj:
            return self._entry(obj)
        return obj

    def _entry(self, obj: dict[str, Any]) -> Any:
        amplitude_id = _amplitude_id(obj["amplitude_id"])
        day, requester, user_id = obj.get("requested_on_day"), obj.get("requester"), obj.get("user_id")
        if amplitude_id is None or not (_opt_str(day) and _opt_str(requester)):
            return obj
        if not (user_id is None or isinstance(user_id, str | int | float)):
            return obj
        origin = (day, requester)
        return _Entry(amplitude_id, self.origins.setdefault(origin, origin))

    def _job(self, obj: dict[str, Any]) -> Any:
        entries = obj.get("amplitude_ids", [])
        fields = _job_fields(obj)
        if fields is None or not isinstance(entries, list) or not all(type(e) is _Entry for e in entries):
            return obj
        day, status, app, scrubbed, invalid = fields
        return ListedJob(day, status, entries, app=app, active_scrub_done_date=scrubbed, invalid_ids=invalid)


def _job_fields(obj: dict[str, Any]) -> tuple[str, str, int | None, str | None, list[str]] | None:
    """A job's fields but its entries (``day``, ``status``, ``app``, ``active_scrub_done_date``,
    ``invalid_ids`` as text) when each is plainly what the models expect, else ``None``."""
    day, status = obj["day"], obj["status"]
    app, scrubbed = obj.get("app"), obj.get("active_scrub_done_date")
    raw = obj.get("invalid_ids", obj.get("invalid_id"))
    if not (isinstance(day, str) and isinstance(status, str)):
        return None
    if not ((app is None or type(app) is int) and _opt_str(scrubbed) and (not raw or isinstance(raw, list))):
        return None
    return day, status, app, scrubbed, [str(v) for v in raw] if raw else []


UNUSUAL = (
    stream.Unusual,
    ValueError,
    TypeError,
    KeyError,
    OverflowError,
    RecursionError,
)  # what the fast path may raise


def decode_listing(content: bytes) -> Any:
    """A deletion response body decoded with the compact jobs of :class:`_Compactor` (for
    :meth:`~amplitude_dsr.amplitude.caller.Caller.call`'s ``decode``). A body of the plain shape
    is read a window at a time (``listing_stream.py``: no copy of the body, no list of entries);
    anything else is decoded whole, which also judges what is malformed."""
    try:
        return _streamed(stream.Reader(stream.windows(content)))
    except UNUSUAL:  # not the plain shape: the ordinary decoder says what it is
        return json.loads(content, object_hook=_Compactor())


KEEP = 1 << 20  # bytes of a streamed listing kept, so that a body of another shape can be judged whole


class ReadAgain(Exception):
    """A streamed listing turned out not to be of the plain shape after more than :data:`KEEP`
    bytes, which were not kept: ask again and decode the body whole (``client.list_deletions``)."""


def read_listing(chunks: Iterator[bytes]) -> tuple[Any, bytes | None]:
    """A deletion response body read from its chunks as they arrive (for ``Caller.call``'s
    ``stream``): ``(jobs, None)`` for a body of the plain shape, which is never held whole; else
    ``(None, body)``, the whole body, for :func:`decode_listing` to judge. The chunks are kept
    only up to :data:`KEEP` bytes (a job of 100,000 IDs is 8.5 MB, held for nothing in all but
    the rarest round, bench P-8): a longer body found not to be plain past that point raises
    :class:`ReadAgain`. An error of the connection while reading is raised as it is."""
    kept: list[bytes] = []
    size = 0
    dropped = False

    def keep() -> Iterator[bytes]:
        nonlocal size, dropped
        for chunk in chunks:
            if not dropped:
                kept.append(chunk)
                size += len(chunk)
                if size > KEEP:
                    kept.clear()
                    dropped = True
            yield chunk

    try:
        return _streamed(stream.Reader(keep())), None
    except UNUSUAL:
        if dropped:
            raise ReadAgain from None
        return None, b"".join([*kept, *chunks])


def _streamed(reader: stream.Reader) -> ListedJob | list[ListedJob]:
    """The body's job, or array of jobs, read by ``reader``."""
    compactor = _Compactor()
    result: ListedJob | list[ListedJob]
    if reader.peek() == "{":
        result = _streamed_job(reader, compactor)
    else:
        reader.expect("[")
        result = []
        if reader.peek() == "]":
            reader.pos += 1
        else:
            while True:
                result.append(_streamed_job(reader, compactor))
                if reader.expect(",", "]") == "]":
                    break
    if reader.peek():
        raise stream.Unusual  # extra data after the value
    return result


def _streamed_job(reader: stream.Reader, compactor: _Compactor) -> ListedJob:
    reader.expect("{")
    fields: dict[str, Any] = {}
    origins = stream.Origins()
    if reader.peek() != "}":
        while True:
            key = reader.value()
            if not isinstance(key, str) or key in fields:
                raise stream.Unusual  # a duplicate key: the last one would win
            reader.expect(":")
            fields[key] = None if key == "amplitude_ids" else reader.value()
            if key == "amplitude_ids":
                _streamed_entries(reader, compactor, origins)
            elif key in ("invalid_ids", "invalid_id") and _holds_object(fields[key]):
                raise stream.Unusual  # an object among them: the hook would have changed it
            if reader.expect(",", "}") == "}":
                break
    else:
        reader.pos += 1
    if "day" not in fields or "status" not in fields:
        raise stream.Unusual
    plain = _job_fields(fields)
    if plain is None:
        raise stream.Unusual
    day, status, app, scrubbed, invalid = plain
    return ListedJob._of(day, status, origins, app=app, active_scrub_done_date=scrubbed, invalid_ids=invalid)


def _holds_object(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and any(map(_holds_object, value)))


def _streamed_entries(reader: stream.Reader, compactor: _Compactor, origins: stream.Origins) -> None:
    reader.expect("[")
    if reader.peek() == "]":
        reader.pos += 1
        return
    while True:
        if reader.peek() != "{":
            raise stream.Unusual
        obj = reader.value()
        entry = None if "day" in obj and "status" in obj else compactor(obj)
        if type(entry) is not _Entry:
            raise stream.Unusual
        origins.add(entry.amplitude_id, entry.origin)
        if reader.expect(",", "]") == "]":
            return


def _as_wire(value: Any) -> Any:
    """A value the fast path left alone, back as JSON data for the models to judge."""
    if isinstance(value, _Entry):
        day, requester = value.origin
        return {"amplitude_id": value.amplitude_id, "requested_on_day": day, "requester": requester}
    if isinstance(value, ListedJob):
        return value.wire()
    if isinstance(value, dict):
        return {k: _as_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_wire(v) for v in value]
    return value


def _job(item: Any, url: str) -> ListedJob:
    if isinstance(item, ListedJob):
        return item
    model = parse_model(DeletionJob, _as_wire(item), url)
    try:
        return ListedJob.from_model(model)
    except OverflowError:
        raise MalformedResponse("Amplitude listed an amplitude_id beyond 64 bits", url=url) from None


def parse_listing(data: Any, url: str) -> list[ListedJob]:
    """The jobs of a body decoded by :func:`decode_listing`: one object, or an array of jobs."""
    if isinstance(data, ListedJob | dict):
        return [_job(data, url)]
    if isinstance(data, list):
        return [_job(item, url) for item in data]
    raise MalformedResponse("Amplitude deletion response is neither an object nor a list", url=url)
