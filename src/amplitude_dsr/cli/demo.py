"""``demo``: the whole product in one command, against the built-in emulator.

Starts the emulator (fast clock, scaled limits), then runs an access request (project keys and
a DSAR export with org keys) and a deletion request through verification, and prints where the
reports and the certificate are.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import typer

from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import JSON_OPT, guarded
from amplitude_dsr.config import OrgConfig, ProjectConfig, Settings
from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import open_runtime
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.store import repo

DEMO_RATE_SCALE = 1000.0  # every documented limit x1000, so the demo takes seconds
DEMO_CLOCK_SPEED = 86400.0 * 4  # four emulated days per second: a deletion finishes in ~5 s


def demo(
    directory: Path = typer.Option(
        Path("amplitude-dsr-demo"), "--dir", metavar="DIR", help="Where the demo database and reports go (recreated)."
    ),
    seed: int = typer.Option(1, "--seed", metavar="SEED", help="Seed of the emulated world."),
    json_out: bool = JSON_OPT,
) -> None:
    """Run an access and a deletion request end to end against the built-in emulator."""
    _demo(directory, seed, json_out)


@guarded
def _demo(directory: Path, seed: int, json_out: bool) -> None:
    directory = directory.resolve()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)

    def say(message: str) -> None:
        if not json_out:
            common.err.print(message)

    started = time.monotonic()
    with EmulatorServer(seed=seed, rate_scale=DEMO_RATE_SCALE, clock_speed=DEMO_CLOCK_SPEED) as emu:
        state, catalog = emu.admin.state(), emu.admin.catalog()
        say(
            f"emulator running at {emu.base_url} "
            f"(seed {seed}, limits x{DEMO_RATE_SCALE:g}, clock x{DEMO_CLOCK_SPEED:g})"
        )
        settings = _settings(state, directory)
        rt = open_runtime(settings, role="executor", data_dir=directory / "data")
        try:
            web = catalog["web"]
            prefix_user = web["prefix_pairs"][0][0]  # "bob@example.co": "bob@example.com" must not leak in
            say("access request: exact match only (a prefix-colliding user exists), DSAR export with org keys ...")
            access_id, _ = api.submit(
                rt, "access", [Identifier.parse("user_id", prefix_user["user_id"])],
                options={"out_dir": str(directory / "reports")},
            )  # fmt: skip
            api.wait(access_id)
            victim = web["merged"]
            say("deletion request: merged Amplitude IDs included, tracked to done, then verified ...")
            delete_id, _ = api.submit(
                rt, "deletion", [Identifier.parse("user_id", victim["user_id"])],
                options={"out_dir": str(directory / "certificates")},
            )  # fmt: skip
            api.wait(delete_id)
            rows = [repo.get_request(rt.engine, access_id), repo.get_request(rt.engine, delete_id)]
        finally:
            rt.close()
        calls = len(emu.admin.request_log())
    doc = {
        "emulator_calls": calls,
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "requests": [
            {"request_id": r.id, "kind": r.kind, "status": r.status, "out_dir": r.out_dir, "error": r.error}
            for r in rows
        ],
        "database": settings.database_url,
    }
    if json_out:
        common.emit_json(doc)
    else:
        _print(doc)
    if any(r.status not in ("completed", "verified") for r in rows):
        raise typer.Exit(1)


def _settings(state: dict[str, Any], directory: Path) -> Settings:
    web = next(p for p in state["projects"] if p["name"] == "web")
    org = state["org"]
    return Settings(
        projects=(
            ProjectConfig(name="web", api_key=web["api_key"], secret_key=web["secret_key"], base_url=web["base_url"]),
        ),
        org=OrgConfig(api_key=org["api_key"], secret_key=org["secret_key"], base_url=org["us_base_url"]),
        database_url=f"sqlite:///{directory / 'data' / 'dsr.sqlite'}",
        poll_interval=0.2, rate_scale=DEMO_RATE_SCALE, max_linger=5.0, requester="demo@amplitude-dsr.example",
    )  # fmt: skip


def _print(doc: dict[str, Any]) -> None:
    for r in doc["requests"]:
        common.out.print(f"[bold]{r['kind']}[/] {r['request_id']}: [bold]{r['status']}[/]")
        if r["out_dir"]:
            main = "report.html" if r["kind"] == "access" else "certificate.html"
            common.out.print(f"  open {Path(r['out_dir']) / main}", markup=False)
        elif r["error"]:
            common.out.print(f"  {r['error']}", markup=False)
    calls, seconds = doc["emulator_calls"], doc["elapsed_seconds"]
    common.out.print(f"{calls} Amplitude API calls in {seconds} s; database {doc['database']}")
