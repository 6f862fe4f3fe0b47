"""The one exception tree of amplitude-dsr.

Every error the package raises on purpose derives from :class:`DsrError`::

    DsrError
    ├── UsageError                 bad input or configuration; the CLI exits 2, nothing is written
    │   └── ConfigError            settings or the config file are invalid or incomplete
    ├── AmplitudeError             an Amplitude call failed (carries status, redacted URL, body excerpt)
    │   ├── RetriableError         safe to retry after a short wait (retry machinery does so)
    │   │   ├── RateLimited        HTTP 429; carries ``retry_after`` and the pool name
    │   │   ├── ServerError        HTTP 5xx
    │   │   ├── TransportError     connect/read/write timeout or connection failure
    │   │   └── MalformedResponse  the body is not the JSON Amplitude documents (a proxy's error
    │   │                          page, a truncated answer): transient, like a 5xx
    │   ├── DeferredError          retry only at ``resume_at``; workflows sleep durably until then
    │   │   └── BudgetExhausted    our own budget (or Amplitude's) has no room before ``resume_at``
    │   ├── FatalError             retrying cannot help; the user must act
    │   │   ├── AuthenticationError  HTTP 401/403; message hints that the region may be wrong
    │   │   ├── BadRequest         HTTP 400 (or 422); Amplitude refused the parameters
    │   │   ├── NotFound           HTTP 404
    │   │   └── UnexpectedStatus   any other status
    │   └── UncertainOutcome       a non-idempotent call (a deletion POST) may or may not have
    │                              happened; reconcile by reading state, never by re-sending
    ├── OutputUnwritable           our own output (a report package) could not be written: a
    │                              full disk, a directory briefly unwritable; retried durably
    ├── SealedDataUnreadable       a stored checkpoint was sealed with another data key
    ├── ShuttingDown               this process stops; a workflow thread ends without an outcome
    └── DomainError                a privacy-request rule refused the operation
        ├── RequestNotFound        no request with that ID in the store
        ├── CancelRefused          the deletion can no longer be cancelled (``reason`` says why)
        └── AuditTamperDetected    the audit hash chain does not verify

Messages never contain secrets, emails or user IDs: identifiers are reported by kind and count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class DsrError(Exception):
    """Root of every deliberate amplitude-dsr error."""


class UsageError(DsrError):
    """Bad input from the user. The CLI prints one line and exits 2; nothing is written."""


class ConfigError(UsageError):
    """Invalid or missing configuration. The CLI prints one line and exits 2."""


class AmplitudeError(DsrError):
    """An Amplitude API call failed.

    Attributes carry context for logs and reports, never secrets or identifiers: ``status`` (HTTP
    status or ``None`` for transport failures), ``url`` (path only, query values redacted),
    ``body_excerpt`` (at most 200 characters of the response body), ``project`` (the configured
    project's name when a project client raised it).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str = "",
        body_excerpt: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.url = url
        self.body_excerpt = body_excerpt[:200]
        self.project = ""  # the configured project's name, set by the project's client

    def __str__(self) -> str:
        where = f" ({self.status} {self.url})" if self.status else (f" ({self.url})" if self.url else "")
        return f"{self.message}{where}"


class RetriableError(AmplitudeError):
    """Transient failure. Safe calls are retried with capped backoff; unsafe ones become
    :class:`UncertainOutcome`."""


class RateLimited(RetriableError):
    """HTTP 429. The pool named by ``pool`` is paused; the call is retried after ``retry_after``
    seconds (from ``Retry-After`` when Amplitude sends one, else computed backoff)."""

    def __init__(
        self,
        message: str,
        *,
        pool: str = "",
        retry_after: float | None = None,
        status: int | None = 429,
        url: str = "",
        body_excerpt: str = "",
    ) -> None:
        super().__init__(message, status=status, url=url, body_excerpt=body_excerpt)
        self.pool = pool
        self.retry_after = retry_after


class ServerError(RetriableError):
    """HTTP 5xx. Safe calls are retried with capped attempts and total time."""


class TransportError(RetriableError):
    """Network failure or timeout before a complete response. Retried for safe calls only."""


class MalformedResponse(RetriableError):
    """The response body is not the JSON that Amplitude documents. Treated as transient: a
    proxy's error page or a cut-off answer goes away by itself. Safe calls are retried (inline,
    then durably); for a deletion POST the outcome is uncertain and reconciled by listing jobs."""


class DeferredError(AmplitudeError):
    """The call cannot be made before ``resume_at``. Workflows sleep durably until then and
    retry; the CLI reports when the work will resume."""

    def __init__(self, message: str, *, resume_at: datetime, pool: str = "") -> None:
        super().__init__(message)
        self.resume_at = resume_at
        self.pool = pool

    def __reduce__(self) -> tuple[Any, ...]:
        # DBOS checkpoints a step's exception by pickling it and raises it again when a recovered
        # workflow replays the step. The default would call ``cls(message)`` without the
        # keyword-only ``resume_at`` and fail, ending the recovered workflow in error.
        return (_rebuild_deferred, (type(self), self.message, self.resume_at), self.__dict__)


def _rebuild_deferred(cls: type[DeferredError], message: str, resume_at: datetime) -> DeferredError:
    """Unpickle a :class:`DeferredError` (its other attributes are restored from its state)."""
    return cls(message, resume_at=resume_at)


class BudgetExhausted(DeferredError):
    """A rate budget has no room within the inline wait limit (ours at the budget fraction, or
    Amplitude's after repeated 429s)."""


class FatalError(AmplitudeError):
    """Retrying cannot help. The request fails with a message that says what the user can do."""


class AuthenticationError(FatalError):
    """HTTP 401/403: the key or secret is wrong, lacks permission, or belongs to the other
    region (EU keys are rejected by the US host and vice versa)."""


class BadRequest(FatalError):
    """HTTP 400/422: Amplitude refused the parameters (for example an unknown ID without
    ``ignore_invalid_id``)."""


class NotFound(FatalError):
    """HTTP 404: the resource (for example a DSAR request ID) does not exist."""


class UnexpectedStatus(FatalError):
    """Any status the client does not know how to interpret."""


class UncertainOutcome(AmplitudeError):
    """A non-idempotent call may have reached Amplitude but no receipt came back. The deletion
    workflow reconciles by listing jobs; it never re-sends the same IDs blindly."""


class OutputUnwritable(DsrError):
    """A report package could not be written (``errno`` says why: no space, no permission, a
    file where a directory should be). Waiting (or the operator) fixes it: workflows retry the
    write durably with backoff until the request's deadline, after the Amplitude calls it needs
    were paid for, so the work is not thrown away."""

    def __init__(self, errno: int | None, reason: str) -> None:
        super().__init__(f"the report package could not be written ({reason})")
        self.errno = errno


class SealedDataUnreadable(DsrError):
    """A DBOS checkpoint cannot be unsealed with this process's data keys: another key sealed it
    (``dsr/sealing.py``). The start-up fingerprint check refuses such a process before it reads
    anything, so this is met only if keys changed under a running process; give every process the
    database's key (``AMPLITUDE_DSR_DATA_KEY``) and restart it."""


class ShuttingDown(DsrError):
    """Raised in a workflow thread of a process whose executor has shut down (DBOS torn down):
    the thread ends at once, no outcome can be recorded any more, and the workflow stays pending
    for the next executor, from its last checkpoint. Workflows never treat it as a failure."""


class DomainError(DsrError):
    """A privacy-request rule refused the operation. The CLI prints the reason and exits 1."""


class RequestNotFound(DomainError):
    """No request with the given ID exists in the store."""


class CancelRefused(DomainError):
    """A deletion can no longer be cancelled: its job left ``staging`` or is within three days
    of its ``day``. ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot cancel: {reason}")
        self.reason = reason


class AuditTamperDetected(DomainError):
    """The audit trail's hash chain is broken at ``row_id``: a row was edited or removed."""

    def __init__(self, row_id: int) -> None:
        super().__init__(f"audit trail does not verify at row {row_id}: it was edited or removed")
        self.row_id = row_id
