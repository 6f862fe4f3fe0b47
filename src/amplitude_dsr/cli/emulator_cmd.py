"""``emulator``: serve the built-in Amplitude emulator (see docs/emulator.md).

Its options are checked before anything is served: a host that does not resolve to an IPv4
address, a port that is taken or out of range, and a factor that is not a positive finite number
are usage errors (exit 2)."""

from __future__ import annotations

import errno
import math
import socket

import typer

from amplitude_dsr.cli.common import JSON_OPT, guarded
from amplitude_dsr.emulator.cli import serve
from amplitude_dsr.errors import UsageError

MAX_FACTOR = 1e9  # rate and clock factors: far above what any test uses (the demo's clock: 345,600)
BIND_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def factor(value: float) -> float:
    """A positive finite multiplier (a typer callback)."""
    if not (math.isfinite(value) and 0 < value <= MAX_FACTOR):
        raise typer.BadParameter(f"must be a number above 0 and at most {MAX_FACTOR:g}")
    return value


def emulator(
    port: int = typer.Option(8787, "--port", metavar="PORT", min=0, max=65535, help="TCP port (0 picks a free one)."),
    seed: int = typer.Option(0, "--seed", metavar="SEED", help="Seed of the deterministic world."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Interface to bind (IPv4)."),
    rate_scale: float = typer.Option(
        1.0, "--rate-scale", metavar="FACTOR", callback=factor, help="Multiply every documented rate limit."
    ),
    clock_speed: float = typer.Option(
        1.0, "--clock-speed", metavar="FACTOR", callback=factor, help="Emulated seconds per real second."
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Serve the emulator; prints the base URL and every project's keys, serves until Ctrl-C."""
    _serve(port, seed, host, rate_scale, clock_speed, json_out)


def check_host(host: str, port: int) -> None:
    """UsageError unless ``host`` names an IPv4 interface address (nothing is bound here)."""
    try:
        socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):  # gaierror is an OSError; IDNA refuses some names
        raise UsageError(
            "--host must be an IPv4 address or a host name of this machine (0.0.0.0: every interface)"
        ) from None


@guarded
def _serve(port: int, seed: int, host: str, rate_scale: float, clock_speed: float, json_out: bool) -> None:
    check_host(host, port)
    try:
        serve(port, seed, rate_scale, clock_speed, host, json_out)
    except OSError as exc:
        if exc.errno not in BIND_ERRORS:
            raise
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
