"""``demo``: the whole product in one command, against the built-in emulator.

Starts the emulator (scaled limits), then runs an access request (project keys and a DSAR
export with org keys) and a deletion request through verification, and prints where the reports
and the certificate are.

The emulated clock runs at real speed during the access request: once the DSAR export is
created, the demo moves the clock past its completion in one step, so the export's links (valid
two emulated days) stay valid for two real days while the workflow downloads them. A fast clock
(four emulated days per second) would leave half a second. The deletion then runs on the fast
clock. The demo only ever deletes a directory it created (it leaves a marker file in it).
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
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.admin_client import EmulatorAdmin
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.errors import UsageError
from amplitude_dsr.store import repo

DEMO_RATE_SCALE = 1000.0  # every documented limit x1000, so the demo takes seconds
DEMO_CLOCK_SPEED = 86400.0 * 4  # four emulated days per second: a deletion finishes in ~5 s
ACCESS_CLOCK_SPEED = 1.0  # real time while the DSAR export's links must stay valid
# A DSAR export is done one emulated day after it is created (docs/amplitude.md#dsar-limits-and-sla): step past it.
DSAR_DONE_AFTER_SECONDS = 86400.0 + 3600.0
MARKER = ".amplitude-dsr-demo"  # in every directory the demo created, and only there
WATCH_SECONDS = 0.1


def demo(
    directory: Path = typer.Option(
        Path("amplitude-dsr-demo"), "--dir", metavar="DIR", help="Where the demo database and reports go (recreated)."
    ),
    seed: int = typer.Option(1, "--seed", metavar="SEED", help="Seed of the emulated world."),
    json_out: bool = JSON_OPT,
) -> None:
    """Run an access and a deletion request end to end against the built-in emulator."""
    _demo(directory, seed, json_out)


def prepare_directory(directory: Path) -> None:
    """Empty ``directory`` for a new run, but only if the demo created it (its marker is there)
    or it is empty; anything else is refused (UsageError), and nothing is deleted."""
    try:
        if directory.exists() and not directory.is_dir():
            raise UsageError(f"--dir {directory} is a file; choose a directory the demo may use")
        if directory.is_dir() and any(directory.iterdir()):
            if not (directory / MARKER).is_file():
                raise UsageError(
                    f"--dir {directory} is not empty and was not created by the demo; "
                    "choose a new or empty directory (nothing was deleted)"
                )
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MARKER).write_text("created by `amplitude-dsr demo`; the next demo run empties it\n")
    except OSError as exc:
        raise UsageError(f"--dir: cannot use that directory ({exc.strerror}); choose another one") from None


@guarded
def _demo(directory: Path, seed: int, json_out: bool) -> None:
    directory = directory.resolve()
    prepare_directory(directory)

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
        rt = open_runtime(settings, role="auto", data_dir=directory / "data")
        try:
            web = catalog["web"]
            prefix_user = web["prefix_pairs"][0][0]  # "bob@example.co": "bob@example.com" must not leak in
            say("access request: exact match only (a prefix-colliding user exists), DSAR export with org keys ...")
            emu.admin.set_speed(ACCESS_CLOCK_SPEED)
            access_id, _ = api.submit(
                rt, "access", [Identifier.parse("user_id", prefix_user["user_id"])],
                options={"out_dir": str(directory / "reports")},
            )  # fmt: skip
            _finish_access(rt, emu.admin, access_id)
            emu.admin.set_speed(DEMO_CLOCK_SPEED)
            victim = web["merged"]
            say("deletion request: merged Amplitude IDs included, tracked to done, then verified ...")
            delete_id, _ = api.submit(
                rt, "deletion", [Identifier.parse("user_id", victim["user_id"])],
                options={"out_dir": str(directory / "certificates")},
            )  # fmt: skip
            api.wait(rt, delete_id)
            rows = [repo.get_request(rt.engine, access_id), repo.get_request(rt.engine, delete_id)]
        finally:
            rt.close()
        calls = len(emu.admin.request_log())
    exports = [s.get("dsar") for s in (rows[0].result or {}).get("subjects", [])]
    doc = {
        "dsar_exports": exports,
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
    if any(r.status not in ("completed", "verified") for r in rows) or not exports or set(exports) != {"done"}:
        raise typer.Exit(1)


def _finish_access(rt: Runtime, admin: EmulatorAdmin, access_id: str) -> None:
    """Wait for the access request; once its DSAR export exists, move the emulated clock past
    the export's completion (its links then stay valid for two real days)."""
    advanced = False
    while not api.is_final(repo.get_request(rt.engine, access_id)):
        if not advanced and any(
            e["method"] == "POST" and e["path"].endswith("/dsar/requests") for e in admin.request_log()
        ):
            admin.advance(seconds=DSAR_DONE_AFTER_SECONDS)
            advanced = True
        time.sleep(WATCH_SECONDS)
    api.wait(rt, access_id)


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
    exports = doc["dsar_exports"]
    if exports and set(exports) == {"done"}:
        common.out.print("DSAR export: downloaded and merged into the report")
    else:
        shown = ", ".join(str(e) for e in exports) or "none created"
        common.out.print(f"DSAR export: NOT downloaded ({shown}); the report holds the project-key data only")
    for r in doc["requests"]:
        common.out.print(f"[bold]{r['kind']}[/] {r['request_id']}: [bold]{r['status']}[/]")
        if r["out_dir"]:
            main = "report.html" if r["kind"] == "access" else "certificate.html"
            common.out.print(f"  open {Path(r['out_dir']) / main}", markup=False)
        elif r["error"]:
            common.out.print(f"  {r['error']}", markup=False)
    calls, seconds = doc["emulator_calls"], doc["elapsed_seconds"]
    common.out.print(f"{calls} Amplitude API calls in {seconds} s; database {doc['database']}")
