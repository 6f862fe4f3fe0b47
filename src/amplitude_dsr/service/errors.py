"""Every error the API returns, in the OpenDSR error object:
``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``.

Bad input is a 400 that names the field, never a value (a value may be an email). An unexpected
exception is a 500 with a fixed message; its type is logged, not its text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("amplitude_dsr.service")

DOMAINS = {400: "Validation", 401: "Authentication", 403: "Authorization", 404: "NotFound", 503: "Unavailable"}


class ApiError(Exception):
    """An answer other than success: the status code, a one-line message, and a reason word."""

    def __init__(self, code: int, message: str, reason: str = "BadRequest") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


def error_body(code: int, message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The spec's error object (``details``: domain, reason, message each)."""
    default = [{"domain": DOMAINS.get(code, "Server"), "reason": "Error", "message": message}]
    return {"error": {"code": code, "message": message, "errors": details or default}}


def error_response(code: int, message: str, details: list[dict[str, str]] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return JSONResponse(error_body(code, message, details), status_code=code, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "subject_identities", 0, "identity_type")`` -> ``subject_identities[0].identity_type``."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_details(errors: Any) -> list[dict[str, str]]:
    """Pydantic's errors as detail objects: field and problem, never the input value."""
    details = []
    for e in list(errors)[:20]:
        where = _field(tuple(e.get("loc") or ()))
        reason = str(e.get("type") or "invalid")
        message = str(e.get("msg") or "invalid value")
        if reason == "json_invalid":
            where, message = "body", "the body is not valid JSON"
        details.append({"domain": "Validation", "reason": reason, "message": f"{where}: {message}"})
    return details


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the spec's error object."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        details = [{"domain": DOMAINS.get(exc.code, "Server"), "reason": exc.reason, "message": exc.message}]
        return error_response(exc.code, exc.message, details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(exc.errors())
        return error_response(400, details[0]["message"] if details else "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return error_response(exc.status_code, message)

    @app.middleware("http")
    async def _unexpected(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Caught here rather than by an ``Exception`` handler: Starlette re-raises after such a
        # handler and uvicorn then logs the traceback, whose message may hold a value.
        try:
            return await call_next(request)
        except sa.exc.OperationalError:  # the database is away: worth retrying, not a bug
            log.warning("database unavailable on %s %s", request.method, request.url.path)
            return error_response(503, "the database is unavailable; try again shortly")
        except Exception as exc:
            log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
            return error_response(500, "internal error; the service log names the failure")
