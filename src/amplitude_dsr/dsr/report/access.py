"""The access package: ``export.json``, ``report.html``, ``events.csv`` and ``manifest.json``.

Events are streamed from each subject's JSON-lines file into the export and the CSV in one pass,
so memory stays constant in the number of events; only the most recent few are kept for the
HTML report. The schema of ``export.json`` is documented in ``docs/export-schema.md``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from amplitude_dsr.dsr.model import AccessResult, Identifier, Resolution, SearchAttempt, SubjectData
from amplitude_dsr.dsr.report import _present
from amplitude_dsr.dsr.report._events import CSV_COLUMNS, RecentEvents, csv_row, iter_events
from amplitude_dsr.dsr.report._output import HashingWriter, atomic_package, iso, now_utc

EXPORT_SCHEMA = "amplitude-dsr/access-export"
EXPORT_SCHEMA_VERSION = 1
RECENT_EVENTS_IN_REPORT = 200
NO_DATA_STATEMENT = "No data held: no Amplitude user matched any of the identifiers in any searched project."


class _RowWriter(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...


def write_access_package(
    result: AccessResult,
    out_dir: Path,
    *,
    now: datetime | None = None,
    recent_events: int = RECENT_EVENTS_IN_REPORT,
) -> Path:
    """Write the access package of ``result`` atomically to ``out_dir/<request_id>/``.

    Replaces an existing package of the same request. On any error nothing is left behind.
    Returns the final directory.
    """
    created = now or now_utc()
    recent = RecentEvents(recent_events)
    counts: list[int] = []
    with atomic_package(out_dir, result.request_id) as package:
        with package.open("export.json") as export, package.open("events.csv") as events_csv:
            rows = csv.writer(events_csv, lineterminator="\r\n")
            rows.writerow(CSV_COLUMNS)
            _write_export(result, created, out=export, rows=rows, recent=recent, counts=counts)
        with package.open("report.html") as html:
            context = _report_context(result, created, recent, counts)
            for chunk in _present.environment().get_template("report.html.j2").generate(context):
                html.write(chunk)
        package.write_manifest(result.request_id, created)
    return out_dir / result.request_id


def export_header(result: AccessResult, generated_at: datetime) -> dict[str, Any]:
    """Every top-level member of ``export.json`` except ``subjects`` (which streams)."""
    held = bool(result.subjects)
    return {
        "schema": EXPORT_SCHEMA,
        "schema_version": EXPORT_SCHEMA_VERSION,
        "generated_at": iso(generated_at),
        "request": {
            "id": result.request_id,
            "created_at": iso(result.created_at),
            "completed_at": iso(result.completed_at),
            "regulation": result.regulation,
        },
        "identifiers": [i.model_dump(mode="json") for i in result.identifiers],
        "resolution": resolution_json(result.resolution),
        "data_held": held,
        "statement": _statement(result),
        "notes": list(result.notes),
    }


def resolution_json(resolution: Resolution) -> dict[str, Any]:
    """Every search attempt with its candidates, and the identifiers nothing was found for."""
    return {
        "attempts": [a.model_dump(mode="json") for a in resolution.attempts],
        "unresolved": [i.model_dump(mode="json") for i in resolution.unresolved()],
        "unresolved_details": [d.model_dump(mode="json") for d in resolution.unresolved_details()],
    }


def subject_header(data: SubjectData) -> dict[str, Any]:
    """One member of ``subjects`` without its streamed ``events``."""
    s = data.subject
    return {
        "project": s.project,
        "amplitude_id": s.amplitude_id,
        "merged_amplitude_ids": list(s.merged_amplitude_ids),
        "all_amplitude_ids": s.all_amplitude_ids,
        "user_id": s.user_id,
        "device_ids": list(s.device_ids),
        "matched_by": [i.model_dump(mode="json") for i in s.matched_by],
        "summary": data.summary,
        "sources": list(data.sources),
        "dsar": data.dsar.model_dump(mode="json") if data.dsar else None,
        "sessions": [x.model_dump(mode="json") for x in data.sessions],
        "most_recent_session_complete": data.most_recent_session_complete,
        "events_by_type": data.events_by_type,
        "event_count": data.event_count,
    }


def _statement(result: AccessResult) -> str:
    n = len(result.subjects)
    ambiguous = sum(1 for d in result.resolution.unresolved_details() if d.ambiguous)
    text = f"Data held: {n} Amplitude user{'s' if n != 1 else ''} matched the identifiers." if n else ""
    if ambiguous:
        text += (" " if text else "Could not be resolved: ") + (
            f"{ambiguous} identifier{'s' if ambiguous != 1 else ''} could not be resolved exactly (User Search "
            "answered with a different Amplitude user), so whether data is held under "
            f"{'them' if ambiguous != 1 else 'it'} is not known."
        )
    return text or NO_DATA_STATEMENT


def _member(key: str, value: Any, pad: str) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    return f"{pad}{json.dumps(key)}: {text.replace(chr(10), chr(10) + pad)}"


def _write_export(
    result: AccessResult,
    generated_at: datetime,
    *,
    out: HashingWriter,
    rows: _RowWriter,
    recent: RecentEvents,
    counts: list[int],
) -> None:
    out.write("{\n")
    for key, value in export_header(result, generated_at).items():
        out.write(_member(key, value, "  ") + ",\n")
    out.write('  "subjects": [')
    for index, data in enumerate(result.subjects):
        out.write(",\n    {\n" if index else "\n    {\n")
        for key, value in subject_header(data).items():
            out.write(_member(key, value, "      ") + ",\n")
        out.write('      "events": [')
        written = 0
        project, amplitude_id = data.subject.project, data.subject.amplitude_id
        for event in iter_events(data.events_path, data.event_count):
            out.write(",\n        " if written else "\n        ")
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
            rows.writerow(csv_row(project, amplitude_id, event))
            recent.add(project, event)
            written += 1
        out.write("\n      ],\n" if written else "],\n")
        out.write(f'      "events_in_export": {written}\n    }}')
        counts.append(written)
    out.write("\n  ]\n}\n" if result.subjects else "]\n}\n")


def _report_context(result: AccessResult, created: datetime, recent: RecentEvents, counts: list[int]) -> dict[str, Any]:
    by_identifier: dict[Identifier, list[SearchAttempt]] = {}
    for attempt in result.resolution.attempts:
        by_identifier.setdefault(attempt.identifier, []).append(attempt)
    searches = [
        {
            "label": _present.identifier_label(identifier),
            "attempts": [_present.attempt_view(a) for a in attempts],
        }
        for identifier, attempts in by_identifier.items()
    ]
    subjects = [
        {
            "data": data,
            "ids": data.subject.all_amplitude_ids,
            "matched_by": [_present.identifier_label(i) for i in data.subject.matched_by],
            "summary": _present.summary_rows(data.summary),
            "properties": _present.property_rows(data.summary),
            "sources": _present.source_notes(data),
            "by_type": sorted(data.events_by_type.items(), key=lambda kv: (-kv[1], kv[0])),
            "in_export": count,
        }
        for data, count in zip(result.subjects, counts, strict=True)
    ]
    return {
        "r": result,
        "generated_at": created,
        "statement": _statement(result),
        "identifiers": [_present.identifier_label(i) for i in result.identifiers],
        "searches": searches,
        "unresolved": [_present.identifier_label(i) for i in result.resolution.unresolved()],
        "subjects": subjects,
        "recent": recent.newest_first(),
        "total_events": recent.seen,
    }
