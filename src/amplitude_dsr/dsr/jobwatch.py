"""The executor's sweep over deletion work: the safety net that keeps every project's flusher and
tracker, and every due verification, running.

The workflows start each other (a request's workflow starts its project's flusher, the flusher
the tracker, the tracker the verifications), so the sweep rarely finds anything. It covers what
that chain cannot: a flusher or tracker that ended a moment before new work arrived (its
deduplicated start was refused while it was still running), a round limit reached, requests
left by an earlier version, and a crash between a step and the start it was about to make.
Starting is idempotent (deduplication keys, fixed verification IDs), so several executors
sweeping the same database start each workflow once.
"""

from __future__ import annotations

import threading

from amplitude_dsr.dsr.finish import start_verification
from amplitude_dsr.dsr.periodic import PeriodicCheck
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.dsr.submission import start_flusher
from amplitude_dsr.dsr.tracking import start_tracker
from amplitude_dsr.store import jobs as jobs_store

SWEEP_INTERVAL = 5.0  # seconds between two sweeps of one executor
READY_PER_SWEEP = 1000  # verifications started per sweep at most (the queue bounds how many run)


class JobsWatch(PeriodicCheck):
    """One sweep per :data:`SWEEP_INTERVAL`, the first at once."""

    name = "deletion sweep"

    def __init__(self, rt: Runtime, interval: float = SWEEP_INTERVAL) -> None:
        super().__init__(interval, first=0.0)
        self.rt = rt

    def check(self) -> int:
        """Start what is due; returns how many starts were attempted. Only projects configured
        here are served (another executor may hold other keys); a foreground command serves only
        the projects of its own deletions and verifies only its own requests."""
        rt = self.rt
        engine = rt.engine
        served = {p.name for p in rt.settings.projects}
        if rt.foreground_queue is not None:
            served &= set(jobs_store.projects_of(engine, rt.own_requests()))
        started = 0
        for project in jobs_store.projects_to_flush(engine):
            if project in served:
                start_flusher(rt, project)
                started += 1
        for project in jobs_store.projects_to_track(engine):
            if project in served:
                start_tracker(rt, project)
                started += 1
        for request_id in jobs_store.ready_requests(engine, limit=READY_PER_SWEEP):
            if rt.foreground_queue is None or rt.owns(request_id):
                start_verification(rt, request_id)
                started += 1
        return started


class SweepThread:
    """Runs a :class:`JobsWatch` in a thread of its own until :meth:`stop` (an executor's
    background duty, whether a ``worker`` or a foreground command)."""

    def __init__(self, watch: JobsWatch, tick: float = 0.5) -> None:
        self._watch = watch
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amplitude-dsr-sweep", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            self._watch.tick()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
