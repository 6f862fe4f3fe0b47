"""The FastAPI application of the emulator, with the gate (auth, limits, faults, log) in front."""

from __future__ import annotations

from fastapi import FastAPI

from . import routes_admin, routes_admin_ops, routes_dashboard, routes_dsar, routes_privacy
from .gate import Gate, Receive, Scope, Send
from .world import World


class EmulatorApp(FastAPI):
    """FastAPI whose outermost layer is the ``Gate`` (so it sees the server's raw ``send``)."""

    def __init__(self, world: World) -> None:
        super().__init__(
            title="Amplitude emulator (amplitude-dsr)",
            docs_url="/_admin/docs",
            redoc_url=None,
            openapi_url="/_admin/openapi.json",
        )
        self.world = world
        self._gate = Gate(super().__call__, world)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._gate(scope, receive, send)


def create_app(world: World) -> FastAPI:
    """Build the ASGI app serving ``world``."""
    app = EmulatorApp(world)
    routes_dashboard.register(app, world)
    routes_privacy.register(app, world)
    routes_dsar.register(app, world)
    routes_admin.register(app, world)
    routes_admin_ops.register_ops(app, world)
    return app
