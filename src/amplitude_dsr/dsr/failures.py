"""What a workflow says when something it did not expect goes wrong (a bug, a database outage).

A deliberate error (:class:`~amplitude_dsr.errors.DsrError`) carries an identifier-free message
and is reported as it is. Anything else would otherwise end the workflow in DBOS ``ERROR`` and
leave the request in its last non-final state forever, so the workflows mark the request
``failed`` with the exception's *type* only: its message may quote SQL parameters or response
bodies that hold identifiers. The traceback's frames (file, line, function; no values) go to
the log for the operator.
"""

from __future__ import annotations

import logging
import traceback

from amplitude_dsr.errors import DsrError

log = logging.getLogger("amplitude_dsr.dsr")


def failure_reason(kind: str, request_id: str, exc: Exception) -> str:
    """The one-line reason recorded for a request that ``exc`` ended; logs unexpected ones."""
    if isinstance(exc, DsrError):
        return str(exc)
    frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__, limit=-8)))
    log.error(
        "%s request %s failed unexpectedly (%s); innermost frames:\n%s", kind, request_id, type(exc).__name__, frames
    )
    return f"{type(exc).__name__}: unexpected error (the worker log has where); submit the request again"
