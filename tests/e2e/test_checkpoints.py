"""How many checkpoints a request costs: each is a commit to DBOS's tables and part of the
orchestration overhead per Amplitude call (bench/RESULTS.md section 5). The expected steps are
listed by name, so a step added without need fails here and says which."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbos import DBOS

from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.finish import verification_id
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import audit

from .conftest import api_calls


def step_names(workflow_id: str) -> list[str]:
    return [s["function_name"] for s in DBOS.list_workflow_steps(workflow_id)]


def entry_kinds(rt: Runtime, request_id: str) -> list[str]:
    with rt.engine.connect() as conn:
        return [e.kind for e in audit.entries(conn, request_id)]


def test_an_access_request_without_a_dsar_phase_costs_five_checkpoints(
    make_runtime: Callable[..., Runtime], emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][3]
    rt = make_runtime()
    rid, _ = api.submit(
        rt, "access", [Identifier.parse("user_id", user["user_id"])], options={"out_dir": str(tmp_path)}
    )
    assert api.wait(rt, rid, timeout=120) == "completed"
    # moved to resolving and read; two Amplitude calls; the package stamped with its time; the
    # final status with the `resolved` and `completed` entries in one transaction
    assert step_names(rid) == ["start_step", "search_step", "activity_step", "write_package_step", "record_step"]
    assert entry_kinds(rt, rid)[-2:] == ["resolved", "completed"]
    assert len(api_calls(emulator, "/usersearch")) == 1 and len(api_calls(emulator, "/useractivity")) == 1


def test_a_deletion_and_its_verification_checkpoints(
    make_runtime: Callable[..., Runtime], emulator: EmulatorServer, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][4]
    rt = make_runtime(max_linger=0.0)
    rid, _ = api.submit(
        rt, "deletion", [Identifier.parse("user_id", user["user_id"])], options={"out_dir": str(tmp_path)}
    )
    assert api.wait(rt, rid, timeout=120) == "verified"
    # resolved and queued in one transaction, then the project's flusher is started
    assert step_names(rid) == ["start_step", "search_step", "activity_step", "record_step", "flush_workflow"]
    # moved to verifying with the items and the request read; one search; its time; the outcome's
    # entry with the cancel check; the certificate; the final status
    assert step_names(verification_id(rid)) == [
        "begin_verification_step", "search_step", "now_step", "note_step", "certificate_step", "progress_step",
    ]  # fmt: skip
    kinds = entry_kinds(rt, rid)
    assert kinds.index("resolved") + 1 == kinds.index("queued")
    assert kinds.index("verified") < len(kinds)
    [post] = api_calls(emulator, "/api/2/deletions/users", "POST")
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]
