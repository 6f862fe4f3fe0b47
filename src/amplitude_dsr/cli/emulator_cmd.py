"""``emulator``: serve the built-in Amplitude emulator (see docs/emulator.md)."""

from __future__ import annotations

import typer

from amplitude_dsr.cli.common import JSON_OPT, guarded
from amplitude_dsr.emulator.cli import serve


def emulator(
    port: int = typer.Option(8787, "--port", metavar="PORT", help="TCP port (0 picks a free one)."),
    seed: int = typer.Option(0, "--seed", metavar="SEED", help="Seed of the deterministic world."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Interface to bind."),
    rate_scale: float = typer.Option(
        1.0, "--rate-scale", metavar="FACTOR", help="Multiply every documented rate limit."
    ),
    clock_speed: float = typer.Option(1.0, "--clock-speed", metavar="FACTOR", help="Emulated seconds per real second."),
    json_out: bool = JSON_OPT,
) -> None:
    """Serve the emulator; prints the base URL and every project's keys, serves until Ctrl-C."""
    _serve(port, seed, host, rate_scale, clock_speed, json_out)


@guarded
def _serve(port: int, seed: int, host: str, rate_scale: float, clock_speed: float, json_out: bool) -> None:
    serve(port, seed, rate_scale, clock_speed, host, json_out)
