"""Projects paused because Amplitude refuses their credentials (``dsr_project_pauses``).

A refused key while Amplitude holds our deletion jobs is something the operator fixes (rotate the
secret, correct the region), not a reason to fail requests: their workflows wait and retry, and
the first call that succeeds again clears the pause. ``status`` lists the pauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from amplitude_dsr.store.tables import project_pauses


@dataclass(frozen=True)
class Pause:
    """A paused project: why (identifier-free) and since when."""

    project: str
    reason: str
    since: datetime


def pause(engine: sa.Engine, project: str, reason: str) -> bool:
    """Record a pause of ``project``; True if it was not paused before (log it then)."""
    with engine.begin() as conn:
        exists = conn.execute(sa.select(project_pauses.c.project).where(project_pauses.c.project == project)).first()
        if exists is not None:
            return False
        try:
            with conn.begin_nested():
                conn.execute(project_pauses.insert().values(project=project, reason=reason, since=datetime.now(UTC)))
        except sa.exc.IntegrityError:  # another process paused it at the same moment
            return False
    return True


def resume(engine: sa.Engine, project: str) -> bool:
    """Clear ``project``'s pause; True if there was one."""
    with engine.begin() as conn:
        res = conn.execute(project_pauses.delete().where(project_pauses.c.project == project))
    return res.rowcount > 0


def active(engine: sa.Engine) -> list[Pause]:
    """Every paused project, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(project_pauses).order_by(project_pauses.c.since)).all()
    return [Pause(r.project, r.reason, r.since if r.since.tzinfo else r.since.replace(tzinfo=UTC)) for r in rows]
