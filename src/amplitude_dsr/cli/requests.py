"""``access``, ``delete``, ``status`` and ``cancel``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer

from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import (
    AMPLITUDE_ID_OPT,
    DEVICE_ID_OPT,
    EMAIL_OPT,
    IDENTITY_MAP_OPT,
    JSON_OPT,
    MAX_WAIT_OPT,
    OUT_OPT,
    PROJECT_OPT,
    REGULATION_OPT,
    USER_ID_OPT,
    guarded,
)  # fmt: skip
from amplitude_dsr.dsr import api, identity_map
from amplitude_dsr.dsr.model import REGULATION_DAYS
from amplitude_dsr.errors import BudgetExhausted, DomainError, UsageError
from amplitude_dsr.store import repo

EXIT_PARTIAL = 3  # completed, but the answer is partial (docs/cli.md: a contract addition to 0/1/2)

# What each budget pool pays for (amplitude/limits.py), for the one-line message.
POOL_CALLS = {
    "user": "User Search and User Activity",
    "deletion": "the deletion API",
    "dsar": "DSAR exports",
    "cost": "cost-based Dashboard calls",
    "rest": "REST calls",
}


def request_document(row: repo.RequestRow, items: list[repo.Item] | None = None) -> dict[str, Any]:
    """A JSON-safe summary of a request: no identifier values, only kinds and counts. A deletion
    also lists its Amplitude jobs (project, day, status, how many of its IDs) and its IDs by state."""
    now = datetime.now(UTC)
    doc: dict[str, Any] = {
        "request_id": row.id, "kind": row.kind, "status": row.status, "regulation": row.regulation,
        "created_at": row.created_at.isoformat(), "deadline": row.deadline.isoformat(),
        "overdue": (row.completed_at or now) > row.deadline,
        "identifier_kinds": sorted({i["kind"] for i in row.identifiers}),
        "out_dir": row.out_dir, "error": row.error,
    }  # fmt: skip
    result = row.result or {}
    if row.kind == "access" and "subjects" in result:
        doc["subjects"] = result["subjects"]
        doc["unresolved_identifiers"] = result.get("unresolved", 0)
        doc["ambiguous_identifiers"] = result.get("ambiguous", 0)
        doc["data_held"] = bool(result["subjects"])
    if row.kind == "access" and row.status == "completed":
        complete, reasons = completeness(result)
        doc["complete"], doc["partial_reasons"] = complete, reasons
    if row.kind == "deletion" and items is not None:
        doc["amplitude_ids"], doc["jobs"] = api.deletion_summary(items)
    if row.out_dir:
        doc["files"] = sorted(str(p) for p in Path(row.out_dir).glob("*") if p.is_file())
    return doc


def completeness(result: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether a completed access request's answer is complete, and if not why: the result's
    ``completeness`` ({"complete": bool, "reasons": [str, ...]}); none recorded means complete."""
    value = result.get("completeness")
    if not isinstance(value, dict):
        return True, []
    reasons = [str(r) for r in value.get("reasons") or []]
    return bool(value.get("complete", True)), reasons


