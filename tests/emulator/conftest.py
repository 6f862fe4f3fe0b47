"""Fixtures: the emulator served over real HTTP on a free port (see docs/emulator-contract.md)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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
        base = self.eu_url if self.project(project)["region"] == "eu" else self.url
        return httpx.get(base + path, params=params, auth=self.auth(project), timeout=30)


def start_emu(**kwargs: Any) -> Iterator[Emu]:
    """Serve a fresh emulator for the duration of a fixture."""
    with EmulatorServer(**kwargs) as server:
        yield Emu(server, server.admin.state(), server.admin.catalog())


@pytest.fixture(scope="session")
def emu() -> Iterator[Emu]:
    """A shared emulator (seed 7) whose rate limits are not enforced and whose clock is not
    advanced by tests (tests that move the clock or spend budgets use ``fresh_emu``)."""
    for running in start_emu(seed=7):
        running.server.admin.set_limits(enforce=False)
        yield running


@pytest.fixture
def fresh_emu() -> Iterator[Emu]:
    """A private emulator for one test (clock, jobs and budgets are its own)."""
    yield from start_emu(seed=11, rate_scale=1000.0)
