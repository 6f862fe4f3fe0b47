"""Foreground serving for the command line: print the base URL and credentials, then serve."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .server import bind, make_server, url_host
from .world import World


def describe(world: World, base_url: str) -> dict[str, Any]:
    """The startup document: URLs, settings, every project's keys and the org keys."""
    return {
        "base_url": base_url,
        "eu_base_url": base_url + "/eu",
        "admin_url": base_url + "/_admin",
        "seed": world.seed,
        "rate_scale": world.limits.rate_scale,
        "clock_speed": world.clock.speed,
        "now": world.clock.now().isoformat(),
        "projects": [
            {
                "name": p.name,
                "app": p.app,
                "region": p.region,
                "base_url": base_url + ("/eu" if p.region == "eu" else ""),
                "api_key": p.api_key,
                "secret_key": p.secret_key,
            }
            for p in world.projects.values()
        ],
        "org": {
            "org_id": world.org.org_id,
            "api_key": world.org.api_key,
            "secret_key": world.org.secret_key,
        },
    }


def print_banner(doc: dict[str, Any], json_output: bool, out: TextIO) -> None:
    """Print the startup document as one JSON document or as a readable table."""
    if json_output:
        out.write(json.dumps(doc) + "\n")
        out.flush()
        return
    lines = [
        f"Amplitude emulator listening on {doc['base_url']}  (EU region: {doc['eu_base_url']})",
        f"seed={doc['seed']}  rate_scale={doc['rate_scale']}  clock_speed={doc['clock_speed']}  "
        f"emulated now={doc['now']}",
        "",
        f"{'project':<10} {'app':<7} {'region':<6} {'api_key':<33} {'secret_key':<33} base_url",
    ]
    for p in doc["projects"]:
        lines.append(
            f"{p['name']:<10} {p['app']:<7} {p['region']:<6} {p['api_key']:<33} {p['secret_key']:<33} {p['base_url']}"
        )
    org = doc["org"]
    lines.append(f"{'org':<10} {org['org_id']:<7} {'both':<6} {org['api_key']:<33} {org['secret_key']:<33} (DSAR)")
    lines += ["", f"Admin API: {doc['admin_url']}/state   Press Ctrl-C to stop.", ""]
    out.write("\n".join(lines))
    out.flush()


def serve(  # noqa: PLR0917 (the CLI contract passes these positionally)
    port: int = 8787,
    seed: int = 0,
    rate_scale: float = 1.0,
    clock_speed: float = 1.0,
    host: str = "127.0.0.1",
    json_output: bool = False,
) -> None:
    """Serve the emulator in the foreground until interrupted (Ctrl-C exits cleanly)."""
    world = World.seeded(seed, clock_speed=clock_speed, rate_scale=rate_scale)
    sock = bind(host, port)
    base_url = f"http://{url_host(host)}:{sock.getsockname()[1]}"
    print_banner(describe(world, base_url), json_output, sys.stdout)
    server = make_server(world)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        world.stopping.set()
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m amplitude_dsr.emulator`` entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m amplitude_dsr.emulator",
        description="A stateful Amplitude API emulator for rehearsing DSR processes.",
    )
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate-scale", type=float, default=1.0)
    parser.add_argument("--clock-speed", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="print one JSON document on startup")
    args = parser.parse_args(argv)
    serve(args.port, args.seed, args.rate_scale, args.clock_speed, args.host, args.json)
    return 0