def access(
    email: list[str] = EMAIL_OPT,
    user_id: list[str] = USER_ID_OPT,
    amplitude_id: list[str] = AMPLITUDE_ID_OPT,
    device_id: list[str] = DEVICE_ID_OPT,
    project: list[str] = PROJECT_OPT,
    full_history: bool = typer.Option(
        False, "--full-history", help="Page through every event (costs one user-pool call per 1000 events)."
    ),
    dsar_start: str = typer.Option(
        None, "--dsar-start", metavar="YYYY-MM-DD", help="With org keys: first day of the DSAR export."
    ),
    dsar_end: str = typer.Option(
        None, "--dsar-end", metavar="YYYY-MM-DD", help="With org keys: last day of the DSAR export."
    ),
    identity_map: str = IDENTITY_MAP_OPT,
    out: Path = OUT_OPT,
    regulation: str = REGULATION_OPT,
    no_wait: bool = typer.Option(False, "--no-wait", help="Return the request ID at once (a worker finishes it)."),
    max_wait: int = MAX_WAIT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Collect what Amplitude holds about a person: JSON export, HTML report, CSV, manifest."""
    idents = Identifiers(email, user_id, amplitude_id, device_id)
    extra: dict[str, Any] = {"full_history": full_history}
    extra |= {k: v for k, v in (("dsar_start", dsar_start), ("dsar_end", dsar_end)) if v is not None}
    _run_request(
        "access",
        idents,
        _options(project, identity_map, out, extra),
        Command(regulation, not no_wait, max_wait, json_out),
    )


def delete(
    email: list[str] = EMAIL_OPT,
    user_id: list[str] = USER_ID_OPT,
    amplitude_id: list[str] = AMPLITUDE_ID_OPT,
    device_id: list[str] = DEVICE_ID_OPT,
    project: list[str] = PROJECT_OPT,
    org_wide: bool = typer.Option(
        False, "--org-wide", help="Delete from every project of the organisation (delete_from_org)."
    ),
    direct: bool = typer.Option(
        False,
        "--direct",
        help="Submit user IDs and Amplitude IDs as they are and verify afterwards (fewer user-pool calls; "
        "docs/deletion.md). Default: AMPLITUDE_DSR_DELETION_PATH, else resolve first.",
    ),
    identity_map: str = IDENTITY_MAP_OPT,
    out: Path = OUT_OPT,
    regulation: str = REGULATION_OPT,
    wait: bool = typer.Option(
        False, "--wait", help="Follow the deletion to a final state (verified, recollected, ...)."
    ),
    max_wait: int = MAX_WAIT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Schedule whole-record deletion; returns a request ID at once unless --wait."""
    idents = Identifiers(email, user_id, amplitude_id, device_id)
    extra: dict[str, object] = {"org_wide": org_wide}
    if direct:
        extra["deletion_path"] = "direct"
    options = _options(project, identity_map, out, extra)
    _run_request("deletion", idents, options, Command(regulation, wait, max_wait, json_out))


@dataclass(frozen=True)
class Identifiers:
    """The identifier flags of a request command, as typed."""

    emails: list[str] | None
    user_ids: list[str] | None
    amplitude_ids: list[str] | None
    device_ids: list[str] | None


@dataclass(frozen=True)
class Command:
    """How a request command runs: its regulation, whether it waits (and how long for a budget),
    and its output format."""

    regulation: str
    wait: bool
    max_wait: int
    json_out: bool


def _options(
    projects: list[str] | None, identity_map: str | None, out: Path | None, extra: dict[str, Any]
) -> dict[str, Any]:
    """The request's options from its flags (validated as ``RequestOptions`` by ``dsr.api``)."""
    out_dir = str(Path(out).resolve()) if out else None
    return {"projects": list(projects or []), "identity_map": identity_map, "out_dir": out_dir, **extra}


@guarded
def _run_request(kind: str, flags: Identifiers, options: dict[str, Any], command: Command) -> None:
    idents = common.identifiers(flags.emails, flags.user_ids, flags.amplitude_ids, flags.device_ids)
    wait, regulation = command.wait, command.regulation
    _check_before_writing(kind, options, regulation)
    max_wait = float(command.max_wait)
    deferred: BudgetExhausted | None = None
    request_id: str | None = None
    try:
        with common.runtime("auto" if wait else "submitter") as rt:
            # An access re-run with the same identifiers and options resumes its unfinished request.
            request_id, _ = api.submit(
                rt, kind, idents, options=options, regulation=regulation, resume=kind == "access"
            )
            if wait:
                try:
                    api.wait(rt, request_id, max_budget_wait=max_wait or None)
                except BudgetExhausted as exc:
                    deferred = exc  # the workflow sleeps durably; the request stays queued
            row = repo.get_request(rt.engine, request_id)
            items = repo.items_for(rt.engine, request_id) if kind == "deletion" else None
            worker_running = rt.executor is False
    except KeyboardInterrupt:
        if request_id is None:
            raise
        raise common.Interrupted(interrupted_message(request_id, kind), request_id=request_id) from None
    doc = request_document(row, items)
    if deferred is not None:
        doc["budget_wait"] = {"pool": deferred.pool, "resume_at": deferred.resume_at.isoformat()}
    if command.json_out:
        common.emit_json(doc)
    else:
        _print_request(doc, waited=wait, worker_running=worker_running)
    if deferred is not None:
        raise BudgetExhausted(
            still_queued_message(request_id, deferred), resume_at=deferred.resume_at, pool=deferred.pool
        )
    if row.status == "failed":
        raise DomainError(row.error or "the request failed")
    if doc.get("complete") is False:
        reasons = "; ".join(doc["partial_reasons"]) or "no reason recorded"
        common.err.print(f"the answer is partial (exit {EXIT_PARTIAL}): {reasons}", markup=False)
        raise typer.Exit(EXIT_PARTIAL)


def interrupted_message(request_id: str, kind: str) -> str:
    """One line after Ctrl-C: the request carries on, how to follow and finish it."""
    again = "; run the same command again to resume it" if kind == "access" else ""
    return (
        f"interrupted; request {request_id} is not cancelled and carries on: follow it with "
        f"`amplitude-dsr status {request_id}`, a worker finishes it (`amplitude-dsr worker`){again}"
    )


def still_queued_message(request_id: str, exc: BudgetExhausted) -> str:
    """One line: which budget, until when (UTC), and that the request stays queued for a worker."""
    pool = f"{exc.pool} rate budget ({POOL_CALLS[exc.pool]})" if exc.pool in POOL_CALLS else "rate budget"
    until = exc.resume_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"the {pool} is exhausted, resume at {until} UTC; request {request_id} stays queued and "
        f"finishes when a worker runs (`amplitude-dsr worker`); follow it with `amplitude-dsr status {request_id}`"
    )


