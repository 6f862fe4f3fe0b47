"""The application factory: one FastAPI app around one open :class:`Service`.

The factory does no I/O of its own: the caller (``amplitude-dsr serve``, a test) opens the
runtime, loads the signer and passes them in. The app starts the service's background threads
(the callback loop, the embedded worker) when it starts and stops them when it shuts down; closing
the runtime stays with the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from amplitude_dsr import __version__
from amplitude_dsr.dsr import operations
from amplitude_dsr.service import console, datagrail, errors, metrics, models, opendsr, results
from amplitude_dsr.service.context import Service, service_of
from amplitude_dsr.service.group_commit import GroupCommit
from amplitude_dsr.store.service_tables import create_service_tables

# Groups committed at once on PostgreSQL (service/group_commit.py); SQLite has one writer.
COMMITTERS = 4

DESCRIPTION = (
    "Answers GDPR/CCPA access and erasure requests against Amplitude Analytics: the OpenDSR 2.0 "
    "processor API, signed status callbacks, health checks. See docs/service.md."
)


def create_app(service: Service) -> FastAPI:
    """The HTTP app of ``service`` (its tables are created if missing)."""
    create_service_tables(service.rt.engine)
    if service.group_commit is None:
        committers = COMMITTERS if service.db.dialect.name == "postgresql" else 1
        service.group_commit = GroupCommit(service.rt, engine=service.db, committers=committers)
    group_commit = service.group_commit

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for part in service.background:
            part.start()
        try:
            yield
        finally:
            # Requests in flight have finished (uvicorn drains them first): commit what is queued.
            await run_in_threadpool(group_commit.stop)
            for part in reversed(service.background):
                await run_in_threadpool(part.stop)

    app = FastAPI(
        title="amplitude-dsr", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, redoc_url=None,
    )  # fmt: skip
    app.state.service = service
    errors.install(app)
    app.include_router(opendsr.router)
    app.include_router(datagrail.router)
    app.include_router(results.router)
    app.include_router(metrics.router)
    console.mount(app, service)  # the web console under /ui (docs/console.md)

    @app.get("/healthz", response_model=models.Health, tags=["Operations"])
    def healthz() -> models.Health:
        """The process answers."""
        return models.Health(status="ok")

    @app.get("/readyz", response_model=models.Health, responses={503: {"model": models.Health}}, tags=["Operations"])
    def readyz(request: Request) -> JSONResponse:
        """The database answers, the background threads of this process are alive, and (API-only,
        ``--no-worker``) at least one worker holds its executor lock on the database."""
        checks = readiness(service_of(request))
        ok = all(v == "ok" for v in checks.values())
        body = models.Health(status="ok" if ok else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    app.openapi = lambda: openapi_without_422(app)  # type: ignore[method-assign]
    return app


def openapi_without_422(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document without its default 422 answers: bad input is a 400 with the
    OpenDSR error object here (``service/errors.py``)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def readiness(service: Service) -> dict[str, str]:
    """``database``, ``worker`` (API-only processes: a live worker's executor lock is the
    heartbeat, ``dsr/liveness.py``) and each background thread: ``ok`` or why not (no secret,
    no URL)."""
    checks: dict[str, str] = {}
    try:
        with service.rt.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    if not service.rt.executor:
        checks["worker"] = worker_check(service)
    for part in service.background:
        alive = getattr(part, "alive", None)
        if callable(alive):
            checks[type(part).__name__] = "ok" if alive() else "stopped"
    return checks


def worker_check(service: Service) -> str:
    """``ok`` when at least one worker process is alive on this database, else why not."""
    try:
        live = operations.live_workers(service.rt)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        return f"unknown ({type(exc).__name__})"
    return "ok" if live else "no live worker on this database (start `amplitude-dsr worker`)"
