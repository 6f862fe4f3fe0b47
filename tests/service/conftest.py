"""Service fixtures: the real ``amplitude-dsr serve`` in a child process (uvicorn on a free port)
beside this test's emulator and database, tokens made with ``amplitude-dsr tokens create``, and a
callback receiver (a plain HTTP server in a thread) that records every POST as it arrived."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import proc
from tests.e2e.conftest import api_calls, catalog, db_url, emulator, env_for

__all__ = ["api_calls", "catalog", "db_url", "emulator"]

START_TIMEOUT = 60.0
UUID_A = "8f0e4c1a-5b7d-4e2a-9c3f-1a2b3c4d5e6f"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """``tests.e2e.proc.eventually`` with the service tests' longer default (a subprocess service)."""
    return proc.eventually(check, what, timeout)


@pytest.fixture
def service_env(emulator: Any, db_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of every child process of a test: the emulator's keys, the database, a
    home of its own, and this interpreter's import path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMPLITUDE_", "XDG_"))}
    env.update(env_for(emulator, db_url))
    env.update({"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg-data")})
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``amplitude-dsr ARGS`` in a child process."""
    cmd = [sys.executable, "-m", "amplitude_dsr.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def make_token(service_env: dict[str, str]) -> Callable[..., str]:
    """``make_token(name, *scopes)``: a new bearer token, made by the CLI."""

    def make(name: str, *scopes: str) -> str:
        args = ["tokens", "create", "--name", name, "--json"]
        for scope in scopes:
            args += ["--scope", scope]
        done = cli(service_env, *args)
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["token"])

    return make


class ServiceProcess:
    """``amplitude-dsr serve`` in a child process; ``url`` once it answers ``/healthz``."""

    def __init__(self, env: dict[str, str], log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "amplitude_dsr.cli", "serve", "--port", str(self.port), *extra]
        self._out = log.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"serve did not answer: {log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM (graceful), then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return int(self.proc.returncode)


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """``start_service(*extra_args)``: a running service (stopped at the end of the test)."""
    started: list[ServiceProcess] = []

    def start(*extra: str) -> ServiceProcess:
        svc = ServiceProcess(service_env, tmp_path / f"serve-{len(started)}.log", *extra)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()


@dataclass
class Received:
    """One callback as it arrived: path, headers (lower-case names), the raw body."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class Receiver:
    """A controller's callback endpoint. ``fail_first``: answer 500 to that many POSTs first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[Received] = []
        self.refused: list[Received] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    outer.refused.append(got)
                    self.send_response(500)
                else:
                    outer.received.append(got)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callbacks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def erasure(subject_request_id: str, *identities: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """An OpenDSR erasure request body."""
    return request_body("erasure", subject_request_id, *identities, **extra)


def request_body(kind: str, subject_request_id: str, *identities: tuple[str, str], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject_request_id": subject_request_id,
        "subject_request_type": kind,
        "regulation": "gdpr",
        "submitted_time": "2026-12-01T10:00:00Z",
        "subject_identities": [
            {"identity_type": t, "identity_value": v, "identity_format": "raw"} for t, v in identities
        ],
    }
    body.update(extra)
    return body
