"""Human wording for the HTML documents: labels, value formatting and the Jinja2 environment.

Templates are package data and autoescape everything: event and user properties are untrusted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from amplitude_dsr.dsr.model import DsarInfo, Identifier, SearchAttempt, SubjectData
from amplitude_dsr.dsr.report._privacy import excluded_in, excluded_sentence, visible_candidates

KIND_LABELS = {
    "email": "Email address",
    "user_id": "User ID",
    "amplitude_id": "Amplitude ID",
    "device_id": "Device ID",
}
SUMMARY_LABELS = {
    "user_id": "User ID",
    "canonical_amplitude_id": "Amplitude ID",
    "merged_amplitude_ids": "Merged Amplitude IDs",
    "num_events": "Number of events",
    "num_sessions": "Number of sessions",
    "usage_time": "Usage time",
    "first_used": "First used",
    "last_used": "Last used",
    "purchases": "Purchases",
    "revenue": "Revenue",
    "platform": "Platform",
    "os": "Operating system",
    "version": "App version",
    "start_version": "First app version",
    "device": "Device",
    "device_type": "Device model",
    "carrier": "Mobile carrier",
    "country": "Country",
    "region": "Region",
    "city": "City",
    "dma": "Metro area (DMA)",
    "language": "Language",
    "device_ids": "Device IDs",
    "last_device_id": "Last device ID",
    "last_location": "Last known location",
}
SOURCE_LABELS = {
    "dsar": "Amplitude DSAR export (complete event history, organisation keys)",
    "user_activity": (
        "User Activity API with project keys: the profile summary, the most recent events "
        "(up to 1,000) and the whole most recent session"
    ),
    "user_activity_full_history": "User Activity API with project keys, every page (the full history it serves)",
    "user_search": "User Search API (identity lookup)",
}
PROPERTY_TEXT_LIMIT = 400

_env: Environment | None = None


def environment() -> Environment:
    """The shared Jinja2 environment (templates from package data, autoescape on)."""
    global _env
    if _env is None:
        _env = Environment(
            loader=PackageLoader("amplitude_dsr.dsr.report", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _env.filters["display"] = display
        _env.filters["kind_label"] = kind_label
        _env.filters["when"] = when
    return _env


def kind_label(kind: str) -> str:
    """``"user_id"`` → ``"User ID"``."""
    return KIND_LABELS.get(str(kind), str(kind).replace("_", " ").capitalize())


def identifier_label(identifier: Identifier) -> str:
    """``Email address jane@example.com``."""
    return f"{kind_label(identifier.kind.value)} {identifier.value}"


def display(value: Any, limit: int = PROPERTY_TEXT_LIMIT) -> str:
    """A short, readable text for any JSON value (lists joined, objects as ``key: value``)."""
    if value is None or value in ("", [], {}):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        text = ", ".join(display(v, limit) for v in value)
    elif isinstance(value, dict):
        text = "; ".join(f"{k}: {display(v, limit)}" for k, v in value.items())
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(value: datetime | str | None) -> str:
    """A datetime as ``YYYY-MM-DD HH:MM:SS UTC``; strings pass through."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Labelled rows of a cleaned ``userData`` summary; known fields first, ``properties`` apart."""
    known = [k for k in SUMMARY_LABELS if k in summary]
    other = sorted(k for k in summary if k not in SUMMARY_LABELS and k != "properties")
    return [(SUMMARY_LABELS.get(k, k.replace("_", " ").capitalize()), display(summary[k])) for k in known + other]


def property_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The subject's current user properties as rows."""
    props = summary.get("properties")
    if not isinstance(props, dict):
        return []
    return [(str(k), display(v)) for k, v in sorted(props.items())]


def attempt_view(attempt: SearchAttempt, own: set[int]) -> dict[str, Any]:
    """How one search went, in plain words: what was searched, a verdict per candidate that is
    the subject's own identity (``own``: their Amplitude IDs), and how many others were excluded."""
    via = " (translated through the identity map)" if attempt.via == "identity_map" else ""
    searched = (
        f"Searched project {attempt.project} for {kind_label(attempt.term_kind)} "
        f"“{attempt.term}”{via}; match type: {attempt.match_type}."
    )
    candidates = []
    for c in visible_candidates(attempt, own):
        who = f"Amplitude ID {c.amplitude_id}" + (f" (user ID “{c.user_id}”)" if c.user_id else "")
        candidates.append({"accepted": c.accepted, "who": who, "reason": c.reason})
    excluded = excluded_in(attempt, own)
    return {"searched": searched, "candidates": candidates, "excluded": excluded_sentence(excluded) if excluded else ""}


def source_notes(data: SubjectData) -> list[str]:
    """Where one subject's data came from and anything incomplete about it."""
    notes = [SOURCE_LABELS.get(s, s) for s in data.sources]
    if data.dsar is not None:
        notes.append(_dsar_note(data.dsar))
    if not data.most_recent_session_complete:
        notes.append("The most recent session could not be collected completely.")
    return notes


def _dsar_note(dsar: DsarInfo) -> str:
    text = f"DSAR export {dsar.request_id or ''}: status {dsar.status}".replace("  ", " ")
    if dsar.fail_reason:
        text += f" ({dsar.fail_reason})"
    text += f", {dsar.files} file(s), {dsar.events} event(s)."
    if dsar.fell_back_to_project_keys:
        text += " The export did not complete, so data was collected with project keys instead."
    return text
