"""The ASGI gate in front of the routes: region prefix, auth, faults, rate limits, request log.

Order for an API call: strip ``/eu`` -> authenticate (401) -> apply due lifecycles -> take a
matching fault (429/5xx answer at once) -> admit against the rate-limit pools (429) -> slow or
hang -> run the route -> malformed, dropped or held (``delay_after``: logged, then answered after
``delay``) response -> log. Admin calls pass straight through.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .auth import find_project, is_org, parse_basic
from .faults import Fault
from .limits import RateLimited, Ticket
from .world import World

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    """How a path is authenticated and budgeted."""

    family: str  # "project", "org", "admin", "storage" or "other"
    pool: str | None = None
    cost: int = 1
    caps: tuple[tuple[str, int], ...] = ()


def classify(method: str, path: str) -> Endpoint:
    """The auth family, rate pool, cost and concurrency caps of a request."""
    if path.startswith("/_admin"):
        return Endpoint("admin")
    if path.startswith("/_storage"):
        return Endpoint("storage", "storage")
    if path in ("/api/2/usersearch", "/api/2/useractivity"):
        return Endpoint("project", "usersearch", 1, (("rest", 1), ("usersearch", 1)))
    if path == "/api/2/events/list":
        return Endpoint("project", "cost", 1, (("rest", 1), ("cost", 1)))
    if path.startswith("/api/2/deletions/users"):
        return Endpoint("project", "deletions", 1, (("deletions", 1),))
    if path.startswith("/api/2/dsar/requests"):
        return Endpoint("org", "dsar", 8 if method == "POST" else 1)
    return Endpoint("other")


@dataclass
class Captured:
    """The response as the route produced it."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


async def respond(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    """Send a complete JSON response."""
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


def drop_connection(send: Send) -> bool:
    """Close the client connection without a response (uvicorn h11 protocol only)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None:
        return False
    cycle.disconnected = True
    transport.close()
    return True


class Gate:
    """ASGI middleware implementing auth, faults, limits and logging around ``app``."""

    def __init__(self, app: ASGIApp, world: World) -> None:
        self.app = app
        self.world = world

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        region = "us"
        if path == "/eu" or path.startswith("/eu/"):
            region, path = "eu", path[3:] or "/"
            scope["path"] = path
            scope["raw_path"] = path.encode()
        state = scope.setdefault("state", {})
        state["region"] = region
        method: str = scope["method"]
        endpoint = classify(method, path)
        if endpoint.family == "admin":
            await self.app(scope, receive, send)
            return
        raw_body, receive = await _buffer_body(receive)
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "region": region,
            "query": _query(scope),
            "body": _body(raw_body, scope),
            "project": None,
            "pool": endpoint.pool,
        }
        try:
            await self._handle(scope, receive, send, endpoint, entry)
        finally:
            if not entry.pop("logged", False):
                self.world.log.record(**entry)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint, entry: dict[str, Any]
    ) -> None:
        world = self.world
        state = scope["state"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        scope_key = "org"
        if endpoint.family in ("project", "org"):
            creds = parse_basic(headers.get("authorization"))
            if endpoint.family == "project":
                project = find_project(world.projects, state["region"], creds)
                if project is None:
                    entry["status"] = 401
                    await respond(send, 401, _auth_error(creds is None))
                    return
                state["project"] = entry["project"] = scope_key = project.name
            elif not is_org(world.org, creds):
                entry["status"] = 401
                message = "DSAR requires the org-level API key and secret key"
                await respond(send, 401, {"error": message} if creds else _auth_error(True))
                return
        world.refresh()
        fault = None
        if endpoint.family != "storage":
            fault = world.faults.take(entry["method"], entry["path"], entry["project"])
        if fault is not None:
            entry["fault"] = fault.kind
        if fault is not None and fault.kind in ("429", "500", "502", "503"):
            entry["status"] = int(fault.kind)
            await _fault_response(send, fault)
            return
        ticket: Ticket | None = None
        if endpoint.family in ("project", "org"):
            try:
                ticket = world.limits.admit(endpoint.pool, scope_key, endpoint.cost, list(endpoint.caps))
            except RateLimited as limited:
                entry["status"] = 429
                body = {"error": "rate limit exceeded", "limit": limited.message}
                await respond(send, 429, body)
                return
        try:
            await self._run(scope, receive, send, fault, entry)
        finally:
            if ticket is not None:
                ticket.release()

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, fault: Fault | None, entry: dict[str, Any]
    ) -> None:
        kind = fault.kind if fault else None
        if fault is not None and kind == "slow":
            await asyncio.sleep(fault.delay)
        if kind == "hang":
            await self._hang(receive)
            entry["status"] = None
            drop_connection(send)
            return
        if kind not in ("malformed", "drop_after", "delay_after"):
            captured = Captured()

            async def passthrough(message: Message) -> None:
                if message["type"] == "http.response.start":
                    captured.status = message["status"]
                await send(message)

            await self.app(scope, receive, passthrough)
            entry["status"] = captured.status
            return
        captured = Captured()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured.status = message["status"]
                captured.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured.body += message.get("body", b"")

        await self.app(scope, receive, capture)
        if fault is not None and kind == "delay_after":
            entry["status"] = captured.status
            self.world.log.record(**entry)  # visible in the log while the answer is held back
            entry["logged"] = True
            await self._sleep(fault.delay)
            await send({"type": "http.response.start", "status": captured.status, "headers": captured.headers})
            await send({"type": "http.response.body", "body": captured.body})
            return
        if kind == "drop_after":
            entry["status"] = None
            if drop_connection(send):
                return
            raise ConnectionAbortedError("drop_after fault")
        broken = captured.body[: max(1, len(captured.body) // 2)] or b"{"
        entry["status"] = captured.status
        hdrs = [(k, v) for k, v in captured.headers if k.lower() != b"content-length"]
        hdrs.append((b"content-length", str(len(broken)).encode()))
        await send({"type": "http.response.start", "status": captured.status, "headers": hdrs})
        await send({"type": "http.response.body", "body": broken})

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the server stops."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while not self.world.stopping.is_set() and loop.time() < end:
            await asyncio.sleep(min(0.1, end - loop.time()))

    async def _hang(self, receive: Receive) -> None:
        """Wait until the client goes away or the server stops."""
        while not self.world.stopping.is_set():
            try:
                message = await asyncio.wait_for(receive(), timeout=0.1)
            except TimeoutError:
                continue
            if message["type"] == "http.disconnect":
                return


def _auth_error(missing: bool) -> dict[str, str]:
    if missing:
        return {"error": "Missing or malformed Authorization header (HTTP Basic key:secret)"}
    return {"error": "Invalid API key or secret key"}


async def _fault_response(send: Send, fault: Fault) -> None:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(int(fault.retry_after))
    if fault.kind == "429":
        body = {"error": "rate limit exceeded", "limit": "injected fault: 429"}
        await respond(send, 429, body, headers)
    else:
        await respond(send, int(fault.kind), {"error": f"injected fault: {fault.kind}"}, headers)


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body", False))
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _query(scope: Scope) -> dict[str, Any]:
    parsed = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def _body(raw: bytes, scope: Scope) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
