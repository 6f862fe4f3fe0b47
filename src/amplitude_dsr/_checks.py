"""Checks of text the user gives (identifiers, keys, URLs), shared by the settings and the
domain model: each says what is wrong without repeating the value, which may be personal."""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from pydantic import SecretStr

DATABASE_HINT = "must be a sqlite:///FILE or postgresql://HOST/DATABASE URL"


def text_problem(value: str) -> str | None:
    """What makes ``value`` unusable as text sent to Amplitude or stored, or ``None``: a lone
    surrogate (bytes that were not UTF-8 on the command line) or a control character (NUL,
    newline, escape ...). Never names the value itself."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            return "is not valid UTF-8"
        if category == "Cc":
            return "contains a control character"
    return None


def clean_text(value: Any) -> Any:
    """Refuse text no API or database takes (a lone surrogate, a control character)."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(raw, str):
        problem = text_problem(raw)
        if problem:
            raise ValueError(problem)
        if not raw.strip():
            raise ValueError("must not be empty")
    return value


def check_base_url(value: str) -> str:
    """An ``http(s)://host[:port][/path]`` URL (ValueError otherwise)."""
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0  # .port raises ValueError when out of range
    except ValueError:
        port_ok = False
    if not port_ok or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def normalize_database_url(url: str) -> str:
    """The SQLAlchemy URL for ``url``: ``postgresql://`` gets the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def check_database_url(value: str) -> str:
    """A URL of a database we run on: SQLite (a file) or PostgreSQL (ValueError otherwise)."""
    clean_text(value)
    try:
        url = sa.engine.make_url(normalize_database_url(value))
        port_ok = url.port is None or 0 < url.port < 65536
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise ValueError(DATABASE_HINT) from None
    if url.drivername == "sqlite":
        if not (normalize_database_url(value).startswith("sqlite:///") and url.database):
            raise ValueError(DATABASE_HINT)
    elif url.drivername != "postgresql+psycopg" or not port_ok:
        raise ValueError(DATABASE_HINT)
    return value
