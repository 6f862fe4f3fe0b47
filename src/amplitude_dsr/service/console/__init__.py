"""The console: a web dashboard under ``/ui`` for the privacy team (``docs/console.md``).

Server-rendered HTML (Jinja2) and one stylesheet, all served by the package: no script, no CDN,
no font from elsewhere, so it works offline. Sign-in takes a service token (``read``: read-only;
``admin``: actions too); every form carries a CSRF token."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from amplitude_dsr.service.console import actions, detail, listing, ops, signin
from amplitude_dsr.service.console.session import Sessions, load_or_create_key
from amplitude_dsr.service.console.web import HERE, Console, Forbidden, SignInRequired, redirect, render
from amplitude_dsr.service.context import Service
from amplitude_dsr.store import console_repo, digests

__all__ = ["KEY_DIR", "mount"]

KEY_DIR = "service"  # under the data directory, beside the processor's key pair and the results key


def mount(app: FastAPI, service: Service) -> None:
    """Serve the console under ``/ui`` on ``app`` (its key is made on first start)."""
    console_repo.ensure_indexes(service.rt.engine)
    digests.backfill(service.rt.engine)  # once per database: requests stored before the index
    app.state.console = Console(Sessions(load_or_create_key(service.rt.data_dir / KEY_DIR)))
    for part in (signin, listing, detail, actions, ops):
        app.include_router(part.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(_request: Request, _exc: SignInRequired) -> Response:
        return redirect("/ui/login")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "message.html", {"title": "Refused", "message": exc.message}, who=None, status=403)
