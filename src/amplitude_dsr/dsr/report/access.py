"""The access package: ``export.json``, ``report.html``, ``events.csv`` and ``manifest.json``.

Events are streamed from each subject's JSON-lines file into the export and the CSV in one pass,
so memory stays constant in the number of events (the files are read once before, for the CSV
header); only the most recent few are kept for the HTML report. The schema of ``export.json`` is
documented in ``docs/export-schema.md``.

Everything in the package names only the data subject: other users returned by a search are
counted, not named (``_privacy.py``); given ``operator_dir``, the full resolution goes to the
operator record there (``_operator.py``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from amplitude_dsr.dsr.completeness import Completeness, assess, coverage
from amplitude_dsr.dsr.model import AccessResult, Identifier, SearchAttempt, SubjectData
from amplitude_dsr.dsr.report._events import RecentEvents, csv_row, event_fields, iter_events
from amplitude_dsr.dsr.report._operator import write_operator_record
from amplitude_dsr.dsr.report._output import HashingWriter, atomic_package, iso, now_utc
from amplitude_dsr.dsr.report._present import (
    attempt_view,
    environment,
    identifier_label,
    property_rows,
    source_notes,
    summary_rows,
)
from amplitude_dsr.dsr.report._privacy import excluded_sentence, excluded_total, own_amplitude_ids
from amplitude_dsr.dsr.report._privacy import public_resolution_json as resolution_json

EXPORT_SCHEMA = "amplitude-dsr/access-export"
EXPORT_SCHEMA_VERSION = 2
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
    operator_dir: Path | None = None,
) -> Path:
    """Write the access package of ``result`` atomically to ``out_dir/<request_id>/``.

    Replaces an existing package of the same request. On any error nothing is left behind.
    With ``operator_dir`` (``<data_dir>/operator``) the operator record is written there first.
    Returns the final directory.
    """
    created = now or now_utc()
    recent = RecentEvents(recent_events)
    counts: list[int] = []
    completeness = assess(result)
    if operator_dir is not None:
        write_operator_record(operator_dir, result.request_id, "access", result.resolution, now=created)
    with atomic_package(out_dir, result.request_id) as package:
        columns = event_fields((d.events_path, d.event_count) for d in result.subjects)
        with package.open("export.json") as export, package.open("events.csv") as events_csv:
            rows = csv.writer(events_csv, lineterminator="\r\n")
            rows.writerow(columns)
            _write_export(result, created, out=export, rows=rows, recent=recent, counts=counts, columns=columns)
        with package.open("report.html") as html:
            context = _report_context(result, created, recent, counts, completeness)
            for chunk in environment().get_template("report.html.j2").generate(context):
                html.write(chunk)
        package.write_manifest(result.request_id, created, {"completeness": completeness_json(completeness)})
    return out_dir / result.request_id


def completeness_json(completeness: Completeness) -> dict[str, Any]:
    """``completeness`` of the export and the manifest: ``status``, ``complete``, ``reasons``."""
    return {"status": completeness.status, **completeness.model_dump(mode="json")}


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
        "completeness": completeness_json(assess(result)),
        "notes": list(result.notes),
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
        "coverage": coverage(data).model_dump(mode="json"),
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
    columns: list[str],
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
            rows.writerow(csv_row(project, amplitude_id, event, columns))
            recent.add(project, event)
            written += 1
        out.write("\n      ],\n" if written else "],\n")
        out.write(f'      "events_in_export": {written}\n    }}')
        counts.append(written)
    out.write("\n  ]\n}\n" if result.subjects else "]\n}\n")


def _report_context(
    result: AccessResult, created: datetime, recent: RecentEvents, counts: list[int], completeness: Completeness
) -> dict[str, Any]:
    by_identifier: dict[Identifier, list[SearchAttempt]] = {}
    for attempt in result.resolution.attempts:
        by_identifier.setdefault(attempt.identifier, []).append(attempt)
    own = own_amplitude_ids(result.resolution)
    searches = [
        {
            "label": identifier_label(identifier),
            "attempts": [attempt_view(a, own) for a in attempts],
        }
        for identifier, attempts in by_identifier.items()
    ]
    excluded = excluded_total(result.resolution)
    subjects = [
        {
            "data": data,
            "ids": data.subject.all_amplitude_ids,
            "matched_by": [identifier_label(i) for i in data.subject.matched_by],
            "summary": summary_rows(data.summary),
            "properties": property_rows(data.summary),
            "sources": source_notes(data),
            "by_type": sorted(data.events_by_type.items(), key=lambda kv: (-kv[1], kv[0])),
            "in_export": count,
            "coverage": coverage(data),
        }
        for data, count in zip(result.subjects, counts, strict=True)
    ]
    return {
        "r": result,
        "generated_at": created,
        "statement": _statement(result),
        "identifiers": [identifier_label(i) for i in result.identifiers],
        "searches": searches,
        "unresolved": [identifier_label(i) for i in result.resolution.unresolved()],
        "subjects": subjects,
        "recent": recent.newest_first(),
        "total_events": recent.seen,
        "completeness": completeness,
        "excluded": excluded_sentence(excluded) if excluded else None,
        "missing_events": sum(coverage(d).events_missing for d in result.subjects),
    }
