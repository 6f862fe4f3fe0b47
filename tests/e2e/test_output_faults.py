"""Our own disk refusing the report package: the Amplitude answers are already paid for, so the
write is retried durably instead of failing the request (and spending the budget again)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import repo

from .conftest import api_calls
from .test_deletion import eventually


def test_a_briefly_unwritable_output_directory_is_retried_not_failed(
    make_runtime: Callable[..., Runtime],
    emulator: EmulatorServer,
    catalog: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = catalog["web"]["ordinary"][0]
    user_id = user["user_id"]
    out = tmp_path / "out"
    out.write_text("a file where the output directory should be")  # the write fails with ENOTDIR
    rt = make_runtime()
    caplog.set_level(logging.WARNING, logger="amplitude_dsr")
    rid, _ = api.submit(rt, "access", [Identifier.parse("user_id", user_id)], options={"out_dir": str(out)})
    eventually(lambda: "write_package_step failing" in caplog.text, "a refused package write")
    assert repo.get_request(rt.engine, rid).status == "resolving"  # no DSAR phase: not failed either
    calls_before = len(emulator.admin.request_log())
    out.unlink()  # the operator frees the path
    assert api.wait(rt, rid, timeout=120) == "completed"
    row = repo.get_request(rt.engine, rid)
    export = json.loads((Path(row.out_dir or "") / "export.json").read_text())
    [subject] = export["subjects"]
    assert subject["amplitude_id"] == user["amplitude_id"] and subject["event_count"] == user["num_events"]
    # the retry rewrote the package from the checkpointed answers: no Amplitude call was repeated
    assert len(emulator.admin.request_log()) == calls_before
    assert len(api_calls(emulator, "/useractivity")) == 1
    assert user_id not in caplog.text  # the warning names no identifier
