"""The durable entry points, as one DBOS configured instance that carries the services.

Every workflow DBOS runs for us is a method of :class:`Workflows`. The instance is built once per
process by the composition root (``dsr/executor.py``) from that process's :class:`Runtime` (the
settings, database, budgets and Amplitude clients) and registered with DBOS under a fixed name,
so a recovered workflow finds the services of the process that recovers it. Each method reads the
services once, when it starts, and passes them to every step explicitly: nothing below looks
them up.

The workflow names are the stored contract of every DBOS row (``runtime.shared_queue``, the
enqueues of ``dsr/intake.py`` and ``DBOSClient``): renaming one strands the rows that carry it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dbos import DBOS, DBOSConfiguredInstance

from amplitude_dsr.dsr import access, deletion, finish, submission, tracking
from amplitude_dsr.dsr.runtime import Runtime

CLASS_NAME = "amplitude_dsr.Workflows"
INSTANCE_NAME = "amplitude-dsr"


@DBOS.dbos_class(CLASS_NAME)
class Workflows(DBOSConfiguredInstance):
    """The request, flusher, tracker and verification workflows of this process."""

    _registered: ClassVar[Workflows | None] = None

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        super().__init__(INSTANCE_NAME)

    @classmethod
    def serving(cls, rt: Runtime) -> Workflows:
        """The instance DBOS knows under :data:`INSTANCE_NAME`, now serving ``rt``. DBOS keeps
        one registered instance per name for the life of the process (a test opens several
        runtimes in one process): a later runtime takes it over; a workflow already running keeps
        the services it started with."""
        if cls._registered is None:
            cls._registered = cls(rt)
        cls._registered.rt = rt
        return cls._registered

    @DBOS.workflow(name="access_workflow")
    def access(self, request_id: str) -> str:
        return access.access_workflow(self.rt, request_id)

    @DBOS.workflow(name="deletion_workflow")
    def deletion(self, request_id: str) -> str:
        return deletion.deletion_workflow(self.rt, request_id)

    @DBOS.workflow(name="flush_workflow")
    def flush(self, project: str) -> int:
        return submission.flush_workflow(self.rt, project)

    @DBOS.workflow(name="track_workflow")
    def track(self, project: str) -> int:
        return tracking.track_workflow(self.rt, project)

    @DBOS.workflow(name="verify_workflow")
    def verify(self, request_id: str) -> str:
        return finish.verify_workflow(self.rt, request_id)


def entry(workflows: Any, kind: str) -> Any:
    """The bound workflow method of a request kind (``access`` or ``deletion``)."""
    return workflows.access if kind == "access" else workflows.deletion
