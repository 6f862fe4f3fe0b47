"""The command-line entry point and the package's public names."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx

import amplitude_dsr.emulator as emulator
from amplitude_dsr.emulator import World


def test_exported_members_sorted_and_present() -> None:
    assert emulator.__all__ == sorted(emulator.__all__)
    for name in emulator.__all__:
        assert hasattr(emulator, name)


def test_python_m_prints_credentials_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "amplitude_dsr.emulator", "--port", "0", "--seed", "3", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        doc = json.loads(process.stdout.readline())
        world = World.seeded(3)
        assert [p["api_key"] for p in doc["projects"]] == [p.api_key for p in world.projects.values()]
        assert doc["org"]["api_key"] == world.org.api_key
        web = next(p for p in doc["projects"] if p["name"] == "web")
        response = None
        for _ in range(100):
            try:
                response = httpx.get(
                    web["base_url"] + "/api/2/usersearch",
                    params={"user": "alice@example.com"},
                    auth=(web["api_key"], web["secret_key"]),
                )
                break
            except httpx.ConnectError:
                continue
        assert response is not None
        assert response.json()["type"] == "match_user_or_device_id"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
