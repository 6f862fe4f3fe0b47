"""``/ui/login`` and ``/ui/logout``: a service token in, a session cookie out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from amplitude_dsr.service import auth
from amplitude_dsr.service.console.session import COOKIE, LOGIN_COOKIE, LOGIN_SECONDS, now
from amplitude_dsr.service.console.web import (
    Forbidden,
    check_csrf,
    console_of,
    form,
    redirect,
    render,
    secure,
    viewer,
)
from amplitude_dsr.service.context import service_of

router = APIRouter(prefix="/ui", include_in_schema=False)


def _login_page(request: Request, message: str = "", status: int = 200) -> Response:
    sessions = console_of(request).sessions
    nonce = sessions.login_nonce(now())
    page = render(
        request, "login.html", {"login_csrf": sessions.csrf(nonce), "message": message}, who=None, status=status
    )
    page.set_cookie(
        LOGIN_COOKIE, nonce, max_age=LOGIN_SECONDS, path="/ui", httponly=True, samesite="strict",
        secure=secure(request, service_of(request)),
    )  # fmt: skip
    return page


@router.get("/login")
def login_form(request: Request) -> Response:
    """The sign-in form."""
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token (as the API does) and open a session; the token's secret is not kept."""
    sessions, service = console_of(request).sessions, service_of(request)
    fields = await form(request)
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not sessions.login_nonce_fresh(nonce, now()) or not sessions.csrf_ok(nonce, fields.get("csrf")):
        raise Forbidden("the sign-in form expired or was not sent from this site; reload it and try again")
    token = fields.get("token", "").strip()
    caller = await run_in_threadpool(auth.authenticate, service.rt.engine, f"Bearer {token}")
    if caller is None:
        return _login_page(request, "That token is not valid (unknown, revoked or mistyped).", 401)
    if not caller.may("read"):
        return _login_page(request, "That token has neither the read nor the admin scope.", 403)
    response = redirect("/ui/requests")
    response.set_cookie(
        COOKIE, sessions.cookie_for(caller.token_id, now()), max_age=sessions.lifetime, path="/ui", httponly=True,
        samesite="strict", secure=secure(request, service),
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (the cookie is cleared)."""
    who = await run_in_threadpool(viewer, request)
    check_csrf(request, who, await form(request))
    response = redirect("/ui/login")
    response.delete_cookie(COOKIE, path="/ui")
    return response
