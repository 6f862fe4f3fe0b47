"""What every console route shares: the templates, the signed-in viewer, form bodies and the
CSRF check, and the headers every page is sent with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from amplitude_dsr.service.console.session import COOKIE, Sessions, Viewer, now
from amplitude_dsr.service.context import Service, service_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
MAX_FORM_BYTES = 16_384
# No script, style or image from anywhere but this service; no framing; no referrer leaves.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Console:
    """The console's state, kept on the app: its sessions."""

    sessions: Sessions


def console_of(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""


class Forbidden(Exception):
    """A signed-in viewer without the role, or a form without a valid CSRF token: 403."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def viewer(request: Request) -> Viewer:
    """A dependency: the signed-in viewer (who must hold ``read`` or ``admin``)."""
    service = service_of(request)
    found = console_of(request).sessions.viewer(service.rt.engine, request.cookies.get(COOKIE), now())
    if found is None:
        raise SignInRequired
    if not found.may_read():
        raise Forbidden("this token may not read requests")
    return found


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (first value of each field)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("the form is too large")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def check_csrf(request: Request, who: Viewer, fields: dict[str, str]) -> None:
    if not console_of(request).sessions.csrf_ok(who.nonce, fields.get("csrf")):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page and try again")


def require_admin(who: Viewer) -> None:
    if not who.admin:
        raise Forbidden("this action needs a token with the admin scope")


def secure(request: Request, service: Service) -> bool:
    """Whether cookies get ``Secure``: the request came over HTTPS, or the public URL is HTTPS."""
    return request.url.scheme == "https" or service.config.public_url.startswith("https://")


def render(request: Request, name: str, context: dict[str, Any], *, who: Viewer | None, status: int = 200) -> Response:
    sessions = console_of(request).sessions
    page: HTMLResponse = templates.TemplateResponse(
        request,
        name,
        {"who": who, "csrf": sessions.csrf(who.nonce) if who else "", "now": datetime.now(UTC), **context},
        status_code=status,
    )
    page.headers.update(HEADERS)
    return page


def redirect(path: str) -> RedirectResponse:
    response = RedirectResponse(path, status_code=303)
    response.headers.update(HEADERS)
    return response
