"""Shared CLI plumbing: settings, identifiers, output, and the one error policy.

Exit codes (the contract, ``docs/architecture.md#contracts``): 0 success; 2 usage or
configuration error; 1 any other failure, with a one-line reason on stderr and no traceback
unless ``--debug``; 3 completed with a partial answer (``access``); 130 interrupted. With
``--json``, an error that left stdout empty also prints one JSON error document there:
``{"error": {"code", "type", "message"}}``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console

from amplitude_dsr.config import Settings, load_settings
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.errors import ConfigError, DsrError, UsageError
from amplitude_dsr.store.db import redacted_url

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

# What request IDs look like (``dsr_20261128153712_1a2b3c4d``), loosely: anything else is a typo.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
# Executor IDs name lock files and DBOS executors: a short word, no path separators.
_EXECUTOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class State:
    """Global options, set by the root callback."""

    config: Path | None = None
    debug: bool = False
    emitted: bool = False  # a JSON document was printed on stdout by this command
    json: bool = False  # the command was given --json (set while its options are parsed)


class DatabaseUnavailable(DsrError):
    """The configured database cannot be reached (exit 1: try again once it is up)."""


class Interrupted(Exception):
    """Ctrl-C: the command stops (exit 130); a request it submitted carries on in a worker."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def guarded(func: F) -> F:
    """Apply the error policy: one line on stderr, exit 2 for usage errors, 1 otherwise."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        State.emitted = False
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except Interrupted as exc:
            _fail(exc, 130, prefix="")
        except KeyboardInterrupt:
            _fail(Interrupted("interrupted"), 130, prefix="")
        except UsageError as exc:
            _fail(exc, 2)
        except DsrError as exc:
            _fail(exc, 1)
        except Exception as exc:
            if State.debug:
                raise
            _fail(exc, 1, unexpected=True)

    return wrapper  # type: ignore[return-value]


def _fail(exc: BaseException, code: int, *, unexpected: bool = False, prefix: str = "error: ") -> None:
    if State.debug and not isinstance(exc, Interrupted):
        logging.getLogger("amplitude_dsr").exception("failed")
    message = f"unexpected {type(exc).__name__} (run with --debug for details)" if unexpected else one_line(str(exc))
    if json_requested() and not State.emitted:
        error: dict[str, Any] = {"code": code, "type": "unexpected" if unexpected else error_type(exc)}
        error["message"] = message
        if isinstance(exc, Interrupted) and exc.request_id:
            error["request_id"] = exc.request_id
        emit_json({"error": error})
    err.print(f"{prefix}{message}", markup=False)
    raise typer.Exit(code)


def one_line(message: str) -> str:
    """``message`` on one line: a control character in it (a newline in a path the user gave)
    is shown escaped, as ``\\n``."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in message)


def error_type(exc: BaseException) -> str:
    """``ConfigError`` -> ``config_error``: the error's class, for scripts to branch on."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def json_requested() -> bool:
    """Whether the running command was given ``--json``."""
    return State.json


def settings(**overrides: Any) -> Settings:
    """Settings from the config file, the environment and command-line overrides."""
    return load_settings(State.config, **overrides)


@contextmanager
def database_errors(database_url: str) -> Iterator[None]:
    """Opening the database: a path that cannot be created is a configuration error (exit 2),
    a server that does not answer a failure (exit 1); one line each, password hidden."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename else ""
        raise ConfigError(f"cannot use the database {redacted_url(database_url)}: {reason}{where}") from None
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        raise DatabaseUnavailable(f"cannot open the database {redacted_url(database_url)}: {reason}") from None


@contextmanager
def runtime(role: str, **overrides: Any) -> Iterator[Runtime]:
    values = settings(**overrides)
    with database_errors(values.database_url):
        rt = open_runtime(values, role=role)
    try:
        yield rt
    finally:
        rt.close()


def identifiers(
    emails: list[str] | None, user_ids: list[str] | None, amplitude_ids: list[str] | None, device_ids: list[str] | None
) -> list[Identifier]:
    """Validated identifiers from the repeatable flags (UsageError on the first bad one)."""
    result: list[Identifier] = []
    for kind, values in (
        ("email", emails),
        ("user_id", user_ids),
        ("amplitude_id", amplitude_ids),
        ("device_id", device_ids),
    ):
        for value in values or []:
            ident = Identifier.parse(kind, value)
            if ident not in result:
                result.append(ident)
    if not result:
        raise UsageError("give at least one identifier: --email, --user-id, --amplitude-id or --device-id")
    return result


def request_id(value: str) -> str:
    """A request ID as typed (UsageError when it cannot be one, so no database is opened)."""
    if not _REQUEST_ID.fullmatch(value):
        raise UsageError("malformed request ID (they look like dsr_20261128153712_1a2b3c4d)")
    return value


def executor_id(value: str) -> str:
    """``--executor-id``: letters, digits, ``.``, ``_`` and ``-``, at most 64 (a typer callback)."""
    if not _EXECUTOR_ID.fullmatch(value):
        raise typer.BadParameter("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()
    State.emitted = True


EMAIL_OPT = typer.Option(
    None, "--email", metavar="EMAIL",
    help="Email of the data subject (searched as a user ID unless an identity map translates it). Repeatable.",
)  # fmt: skip
USER_ID_OPT = typer.Option(
    None, "--user-id", metavar="USER_ID", help="Amplitude user_id (exact, case-sensitive). Repeatable."
)
AMPLITUDE_ID_OPT = typer.Option(
    None, "--amplitude-id", metavar="AMPLITUDE_ID", help="Numeric Amplitude ID (the service-side ID). Repeatable."
)
DEVICE_ID_OPT = typer.Option(None, "--device-id", metavar="DEVICE_ID", help="Device ID (anonymous users). Repeatable.")


def _remember_json(value: bool) -> bool:
    State.json = bool(value)
    return value


JSON_OPT = typer.Option(
    False, "--json", callback=_remember_json, help="Print one JSON document on stdout instead of text."
)
PROJECT_OPT = typer.Option(
    None, "--project", metavar="NAME", help="Limit to this configured project (default: all). Repeatable."
)
IDENTITY_MAP_OPT = typer.Option(
    None, "--identity-map", metavar="CSV|URL",
    help="CSV file (email,user_id) or http(s) lookup URL translating emails to user IDs.",
)  # fmt: skip
REGULATION_OPT = typer.Option(
    "gdpr", "--regulation", metavar="gdpr|ccpa", callback=lambda value: (value or "").strip().lower() or "gdpr",
    help="Regulation: gdpr (30-day deadline) or ccpa (45 days), in any case.",
)  # fmt: skip
OUT_OPT = typer.Option(
    None, "--out", metavar="DIR", help="Directory for reports and certificates (default: <data dir>/output)."
)
MAX_WAIT_OPT = typer.Option(
    300, "--max-wait", metavar="SECONDS", min=0,
    help="Longest total wait for an exhausted rate budget; then exit 1 and leave the request queued "
    "for a worker. 0: no limit.",
)  # fmt: skip
