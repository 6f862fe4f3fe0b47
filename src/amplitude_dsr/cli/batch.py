"""``batch``: many access and deletion requests from one CSV file.

The file has a header row, then one identifier per row::

    request,kind,value,subject
    access,email,alice@example.com,ticket-17
    access,device_id,9DB8CE56-3101-44AE-BEB5-8731F8647920,ticket-17
    deletion,user_id,bob@example.com,

Rows with the same ``subject`` label and request type form one request with several
identifiers; a row without a label is a request of its own. Every row is validated before
anything is submitted. Submission is idempotent per file name and label, so running the same
file again reports the requests as already known instead of creating new ones.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from amplitude_dsr.amplitude.limits import (
    DELETION_RATE_LIMIT,
    DELETION_RATE_WINDOW,
    MAX_IDS_PER_DELETION,
    USER_POOL_LIMIT,
    USER_POOL_WINDOW,
)
from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import IDENTITY_MAP_OPT, JSON_OPT, OUT_OPT, PROJECT_OPT, REGULATION_OPT, guarded
from amplitude_dsr.cli.requests import request_document
from amplitude_dsr.config import Settings
from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.model import REGULATION_DAYS, Identifier, IdentifierKind
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.errors import DomainError, UsageError
from amplitude_dsr.states import DELETION_FINAL, NOT_RECEIPTED, UNRESOLVED
from amplitude_dsr.store import repo

REQUEST_TYPES = {"access": "access", "deletion": "deletion", "delete": "deletion"}
HEADER_HINT = "request,kind,value[,subject]"
USER_CALLS_PER_IDENTIFIER = 2  # one user search, one user activity page
POLL_SECONDS = 0.5  # between progress checks of a small batch
WORKFLOW_CHECK_SECONDS = 5.0  # between checks that no workflow died outside its request row
SUBMIT_CHUNK = 500  # requests per transaction (and per progress step) when submitting


@dataclass
class PlannedRequest:
    """One request to submit: its kind, identifiers, the CSV lines it came from, its label."""

    kind: str
    identifiers: list[Identifier]
    lines: list[int]
    subject: str | None = None
    request_id: str = ""
    created: bool = False

    @property
    def source(self) -> str:
        where = f"line {self.lines[0]}" if len(self.lines) == 1 else "lines " + ",".join(map(str, self.lines))
        return f"{where} ({self.subject})" if self.subject else where


@dataclass
class BadRow:
    line: int
    message: str


@dataclass
class ParsedFile:
    requests: list[PlannedRequest] = field(default_factory=list)
    errors: list[BadRow] = field(default_factory=list)


def parse_rows(rows: Iterable[tuple[int, list[str]]]) -> ParsedFile:
    """Validate every ``(line number, cells)`` row and group them into requests.

    The first non-blank row is the header. Errors name the line and the problem, never the
    identifier value. Pure: no I/O."""
    parsed = ParsedFile()
    groups: dict[tuple[str, ...], PlannedRequest] = {}
    header_seen = False
    for line, raw in rows:
        cells = [c.strip() for c in raw]
        if not any(cells) or cells[0].startswith("#"):
            continue
        while len(cells) > 3 and not cells[-1]:  # trailing empty columns (spreadsheet exports)
            cells.pop()
        if not header_seen:
            header_seen = True
            if cells[0].lower() in REQUEST_TYPES:
                parsed.errors.append(BadRow(line, f"the first row must be a header ({HEADER_HINT})"))
            continue
        row = _parse_row(line, cells)
        if isinstance(row, BadRow):
            parsed.errors.append(row)
            continue
        kind, ident, subject = row
        key = ("subject", kind, subject) if subject else ("row", kind, ident.kind.value, ident.value)
        planned = groups.get(key)
        if planned is None:
            planned = groups[key] = PlannedRequest(kind, [], [], subject)
            parsed.requests.append(planned)
        planned.lines.append(line)
        if ident not in planned.identifiers:
            planned.identifiers.append(ident)
    return parsed


def _parse_row(line: int, cells: list[str]) -> tuple[str, Identifier, str | None] | BadRow:
    if len(cells) not in (3, 4):
        return BadRow(line, f"expected 3 or 4 columns ({HEADER_HINT}), found {len(cells)}")
    kind = REQUEST_TYPES.get(cells[0].lower())
    if kind is None:
        return BadRow(line, "unknown request type (expected access or deletion)")
    ident_kind = cells[1].lower().replace("-", "_")
    if ident_kind not in {k.value for k in IdentifierKind}:
        return BadRow(line, "unknown identifier kind (expected " + ", ".join(k.value for k in IdentifierKind) + ")")
    try:
        ident = Identifier.parse(ident_kind, cells[2])
    except UsageError as exc:  # messages name the kind and the problem, never the value
        return BadRow(line, str(exc))
    subject = cells[3] if len(cells) == 4 and cells[3] else None
    return kind, ident, subject


def read_file(path: Path) -> ParsedFile:
    """Read and validate the CSV file (UTF-8, an optional BOM)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            rows: list[tuple[int, list[str]]] = []
            start = 1
            for cells in reader:
                rows.append((start, cells))
                start = reader.line_num + 1
    except FileNotFoundError:
        raise UsageError(f"batch file not found: {path}") from None
    except UnicodeDecodeError:
        raise UsageError(f"batch file {path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise UsageError(f"batch file {path} is not valid CSV near line {start}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read batch file {path}: {exc.strerror}") from None
    return parse_rows(rows)


def eta_seconds(
    unresolved_identifiers: int, pending_deletion_identifiers: int, *, budget_fraction: float, rate_scale: float
) -> float:
    """Seconds the rate budgets need for the remaining work: two user-pool calls per identifier
    of a request not yet resolved (360/hour x fraction x scale), plus one deletion POST per 100
    pending IDs (1/second x fraction x scale). A lower bound: DSAR exports and Amplitude's own
    job processing take longer."""
    user_rate = USER_POOL_LIMIT / USER_POOL_WINDOW * budget_fraction * rate_scale
    deletion_rate = DELETION_RATE_LIMIT / DELETION_RATE_WINDOW * budget_fraction * rate_scale
    posts = math.ceil(pending_deletion_identifiers / MAX_IDS_PER_DELETION)
    return USER_CALLS_PER_IDENTIFIER * unresolved_identifiers / user_rate + posts / deletion_rate


def format_eta(seconds: float) -> str:
    if seconds < 1:
        return "<1s"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def reached(row: repo.RequestRow, *, wait: bool) -> bool:
    """Done watching: final, or (without --wait) a deletion Amplitude has receipted."""
    if api.is_final(row):
        return True
    return not wait and row.kind == "deletion" and row.status not in NOT_RECEIPTED


def batch(
    file: Path = typer.Argument(..., metavar="FILE.csv", help=f"CSV with a header row: {HEADER_HINT}."),
    regulation: str = REGULATION_OPT,
    out: Path = OUT_OPT,
    project: list[str] = PROJECT_OPT,
    org_wide: bool = typer.Option(False, "--org-wide", help="Deletion rows delete from every project of the org."),
    direct: bool = typer.Option(
        False, "--direct", help="Deletion rows submit user IDs and Amplitude IDs as given (docs/deletion.md)."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Follow deletions to a final state (verified, ...), not just the receipt."
    ),
    identity_map: str = IDENTITY_MAP_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Submit many access and deletion requests from a CSV file and follow them.

    Rows with the same subject label (4th column) and request type form one request. Every row
    is checked first; any bad row stops the run with exit 2 before anything is submitted.
    Re-running the same file does not create duplicate requests."""
    deletion: dict[str, Any] = {"org_wide": org_wide}
    if direct:
        deletion["deletion_path"] = "direct"
    _batch(file, regulation, out, list(project or []), deletion, wait, identity_map, json_out)


@guarded
def _batch(
    file: Path, regulation: str, out: Path | None, projects: list[str], deletion: dict[str, Any], wait: bool,
    identity_map: str | None, json_out: bool,
) -> None:  # fmt: skip
    parsed = read_file(file)
    if parsed.errors:
        _report_bad_rows(file, parsed.errors, json_out)
    if not parsed.requests:
        raise UsageError(f"no requests in {file} (after the header row)")
    if regulation not in REGULATION_DAYS:
        raise UsageError("--regulation must be 'gdpr' or 'ccpa'")
    settings = common.settings()
    settings.project()  # ConfigError when no project is configured
    for name in projects:
        settings.project(name)
    if identity_map and not identity_map.startswith(("http://", "https://")) and not Path(identity_map).is_file():
        raise UsageError(f"identity map not found: {identity_map}")
    base: dict[str, Any] = {
        "projects": projects, "identity_map": identity_map, "out_dir": str(out.resolve()) if out else None,
    }  # fmt: skip
    with common.runtime("auto") as rt, _progress(show=not json_out) as progress:
        task = progress.add_task("submitting", total=len(parsed.requests))
        specs = [_spec(p, base, file.name, regulation, deletion=deletion) for p in parsed.requests]
        _submit(rt, parsed.requests, specs, lambda n: progress.advance(task, n))
        rows = _follow(rt, parsed.requests, settings, progress, wait=wait)
        worker_running = not rt.executor
    docs = []
    for planned in parsed.requests:
        doc = request_document(rows[planned.request_id])
        doc.update(lines=planned.lines, subject=planned.subject, created=planned.created)
        docs.append(doc)
    failed = [d for d in docs if d["status"] == "failed"]
    if json_out:
        common.emit_json({
            "file": str(file), "requests": docs,
            "summary": {"total": len(docs), "created": sum(d["created"] for d in docs),
                        "already_known": sum(not d["created"] for d in docs), "failed": len(failed),
                        "waited": wait},
        })  # fmt: skip
    else:
        _print_summary(parsed.requests, docs, wait=wait, worker_running=worker_running)
    if failed:
        raise DomainError(f"{len(failed)} of {len(docs)} requests failed")


def _submit(
    rt: Runtime, planned: Sequence[PlannedRequest], specs: Sequence[api.Spec], advance: Callable[[int], None]
) -> None:
    """Submit in chunks of :data:`SUBMIT_CHUNK`, one transaction each. A database error leaves
    the chunk it hit unwritten and the earlier ones complete: say how far it got (never the
    error's text, whose SQL parameters hold identifiers); re-running the file submits the rest."""
    for start in range(0, len(specs), SUBMIT_CHUNK):
        part = planned[start : start + SUBMIT_CHUNK]
        try:
            stored = api.submit_many(rt, specs[start : start + SUBMIT_CHUNK])
        except sa.exc.SQLAlchemyError as exc:
            raise DomainError(
                f"database error while submitting ({type(exc).__name__}): the first {start} of {len(specs)} "
                f"requests are stored, the rest (from line {part[0].lines[0]}) are not; "
                "re-run the same file to submit them"
            ) from exc
        for p, (rid, created) in zip(part, stored, strict=True):
            p.request_id, p.created = rid, created
        advance(len(part))


def _spec(
    planned: PlannedRequest, base: dict[str, Any], file_name: str, regulation: str, *, deletion: dict[str, Any]
) -> api.Spec:
    """The request of a planned row group; its ``batch_key`` (file name and subject label) makes
    a re-run of the same file find it again."""
    options = dict(base, batch_key=f"{file_name}:{planned.subject or ''}")
    options.update(deletion if planned.kind == "deletion" else {"full_history": False})
    return api.Spec(planned.kind, planned.identifiers, options, regulation)


def _report_bad_rows(file: Path, errors: Sequence[BadRow], json_out: bool) -> None:
    if json_out:
        common.emit_json({"file": str(file), "errors": [{"line": e.line, "message": e.message} for e in errors]})
    else:
        for e in errors:
            common.err.print(f"line {e.line}: {e.message}", markup=False)
    noun = "row" if len(errors) == 1 else "rows"
    raise UsageError(f"{len(errors)} bad {noun} in {file}; nothing was submitted")


def _progress(*, show: bool) -> Progress:
    """A progress bar on stderr (disabled for --json)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), disable=not show,
    )  # fmt: skip


def _follow(
    rt: Runtime, planned: Sequence[PlannedRequest], settings: Settings, progress: Progress, *, wait: bool
) -> dict[str, repo.RequestRow]:
    """Poll the requests until each is done watching, updating the progress bar."""
    engine = rt.engine
    ids = list(dict.fromkeys(p.request_id for p in planned))
    idents = {p.request_id: len(p.identifiers) for p in planned}
    rows: dict[str, repo.RequestRow] = {}
    last_workflow_check = 0.0
    task = progress.add_task("following", total=len(ids))
    while True:
        rows.update(
            repo.get_requests(engine, [rid for rid in ids if rid not in rows or not reached(rows[rid], wait=wait)])
        )
        pending = [rid for rid in ids if not reached(rows[rid], wait=wait)]
        now = time.monotonic()
        if pending and now - last_workflow_check > WORKFLOW_CHECK_SECONDS:
            last_workflow_check = now
            _fail_dead_workflows(rt, pending, rows)
            pending = [rid for rid in ids if not reached(rows[rid], wait=wait)]
        eta = eta_seconds(
            sum(idents[r] for r in pending if rows[r].status in UNRESOLVED),
            sum(idents[r] for r in pending if rows[r].kind == "deletion" and rows[r].status in NOT_RECEIPTED),
            budget_fraction=settings.budget_fraction, rate_scale=settings.rate_scale,
        )  # fmt: skip
        goal = "final" if wait else "done or receipted"
        progress.update(
            task, completed=len(ids) - len(pending),
            description=f"{goal} · rate-budget ETA {format_eta(eta)}" if pending else "all requests " + goal,
        )  # fmt: skip
        if not pending:
            _settle(rt, rows.values())
            return rows
        time.sleep(max(POLL_SECONDS, min(5.0, len(pending) * 0.005)))


def _settle(rt: Runtime, rows: Iterable[repo.RequestRow]) -> None:
    """Wait for the workflows of final requests to return (they record their outcome just after
    the final status), so closing the runtime never cuts one short."""
    for row in rows:
        if api.is_final(row):
            with contextlib.suppress(Exception):  # a failed workflow is reported by its row
                rt.dbos_client().retrieve_workflow(row.id).get_result(polling_interval_sec=0.1)


def _fail_dead_workflows(rt: Runtime, pending: Sequence[str], rows: dict[str, repo.RequestRow]) -> None:
    """A workflow that ended in error (or was cancelled) without a final request status would
    be waited for forever: reload its row and, if still not final, show it as failed."""
    dead: list[Any] = rt.dbos_client().list_workflows(
        workflow_ids=list(pending), status=["ERROR", "CANCELLED"], load_input=False, load_output=False
    )
    for wf in dead:
        row = repo.get_request(rt.engine, wf.workflow_id)
        rows[row.id] = row if api.is_final(row) else _as_failed(row, f"workflow {str(wf.status).lower()}")


def _as_failed(row: repo.RequestRow, error: str) -> repo.RequestRow:
    return dataclasses.replace(row, status="failed", error=row.error or error)


def _short_path(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _print_summary(
    planned: Sequence[PlannedRequest], docs: Sequence[dict[str, Any]], *, wait: bool, worker_running: bool
) -> None:
    dirs = [Path(d["out_dir"]) for d in docs if d["out_dir"]]
    shared = len({d.parent for d in dirs}) == 1 and all(
        Path(d["out_dir"]).name == d["request_id"] for d in docs if d["out_dir"]
    )  # every request in <one directory>/<request_id>: name the directory once, keep the table narrow
    columns: list[Column | str] = [Column("request", no_wrap=True), "kind", "status", "from", "new"]
    if not shared:
        columns.append(Column("out_dir", overflow="fold"))
    table = Table(*columns)
    for p, doc in zip(planned, docs, strict=True):
        style = "bold red" if doc["status"] == "failed" else None
        cells = [doc["request_id"], doc["kind"], doc["status"], p.source, "yes" if p.created else "known"]
        if not shared:
            cells.append(_short_path(doc["out_dir"]) if doc["out_dir"] else (doc["error"] or ""))
        table.add_row(*cells, style=style)
    common.out.print(table)
    if shared and dirs:
        common.out.print(f"out_dir: {_short_path(str(dirs[0].parent))}/<request>/", markup=False)
    for p, doc in zip(planned, docs, strict=True):
        if doc["error"]:
            common.out.print(f"{doc['request_id']} ({p.source}): {doc['error']}", markup=False)
    known = sum(not p.created for p in planned)
    if known:
        common.out.print(f"{known} of {len(planned)} requests were already known (submitted by an earlier run)")
    following = [d for d in docs if d["kind"] == "deletion" and d["status"] not in DELETION_FINAL]
    if following and not wait:
        common.out.print(
            f"{len(following)} deletions are receipted by Amplitude and take days to finish; "
            + ("the running worker follows them" if worker_running else "run `amplitude-dsr worker` to follow them")
            + " (or re-run with --wait)"
        )
