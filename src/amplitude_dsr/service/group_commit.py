"""Group commit of OpenDSR submissions: the POSTs that arrive together are stored together.

Every accepted ``POST /requests`` must be durable before its 201: the request's row, its
``received`` audit entry, its workflow's enqueue and the ``subject_request_id`` mapping. Written
one POST per transaction, each POST pays its own commit (a WAL fsync), its own turn at the audit
chain's writer lock and a pooled connection, and 50 concurrent clients queue for them.

Here one thread (the *committer*) takes every submission waiting when it becomes free and stores
them in **one** transaction (``dsr.api.submit_prepared``: the rows, the enqueues, the audit entries
and the mappings). Nobody waits for a timer: while a group commits, the next one gathers, so
the group grows with the load and a lone POST is committed at once. Each caller's future is
resolved only after the shared commit returns, so a 201 still means "durably stored". If the
transaction fails, nothing of the group is written and every caller of the group gets the error
(the service answers 503: retry; the same ``subject_request_id`` is idempotent).

Idempotency holds as before, and better: a group first reads which of its IDs are mapped
already (one query) and submits only the others; several POSTs of one ID in a group submit it
once; concurrent groups of other processes agree on one request through the request's
idempotency key and the mapping's primary key (``INSERT ... ON CONFLICT DO NOTHING``, then the
holders are read back in the same transaction).
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import sqlalchemy as sa

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.intake import Prepared
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.store import service_repo

MAX_GROUP = 500  # submissions per transaction (dsr/intake.py's chunk)
STOP_TIMEOUT = 60.0  # seconds stop() waits for the committer to finish what it holds

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """What a caller gets once the group committed: the mapping stored for its ID (its own, or
    the one another POST of the same ID stored first) and the request's regulation deadline."""

    mapped: service_repo.MappedRequest
    deadline: datetime | None


@dataclass
class Submission:
    """One POST waiting for its group: the mapping to store and the request made by
    ``api.prepare`` (``request_id`` is filled in by the commit)."""

    mapped: service_repo.MappedRequest
    prepared: Prepared
    future: Future[Stored] = field(default_factory=Future)


class GroupCommit:
    """The committer threads of one service process (started on first use, stopped with the app).

    ``committers``: groups committed at once. One is right on SQLite (one writer at a time
    anyway); on PostgreSQL a few overlap one group's round trips with another's. A
    ``subject_request_id`` always goes to the same committer, so two POSTs of one ID in this
    process never race each other (the first one's commit is seen by the second one's group).
    ``engine``: where to write (default the runtime's; the service passes its own pool)."""

    def __init__(
        self, rt: Runtime, *, engine: sa.Engine | None = None, committers: int = 1, max_group: int = MAX_GROUP
    ) -> None:
        self.rt = rt
        self.engine = engine or rt.engine
        self.max_group = max_group
        self._queues: list[queue.Queue[Submission | None]] = [queue.Queue() for _ in range(max(1, committers))]
        self._threads: list[threading.Thread] = []
        self._mutex = threading.Lock()
        self._stopped = False

    def submit(self, mapped: service_repo.MappedRequest, prepared: Prepared) -> Future[Stored]:
        """Queue one submission; its future resolves after the commit of its group (or raises
        what the group's transaction raised)."""
        item = Submission(mapped, prepared)
        shard = zlib.crc32(mapped.subject_request_id.encode()) % len(self._queues)
        with self._mutex:
            if self._stopped:
                raise RuntimeError("the service is stopping")
            if not self._threads:
                for n, q in enumerate(self._queues):
                    thread = threading.Thread(target=self._run, args=(q,), name=f"opendsr-commit-{n}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._queues[shard].put(item)
        return item.future

    def stop(self) -> None:
        """Commit what is queued, then end the threads."""
        with self._mutex:
            self._stopped = True
            threads = list(self._threads)
            for q in self._queues:
                q.put(None)
        for thread in threads:
            thread.join(STOP_TIMEOUT)

    def _run(self, source: queue.Queue[Submission | None]) -> None:
        stopping = False
        while not stopping:
            first = source.get()
            if first is None:
                break
            group = [first]
            while len(group) < self.max_group:
                try:
                    item = source.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self.commit(group)

    def commit(self, group: list[Submission]) -> None:
        """Store ``group`` in one transaction and resolve every caller's future."""
        try:
            stored = self._store(group)
        except Exception as exc:  # nothing of the group was written: every caller hears it
            _log.warning("a group of %d submissions was not stored (%s)", len(group), type(exc).__name__)
            for item in group:
                item.future.set_exception(exc)
            return
        for item in group:
            found = stored.get(item.mapped.subject_request_id)
            if found is None:  # cannot happen: every ID of the group is mapped by its commit
                item.future.set_exception(RuntimeError("the submission has no mapping after its commit"))
            else:
                item.future.set_result(found)

    def _store(self, group: list[Submission]) -> dict[str, Stored]:
        engine = self.engine
        sids = [item.mapped.subject_request_id for item in group]
        with engine.connect() as conn:
            known = service_repo.mapped_with_deadlines(conn, sids)
        fresh: dict[str, Submission] = {}
        for item in group:  # the first POST of an ID not mapped yet submits it
            if item.mapped.subject_request_id not in known:
                fresh.setdefault(item.mapped.subject_request_id, item)
        found = dict(known)
        if fresh:
            items = list(fresh.values())
            now = datetime.now(UTC)

            def also(conn: sa.Connection, results: list[tuple[str, bool]]) -> None:
                mapped = [
                    replace(item.mapped, request_id=rid, received_time=now)
                    for item, (rid, _) in zip(items, results, strict=True)
                ]
                service_repo.map_requests_in(conn, mapped)
                found.update(service_repo.mapped_with_deadlines(conn, list(fresh)))

            api.submit_prepared(self.rt, [item.prepared for item in items], also=also, engine=engine)
        return {sid: Stored(mapped, deadline) for sid, (mapped, deadline) in found.items()}
