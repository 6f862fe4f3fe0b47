"""The optional identity map: email -> the user IDs the product uses in Amplitude.

Two sources: a CSV file with columns ``email,user_id`` (several rows per email allowed), or an
HTTP lookup the operator provides: ``GET <url>?email=<email>`` answering
``{"user_ids": ["..."]}``. Emails are compared case-insensitively; user IDs are kept verbatim
(Amplitude user IDs are case-sensitive).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import httpx

from amplitude_dsr.errors import UsageError

LOOKUP_TIMEOUT = 10.0


def load_csv(path: Path, emails: Iterable[str]) -> dict[str, list[str]]:
    """The entries of ``emails`` found in the CSV at ``path`` (other rows are not kept)."""
    wanted = {e.lower() for e in emails}
    found: dict[str, list[str]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = {f.strip().lower() for f in reader.fieldnames or []}
            if not {"email", "user_id"} <= fields:
                raise UsageError(f"identity map {path} needs the columns email,user_id")
            for raw in reader:
                row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
                email = row.get("email", "").lower()
                if email in wanted and row.get("user_id"):
                    found.setdefault(email, [])
                    if row["user_id"] not in found[email]:
                        found[email].append(row["user_id"])
    except FileNotFoundError:
        raise UsageError(f"identity map not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read identity map {path}: {type(exc).__name__}") from None
    return found


def lookup_http(
    url: str, emails: Iterable[str], *, transport: httpx.BaseTransport | None = None
) -> dict[str, list[str]]:
    """Ask the operator's lookup service for each email."""
    found: dict[str, list[str]] = {}
    with httpx.Client(timeout=LOOKUP_TIMEOUT, transport=transport) as client:
        for email in emails:
            try:
                response = client.get(url, params={"email": email})
            except httpx.HTTPError as exc:
                raise UsageError(f"identity lookup service unreachable ({type(exc).__name__})") from None
            if response.status_code == 404:
                continue
            if response.status_code != 200:
                raise UsageError(f"identity lookup service answered HTTP {response.status_code}")
            try:
                ids = response.json().get("user_ids", [])
            except (ValueError, AttributeError):
                raise UsageError('identity lookup service did not answer {"user_ids": [...]}') from None
            if ids:
                found[email.lower()] = [str(i) for i in ids]
    return found


def check_source(source: str | None) -> None:
    """Refuse an unusable identity map before a request is stored (:class:`UsageError`): a CSV
    file must exist and have the columns ``email,user_id``; a lookup must be an http(s) URL."""
    if not source:
        return
    if "://" in source:
        if not source.startswith(("http://", "https://")) or not httpx.URL(source).host:
            raise UsageError("an identity map lookup must be an http:// or https:// URL")
        return
    load_csv(Path(source), ())


def build(source: str | None, emails: Iterable[str]) -> dict[str, list[str]]:
    """The identity map for ``emails`` from ``source`` (a CSV path or an http(s) URL)."""
    emails = list(emails)
    if not source or not emails:
        return {}
    if source.startswith(("http://", "https://")):
        return lookup_http(source, emails)
    return load_csv(Path(source), emails)
