"""The ``amplitude-dsr`` command."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from amplitude_dsr import __version__
from amplitude_dsr.cli import common, demo, emulator_cmd, requests, worker

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
    config: Path = typer.Option(None, "--config", envvar="AMPLITUDE_DSR_CONFIG", help="TOML config file (several projects, org keys)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global options."""
    common.State.config = config
    common.State.debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("dbos", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)


app.command()(requests.access)
app.command("delete")(requests.delete)
app.command()(requests.status)
app.command()(requests.cancel)
app.command()(worker.worker)
app.command("emulator")(emulator_cmd.emulator)
app.command()(demo.demo)


def run() -> None:
    """Console-script entry point."""
    app()
