"""The ``amplitude-dsr`` command."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from amplitude_dsr import __version__
from amplitude_dsr.cli import batch, common, connection, demo, emulator_cmd, requests, status, worker

app = typer.Typer(
    name="amplitude-dsr",
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


def run() -> None:
    """Console-script entry point.

    Exits without joining DBOS's workflow threads: a workflow this process was executing may
    be in a durable sleep (a deletion polls hourly for weeks). Its progress is checkpointed in
    the database and the next executor resumes it, so waiting for the sleep to end would only
    hang the command (and then fail the step against a destroyed DBOS)."""
    code: int | str | None = 0
    common.State.process_exits = True
    os.umask(0o077)  # every file we write (database, locks, reports, work files) is the user's only
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    sys.stdout.flush()
    sys.stderr.flush()
    if isinstance(code, str):
        print(code, file=sys.stderr, flush=True)
        code = 1
    os._exit(code or 0)
