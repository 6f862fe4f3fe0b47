"""A process for ``test_audit_exactly_once.py``: a workflow appends two audit entries.

    python -m tests.e2e.audit_crash_proc DATABASE_URL DATA_DIR crash|recover

``crash``: the process dies (``os._exit``) at the moment DBOS records the first audit step's
checkpoint, that is after the step's own work was committed. ``recover``: the same executor
starts again, DBOS recovers the workflow, and the audit kinds of the request are printed as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID
from dbos._sys_db import SystemDatabase

from amplitude_dsr.config import Settings
from amplitude_dsr.dsr import steps
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.store import audit

WORKFLOW_ID = "audit-crash-wf"
REQUEST_ID = "dsr_audit_crash"
SERVICES: dict[str, Runtime] = {}  # this test process's runtime, set before DBOS launches


@DBOS.workflow()
def two_entries(request_id: str) -> str:
    while "rt" not in SERVICES:  # recovered at launch, a moment before main() stores it
        time.sleep(0.05)
    rt = SERVICES["rt"]
    steps.audit_step(rt, request_id, "first", {"n": 1})
    steps.audit_step(rt, request_id, "second", {"n": 2})
    return "done"


def main() -> None:
    db_url, data_dir, mode = sys.argv[1:4]
    if mode == "crash":
        record = SystemDatabase.record_operation_result

        def dying(self: SystemDatabase, result: Any, **kwargs: Any) -> None:
            if result["function_name"] == "audit_step":
                os._exit(9)
            record(self, result, **kwargs)

        SystemDatabase.record_operation_result = dying  # type: ignore[method-assign]
    rt = SERVICES["rt"] = open_runtime(Settings(database_url=db_url), role="executor", data_dir=Path(data_dir))
    if mode == "crash":
        with SetWorkflowID(WORKFLOW_ID):
            DBOS.start_workflow(two_entries, REQUEST_ID).get_result()
        os._exit(3)  # not reached: the first audit step's checkpoint kills the process
    assert DBOS.retrieve_workflow(WORKFLOW_ID).get_result(polling_interval_sec=0.1) == "done"
    with rt.engine.connect() as conn:
        kinds = [e.kind for e in audit.entries(conn, REQUEST_ID)]
    print(json.dumps(kinds))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
