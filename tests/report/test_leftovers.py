"""A package write killed midway leaves a hidden, marked work directory that the next write removes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from report_builders import access_result, event, write_events

from amplitude_dsr.dsr.report import write_access_package
from amplitude_dsr.dsr.report._output import INCOMPLETE_MARKER, STALE_AFTER, remove_leftovers

WRITER = """
import sys
from pathlib import Path
from amplitude_dsr.dsr.model import AccessResult
from amplitude_dsr.dsr.report import write_access_package
result = AccessResult.model_validate_json(Path(sys.argv[1]).read_text())
write_access_package(result, Path(sys.argv[2]))
"""


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _hidden(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.name.startswith("."))


def test_a_killed_write_is_marked_and_cleaned_by_the_next_write(tmp_path: Path) -> None:
    out = tmp_path / "out"
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    result = access_result(tmp_path, [event(i) for i in range(3)])
    result.subjects[0].events_path = str(fifo)
    spec = tmp_path / "result.json"
    spec.write_text(result.model_dump_json())
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(spec), str(out)])
    try:
        # First pass (the CSV header) reads the events through; the second pass blocks on the
        # FIFO with export.json and events.csv already begun: kill the writer right there.
        with fifo.open("w") as pipe:
            pipe.write("".join(json.dumps(event(i)) + "\n" for i in range(3)))
        _wait_for(lambda: any((d / "export.json").exists() for d in out.glob(".tmp-*")), "export.json")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    [leftover] = _hidden(out)
    assert leftover.name.startswith(".tmp-req-1-")
    assert (leftover / INCOMPLETE_MARKER).read_text().startswith("This directory is an interrupted package write")
    assert not (leftover / "manifest.json").exists()
    assert not (out / "req-1").exists()

    result.subjects[0].events_path = str(write_events(tmp_path / "events.jsonl", [event(i) for i in range(3)]))
    final = write_access_package(result, out)
    assert _hidden(out) == []
    assert sorted(p.name for p in final.iterdir()) == ["events.csv", "export.json", "manifest.json", "report.html"]


def test_leftovers_of_other_packages_go_only_when_stale(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old = time.time() - STALE_AFTER - 60
    stale = out / ".tmp-other-abc123"
    fresh = out / ".tmp-busy-def456"
    lookalike = out / ".tmp-req-1-x-ghi789"  # a write of request "req-1-x", not of "req-1"
    for directory in (stale, fresh, lookalike):
        directory.mkdir()
        (directory / "export.json").write_text("{}")
    for path in (stale / "export.json", stale):
        os.utime(path, (old, old))
    (out / "keep.txt").write_text("not ours")
    write_access_package(access_result(tmp_path, [event(1)]), out)
    assert sorted(p.name for p in out.iterdir()) == [".tmp-busy-def456", ".tmp-req-1-x-ghi789", "keep.txt", "req-1"]


def test_remove_leftovers_of_one_package(tmp_path: Path) -> None:
    for name in (".tmp-req-1-abc", ".old-req-1-0123456789ab", ".tmp-req-2-abc"):
        (tmp_path / name).mkdir()
    assert sorted(remove_leftovers(tmp_path, "req-1")) == [".old-req-1-0123456789ab", ".tmp-req-1-abc"]
    assert [p.name for p in tmp_path.iterdir()] == [".tmp-req-2-abc"]
    assert remove_leftovers(tmp_path, now=time.time() + STALE_AFTER + 1) == [".tmp-req-2-abc"]
