"""Command-line parsing errors as one line (the exit-code contract, ``docs/cli.md``).

click prints a usage error as a usage line, a hint and the error (three lines or more), and an
exception it does not expect as a traceback. :class:`OneLineErrors` runs the command the same
way but prints one line instead: ``error: <what> (see `amplitude-dsr CMD --help`)``, exit 2 for
a usage error; with ``--json`` also the error document on stdout. The line never repeats a value
from the command line (it could be an email): a value is shown as ``'…'``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from amplitude_dsr.cli import common

_EXTRA_ARGUMENTS = re.compile(r"^Got unexpected extra argument(?:s|\(s\))? \(.*\)$", re.DOTALL)


class OneLineErrors(TyperGroup):
    """The root command: parsing errors and stray exceptions as one line on stderr."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        common.State.json = common.State.emitted = False  # nothing of an earlier run in this process
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except typer.Abort:  # end of input where a prompt expected some; we never prompt
            sys.exit(1)
        except Exception as exc:
            if is_click_error(exc):
                common.State.json = common.State.json or "--json" in argv
                exit_code = int(getattr(exc, "exit_code", 2))
                report(usage_message(exc, argv), exit_code, "usage_error" if exit_code == 2 else "error")
            if common.State.debug or "--debug" in argv:  # a bug outside any command's error policy
                raise
            report(f"unexpected {type(exc).__name__} (run with --debug for details)", 1, "unexpected")
        sys.exit(code if isinstance(code, int) else 0)


def is_click_error(exc: Exception) -> bool:
    """A parsing error of click's (typer ships its own copy of click, so match by name)."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__)


def usage_message(exc: Exception, argv: list[str]) -> str:
    """click's message without any value the user typed, and where to look for help."""
    message = " ".join(str(getattr(exc, "format_message", exc.__str__)()).split())
    if _EXTRA_ARGUMENTS.match(message):
        message = "unexpected extra argument: every value must follow its option (such as --user-id VALUE)"
    for token in sorted({a for a in argv if a and not a.startswith("-")}, key=len, reverse=True):
        message = message.replace(repr(token), "'…'")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message[:1].lower() + message[1:]


def report(message: str, code: int, kind: str) -> None:
    """Print the one line (and the JSON error document with ``--json``), then exit ``code``."""
    message = common.one_line(message)
    if common.json_requested() and not common.State.emitted:
        common.emit_json({"error": {"code": code, "type": kind, "message": message}})
    common.err.print(f"error: {message}", markup=False)
    sys.exit(code)
