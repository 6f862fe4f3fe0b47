"""Fixtures: the emulator served over real HTTP on a free port (see docs/emulator-contract.md)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from amplitude_dsr.emulator.server import EmulatorServer


@dataclass
class Emu:
    """A running emulator plus its keys, for terse tests."""

    server: EmulatorServer
    state: dict[str, Any]
    catalog: dict[str, Any]
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def eu_url(self) -> str:
        return self.server.eu_base_url

    def project(self, name: str) -> dict[str, Any]:
        return next(p for p in self.state["projects"] if p["name"] == name)

    def auth(self, name: str) -> tuple[str, str]:
        p = self.project(name)
        return (p["api_key"], p["secret_key"])

    @property
    def org_auth(self) -> tuple[str, str]:
        return (self.state["org"]["api_key"], self.state["org"]["secret_key"])

    def client(self, project: str | None = "web", eu: bool = False) -> httpx.Client:
        auth = self.org_auth if project is None else self.auth(project)
        return httpx.Client(base_url=self.eu_url if eu else self.url, auth=auth, timeout=30)

    def get(self, path: str, project: str = "web", **params: Any) -> httpx.Response:
        """GET with a kept-alive client holding the project's keys."""
        if project not in self._clients:
            eu = self.project(project)["region"] == "eu"
            self._clients[project] = self.client(project, eu=eu)
        return self._clients[project].get(path, params=params)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def start_emu(**kwargs: Any) -> Iterator[Emu]:
    """Serve a fresh emulator for the duration of a fixture."""
    with EmulatorServer(**kwargs) as server:
        running = Emu(server, server.admin.state(), server.admin.catalog())
        try:
            yield running
        finally:
            running.close()


@pytest.fixture(scope="session")
def emu() -> Iterator[Emu]:
    """A shared emulator (seed 7) whose rate limits are not enforced and whose clock is not
    advanced by tests (tests that move the clock or spend budgets use ``fresh_emu``)."""
    for running in start_emu(seed=7):
        running.server.admin.set_limits(enforce=False)
        yield running


@pytest.fixture
def fresh_emu() -> Iterator[Emu]:
    """A private emulator for one test (its own clock and jobs; limits not enforced)."""
    for running in start_emu(seed=11):
        running.server.admin.set_limits(enforce=False)
        yield running


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """A plain kept-alive client (no auth, no redirects followed)."""
    with httpx.Client(timeout=30) as client:
        yield client
