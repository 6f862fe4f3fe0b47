"""``status``: every request as a table, or one request's readable detail.

Request IDs are never cut (the table folds other columns first), the database in use is named
(its password hidden), and nothing shows an identifier value: kinds and counts only."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import typer
from rich import box
from rich.table import Column, Table

from amplitude_dsr.amplitude import Budget
from amplitude_dsr.amplitude.hosts import scope_key
from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import JSON_OPT, guarded
from amplitude_dsr.cli.requests import request_document
from amplitude_dsr.config import Settings
from amplitude_dsr.dsr import api
from amplitude_dsr.dsr.executor import store_engine
from amplitude_dsr.errors import ConfigError
from amplitude_dsr.store import repo
from amplitude_dsr.store.db import redacted_url

PAUSABLE_POOLS = ("user", "deletion")  # the per-project pools a 429 pauses


def status(
    request_id: str = typer.Argument(None, metavar="REQUEST_ID", help="One request (default: all, newest first)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Requests with their state, age and deadline (overdue ones highlighted)."""
    _status(request_id, json_out)


@guarded
def _status(request_id: str | None, json_out: bool) -> None:
    if request_id is not None:
        common.request_id(request_id)
    settings = common.settings()
    database = redacted_url(settings.database_url)
    with common.database_errors(settings.database_url):
        engine = store_engine(settings)
    try:
        rows = [repo.get_request(engine, request_id)] if request_id else repo.list_requests(engine)
        docs = [request_document(r, repo.items_for(engine, r.id) if r.kind == "deletion" else None) for r in rows]
        refused = api.credential_pauses(engine)
    finally:
        engine.dispose()
    if request_id:
        docs[0]["paused"] = paused_pools(settings, rows[0])
        mine = {i.get("project") for i in docs[0].get("jobs", [])} | set(rows[0].options.get("projects") or [])
        docs[0]["credentials_paused"] = [p for p in refused if not mine or p["project"] in mine]
    if json_out:
        doc = {**docs[0]} if request_id else {"requests": docs, "credentials_paused": refused}
        common.emit_json({**doc, "database": database})
        return
    if request_id:
        print_detail(rows[0], docs[0])
    elif not docs:
        common.out.print(f"no requests yet in {database}", markup=False)
        return
    else:
        print_table(rows, docs)
        for pause in refused:
            common.err.print(
                f"paused: project {pause['project']} since {pause['since']}: {pause['reason']}; its requests wait "
                "(nothing fails) until a call with its keys succeeds: fix the keys, the worker resumes them",
                markup=False,
            )
    common.out.print(f"database: {database}", markup=False)


def print_table(rows: list[repo.RequestRow], docs: list[dict[str, Any]]) -> None:
    # The ID never shrinks; the other columns fold onto a second line instead of being cut.
    table = Table(
        Column("request", no_wrap=True, min_width=max(len(r.id) for r in rows)),
        *(Column(name, overflow="fold") for name in ("kind", "status", "law", "age", "deadline")),
        box=box.SIMPLE_HEAD, pad_edge=False,
    )  # fmt: skip
    now = datetime.now(UTC)
    for row, doc in zip(rows, docs, strict=True):
        left = row.deadline - now
        deadline = row.deadline.date().isoformat() + (f" ({left.days}d left)" if not api.is_final(row) else "")
        style = "bold red" if doc["overdue"] else None
        age = _age((now - row.created_at).total_seconds())
        table.add_row(row.id, row.kind, row.status, row.regulation, age, deadline, style=style)
    common.out.print(table)


def print_detail(row: repo.RequestRow, doc: dict[str, Any]) -> None:
    """One request, readable: what, where it stands, deadlines, jobs, error, files, pauses."""
    out = common.out
    now = datetime.now(UTC)
    out.print(f"request {row.id}", markup=False)
    lines: list[tuple[str, str]] = [
        ("kind", row.kind),
        ("state", row.status + (" (final)" if api.is_final(row) else "")),
        ("regulation", row.regulation),
        ("identifiers", ", ".join(doc["identifier_kinds"]) + f" ({len(row.identifiers)} in all)"),
        ("created", _when(row.created_at)),
    ]
    due = _when(row.deadline)
    if doc["overdue"]:
        due += " (OVERDUE)"
    elif not api.is_final(row):
        due += f" ({(row.deadline - now).days}d left)"
    lines.append(("due", due))
    if row.completed_at:
        lines.append(("completed", _when(row.completed_at)))
    for subject in doc.get("subjects", []):
        lines.append(("subject", f"project {subject['project']}: {subject['events']} events from "
                      + ", ".join(subject["sources"])))  # fmt: skip
    if "complete" in doc:
        lines.append(("answer", "complete" if doc["complete"] else "PARTIAL"))
        lines.extend(("partial", reason) for reason in doc.get("partial_reasons", []))
    if doc.get("amplitude_ids"):
        counts = ", ".join(f"{n} {state}" for state, n in doc["amplitude_ids"].items())
        lines.append(("amplitude IDs", counts))
    for job in doc.get("jobs", []):
        lines.append(("job", f"project {job['project']}, day {job['day']}: {job['status'] or 'unknown'} "
                      f"({job['amplitude_ids']} Amplitude IDs)"))  # fmt: skip
    for pause in doc.get("credentials_paused", []):
        refused = f"project {pause['project']}: Amplitude refuses its credentials since {pause['since']}"
        lines.append(("paused", refused))
    for pause in doc.get("paused", []):
        lines.append(("paused", f"project {pause['project']}: {pause['pool']} pool until {pause['until']}"))
    if row.error:
        lines.append(("error", row.error))
    if row.out_dir:
        lines.append(("output", row.out_dir))
    lines.extend(("file", path) for path in doc.get("files", []))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        out.print(f"  {label:<{width}}  {value}", markup=False)


def paused_pools(settings: Settings, row: repo.RequestRow) -> list[dict[str, str]]:
    """The request's projects whose rate budget is paused now (after Amplitude's 429s)."""
    if api.is_final(row) or not settings.projects:
        return []
    names = row.options.get("projects") or [p.name for p in settings.projects]
    budget = Budget(settings.database_url, fraction=settings.budget_fraction, rate_scale=settings.rate_scale)
    paused = []
    try:
        for name in names:
            try:
                scope = scope_key(settings.project(name))
            except ConfigError:  # a project removed from the configuration since
                continue
            for pool in PAUSABLE_POOLS:
                until = budget.paused_until(pool, scope)
                if until > time.time():
                    paused.append({"project": name, "pool": pool, "until": _when(datetime.fromtimestamp(until, UTC))})
    except sa.exc.SQLAlchemyError:  # no budget table yet: nothing was ever paused
        return []
    finally:
        budget.close()
    return paused


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"
