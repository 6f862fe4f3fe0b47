"""The ``amplitude-dsr`` entry point.

Kept light on purpose: the command's modules (typer, DBOS, SQLAlchemy, httpx) take a while to
import, and a Ctrl-C during that start-up must end the command like any other Ctrl-C (one line,
exit 130), not with a traceback. So :func:`run` catches the interrupt first and imports the
command (:mod:`amplitude_dsr.cli.app`) only then; ``app`` is still importable from here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

EXIT_INTERRUPTED = 130


def run() -> None:
    """Console-script entry point. The command closes its runtime before it returns (DBOS torn
    down, every workflow thread of this process ended or ending at its next step: their pauses
    wake at once, ``steps.pause``), so the process ends normally."""
    code: int | str | None = 0
    os.umask(0o077)  # every file we write (database, locks, reports, work files) is the user's only
    try:
        try:
            from amplitude_dsr.cli.app import app

            app()
        except SystemExit as exc:
            code = exc.code
        except KeyboardInterrupt:  # before (or after) the command's own Ctrl-C handling
            code = interrupted()
        sys.stdout.flush()
        sys.stderr.flush()
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's line is written
        code = EXIT_INTERRUPTED
    if isinstance(code, str):
        print(code, file=sys.stderr, flush=True)
        code = 1
    sys.exit(code or 0)


def interrupted() -> int:
    """The Ctrl-C line (and with ``--json`` the error document) for an interrupt outside a command."""
    if "--json" in sys.argv[1:]:
        import json

        error = {"code": EXIT_INTERRUPTED, "message": "interrupted", "type": "interrupted"}
        sys.stdout.write(json.dumps({"error": error}, indent=2, sort_keys=True) + "\n")
    print("interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def __getattr__(name: str) -> Any:
    """``from amplitude_dsr.cli.main import app``: the typer application, imported on demand."""
    if name == "app":
        from amplitude_dsr.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
