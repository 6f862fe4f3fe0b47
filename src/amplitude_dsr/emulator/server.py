"""Serve the emulator with uvicorn: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime
from types import FrameType, TracebackType

import uvicorn

from .admin_client import EmulatorAdmin
from .app import create_app
from .world import World


class _Server(uvicorn.Server):
    """A uvicorn server that also releases hanging requests when asked to exit."""

    def __init__(self, config: uvicorn.Config, world: World) -> None:
        super().__init__(config)
        self.world = world

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.world.stopping.set()
        super().handle_exit(sig, frame)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def make_server(world: World) -> _Server:
    """A uvicorn server for the world's app (h11, no lifespan, quiet)."""
    config = uvicorn.Config(
        create_app(world),
        log_level="warning",
        http="h11",
        lifespan="off",
        proxy_headers=False,
        timeout_graceful_shutdown=2,
        access_log=False,
    )
    return _Server(config, world)


def url_host(host: str) -> str:
    """The host to put in URLs (a wildcard bind address is reached via 127.0.0.1)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


class EmulatorServer:
    """Run the emulator in a background thread; use as a context manager."""

    def __init__(
        self,
        seed: int = 0,
        rate_scale: float = 1.0,
        clock_speed: float = 1.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start: datetime | None = None,
    ) -> None:
        self.world = World.seeded(seed, start, clock_speed, rate_scale)
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def base_url(self) -> str:
        """The US root, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def eu_base_url(self) -> str:
        """The EU root: ``base_url + '/eu'``."""
        return self.base_url + "/eu"

    @property
    def admin(self) -> EmulatorAdmin:
        """An admin client bound to this server."""
        return EmulatorAdmin(self.base_url)

    def start(self) -> EmulatorServer:
        """Start serving and wait until the server answers."""
        self._sock = bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        self._server = make_server(self.world)
        sock = self._sock
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="amplitude-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (hanging requests are released) and wait for the thread."""
        self.world.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
