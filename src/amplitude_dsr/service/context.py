"""What every route needs, built once by the factory: the runtime, the service's settings, the
signer; and the dependencies that give a route its caller (authentication and scopes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.service import auth
from amplitude_dsr.service.errors import ApiError
from amplitude_dsr.service.group_commit import GroupCommit
from amplitude_dsr.service.links import ResultsLinks
from amplitude_dsr.service.signing import Signer

CALLBACK_BASE_DELAY = 5.0  # seconds before the first retry of a failed callback; doubles per attempt
CALLBACK_MAX_DELAY = 3600.0  # the cap of that backoff
CALLBACK_MAX_ATTEMPTS = 30  # then the delivery is given up (about a day of retries at the cap)
CALLBACK_TIMEOUT = 10.0  # seconds per callback POST
DELIVERY_INTERVAL = 1.0  # seconds between the delivery loop's rounds


@dataclass(frozen=True)
class ServiceConfig:
    """The service's own settings (the rest is :class:`amplitude_dsr.config.Settings`).

    ``public_url``: how controllers reach this service (scheme, host, port; no path). Its host
    is the processor domain of the ``X-OpenDSR-Processor-Domain`` header and the key of our
    extension block."""

    public_url: str
    callback_base_delay: float = CALLBACK_BASE_DELAY
    callback_max_delay: float = CALLBACK_MAX_DELAY
    callback_max_attempts: int = CALLBACK_MAX_ATTEMPTS
    callback_timeout: float = CALLBACK_TIMEOUT
    delivery_interval: float = DELIVERY_INTERVAL
    # the DataGrail webhook's shared secret; None: the endpoint answers 404
    datagrail_secret: str | None = field(default=None, repr=False)
    # new erasures wait in `held` until an admin approves them in the console (dsr/hold.py)
    hold_erasures: bool = False

    @property
    def domain(self) -> str:
        return urlsplit(self.public_url).hostname or "localhost"

    def url(self, path: str) -> str:
        return self.public_url.rstrip("/") + path


class Background(Protocol):
    """A thread the service starts with the app and stops on shutdown."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Service:
    """The running service: passed to :func:`amplitude_dsr.service.create_app`."""

    rt: Runtime
    config: ServiceConfig
    signer: Signer
    results: ResultsLinks
    background: list[Background] = field(default_factory=list)
    # OpenDSR submissions stored together (service/group_commit.py); made by create_app if None
    group_commit: GroupCommit | None = None
    # The HTTP handlers' own pool (dsr.executor.api_engine): POSTs and token look-ups do not queue
    # behind the embedded worker's steps. None: the runtime's engine.
    api_engine: sa.Engine | None = None

    @property
    def db(self) -> sa.Engine:
        """The engine the HTTP handlers' hot path uses."""
        return self.api_engine or self.rt.engine


def service_of(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


bearer = HTTPBearer(auto_error=False, description="A token from `amplitude-dsr tokens create`.")


def require(scope: str) -> Callable[..., auth.Caller]:
    """A dependency: the caller, who must hold ``scope`` (or ``admin``); else 401 or 403."""

    def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> auth.Caller:
        header = f"Bearer {credentials.credentials}" if credentials is not None else None
        caller = auth.authenticate(service_of(request).db, header)
        if caller is None:
            raise ApiError(401, "a valid bearer token is required", "Unauthorized")
        if not caller.may(scope):
            raise ApiError(403, f"this token lacks the {scope!r} scope", "Forbidden")
        return caller

    return dependency