def _check_before_writing(kind: str, options: dict[str, Any], regulation: str) -> None:
    """Usage errors the request would only meet later, raised before anything is written (no
    database, no output directory): regulation, options, project names, the identity map."""
    if regulation not in REGULATION_DAYS:
        raise UsageError("regulation must be 'gdpr' or 'ccpa'")
    settings = common.settings()
    api.check_dsar_range(settings, kind, api.request_options(options), datetime.now(UTC).date())
    if not settings.projects:
        settings.project()  # raises the ConfigError that says what to set
    for name in options["projects"]:
        settings.project(name)
    check_identity_map(options["identity_map"])
    if options["out_dir"]:
        check_out_dir(Path(options["out_dir"]))


def check_identity_map(source: str | None) -> None:
    """``--identity-map``: what :func:`identity_map.check_source` refuses, and a value that is
    neither a path nor a URL (a NUL, a malformed URL), as a UsageError."""
    if source and "\x00" in source:
        raise UsageError("--identity-map contains a NUL character")
    try:
        identity_map.check_source(source)
    except (ValueError, httpx.InvalidURL):
        raise UsageError("--identity-map is neither a readable CSV file nor an http(s) URL") from None


def check_out_dir(path: Path) -> None:
    """``--out`` must be a directory or a path where one can be made (not a file, nor under one)."""
    try:
        for parent in (path, *path.parents):
            if parent.exists():
                if not parent.is_dir():
                    where = "is a file" if parent == path else f"is under {parent}, which is a file"
                    raise UsageError(f"--out {path} {where}; give a directory")
                return
    except OSError as exc:  # a name too long for the file system, say
        raise UsageError(f"--out is not a usable directory name ({exc.strerror})") from None


def _print_request(doc: dict[str, Any], *, waited: bool, worker_running: bool) -> None:
    out = common.out
    out.print(f"request [bold]{doc['request_id']}[/] ({doc['kind']}): [bold]{doc['status']}[/]")
    for subject in doc.get("subjects", []):
        sources = ", ".join(subject["sources"])
        out.print(f"  subject in project {subject['project']}: {subject['events']} events from {sources}")
    if doc.get("ambiguous_identifiers"):
        out.print(f"  {doc['ambiguous_identifiers']} identifier(s) could not be resolved exactly (see the report)")
    elif doc["kind"] == "access" and doc["status"] == "completed" and not doc.get("subjects"):
        out.print("  no data held: no Amplitude user matched any identifier exactly")
    if doc.get("complete") is False:
        out.print("  [bold]the answer is PARTIAL[/]:")
        for reason in doc["partial_reasons"] or ["no reason recorded"]:
            out.print(f"    - {reason}", markup=False)
    if doc.get("out_dir"):
        out.print(f"  files in {doc['out_dir']}")
    if not waited:
        out.print(
            "  queued; `amplitude-dsr worker` processes it"
            + ("" if worker_running else " (start one if none is running)")
        )
    elif not worker_running:
        # Said explicitly: with no worker, this command was the executor of its own request.
        what = "ran here" if api.is_final_status(doc["kind"], doc["status"]) else "ran here until now"
        out.print(f"  {what} (no worker was running; a worker finishes whatever a command leaves unfinished)")


def cancel(
    request_id: str = typer.Argument(..., metavar="REQUEST_ID", help="The deletion request to cancel."),
    json_out: bool = JSON_OPT,
) -> None:
    """Cancel a deletion while its job is still staging and more than three days before its day."""
    _cancel(request_id, json_out)


@guarded
def _cancel(request_id: str, json_out: bool) -> None:
    common.request_id(request_id)
    with common.runtime("offline") as rt:
        result = api.cancel(rt, request_id)
    if json_out:
        common.emit_json({"request_id": request_id, "status": result})
    else:
        common.out.print(f"request {request_id}: {result}")
