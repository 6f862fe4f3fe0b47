"""A worker SIGKILLed in every phase of deletion (resolution, posting, tracking, verification)
and restarted each time: every request still ends final and verified, no ID is posted twice,
no request is lost, and Amplitude sees no more POSTs than a run without kills (100 + 20 IDs: 2).
Checked against the emulator's request log and the database."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit
from amplitude_dsr.store.db import make_engine
from amplitude_dsr.store.tables import requests

from .conftest import api_calls, env_for, settings_for
from .proc import eventually, start_worker, stop

SUBJECTS = 120
FINAL = {"verified", "recollected", "still_present", "nothing_found", "cancelled", "failed"}
# Each kill waits for its phase, or for any later one (a phase may pass before the restarted
# worker is watched): the order in which a deletion moves.
PHASES = [
    ("resolution", {"resolving", "resolved"}),
    ("posting", {"queued"}),
    ("tracking", {"staging", "submitted", "done"}),
    ("verification", {"verifying"}),
]


def _statuses(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(r[0] for r in conn.execute(sa.select(requests.c.status)))


def test_sigkill_in_every_phase_loses_nothing_and_posts_nothing_twice(
    emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    users = [emulator.admin.add_user("web", user_id=f"kill-{n:03d}@example.org", events=1) for n in range(SUBJECTS)]
    # Jobs take a few seconds of real time (one emulated day per 0.05 s) so tracking can be hit.
    emulator.admin.set_speed(86400.0 * 2)
    # No partial batch for lingering too long (a loaded machine may take over 30 s to resolve 120):
    # a partial batch goes only once nothing is resolving any more, so a run without kills is 2 POSTs.
    env = env_for(emulator, db_url, AMPLITUDE_DSR_POLL_INTERVAL="0.3", AMPLITUDE_DSR_MAX_LINGER="3600")
    # Submitted first by a submitter (it runs nothing), as `delete` beside a stopped worker.
    rt = open_runtime(settings_for(emulator, db_url), role="submitter", data_dir=tmp_path / "submitter")
    try:
        api.submit_many(rt, [api.Spec("deletion", [Identifier.parse("user_id", u["user_id"])]) for u in users])
    finally:
        rt.close()
    engine = make_engine(db_url)
    kills: list[tuple[str, Counter[str]]] = []
    worker: subprocess.Popen[str] = start_worker(env, tmp_path)
    try:
        for index, (phase, _) in enumerate(PHASES):
            later = set().union(*(s for _, s in PHASES[index:]))

            def reached(later: set[str] = later) -> Counter[str] | None:
                seen = _statuses(engine)
                return seen if any(seen[s] for s in later) or set(seen) <= FINAL else None

            seen = eventually(reached, f"the {phase} phase", timeout=120)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
            stop(worker)
            kills.append((phase, seen))
            worker = start_worker(env, tmp_path)
        eventually(lambda: set(_statuses(engine)) <= FINAL, "every request final", timeout=240)
    finally:
        stop(worker)
    try:
        final = _statuses(engine)
        with engine.connect() as conn:
            audit.verify(conn)  # the hash chain survived every kill
            request_ids = [r[0] for r in conn.execute(sa.select(requests.c.id))]
            for request_id in request_ids:
                kinds = Counter(e.kind for e in audit.entries(conn, request_id))
                assert kinds["received"] == 1 and kinds["queued"] == 1 and kinds["verified"] == 1, kinds
    finally:
        engine.dispose()
    assert final == {"verified": SUBJECTS}, (final, kills)
    sent = api_calls(emulator, "/deletions/users", "POST")
    posted = [aid for p in sent for aid in p["body"]["amplitude_ids"]]
    assert sorted(posted) == sorted(u["amplitude_id"] for u in users), "an ID was posted twice or never"
    assert len(sent) == 2, [len(p["body"]["amplitude_ids"]) for p in sent]
    assert [phase for phase, _ in kills] == [p for p, _ in PHASES]
