"""The ``amplitude-dsr`` command: its options and commands (the entry point is :mod:`.main`)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from amplitude_dsr import __version__
from amplitude_dsr.cli import (
    batch,
    common,
    connection,
    demo,
    emulator_cmd,
    keys,
    requests,
    serve,
    status,
    tokens,
    worker,
)
from amplitude_dsr.cli.usage import OneLineErrors

app = typer.Typer(
    name="amplitude-dsr",
    cls=OneLineErrors,
    help="Answer GDPR/CCPA access and deletion requests against Amplitude Analytics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"amplitude-dsr {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: Path = typer.Option(
        None,
        "--config",
        metavar="FILE",
        envvar="AMPLITUDE_DSR_CONFIG",
        help="TOML config file (several projects, org keys).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global options."""
    common.State.config = config
    common.State.debug = debug
    common.State.json = False
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("dbos", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)


app.command(short_help="Collect what Amplitude holds about a person (export, report).")(requests.access)
app.command("delete", short_help="Schedule whole-record deletion, tracked and verified.")(requests.delete)
app.command(short_help="Show requests with their state and deadline.")(status.status)
app.command(short_help="Cancel a deletion while Amplitude still allows it.")(requests.cancel)
app.command(short_help="Run queued requests, deletion tracking and DSAR polling.")(worker.worker)
app.command("batch", short_help="Submit and follow many requests from a CSV file.")(batch.batch)
app.command("test-connection", short_help="Check every configured credential and capability.")(
    connection.test_connection
)
app.command("emulator", short_help="Serve the built-in Amplitude emulator.")(emulator_cmd.emulator)
app.command(short_help="Run access and deletion end to end against the emulator.")(demo.demo)
app.command("data-key", short_help="Print a new key that seals stored checkpoints.")(keys.data_key)
app.command(short_help="Serve the OpenDSR 2.0 API (with an embedded worker).")(serve.serve)
app.add_typer(tokens.app, name="tokens", short_help="Create, list and revoke the service's bearer tokens.")
