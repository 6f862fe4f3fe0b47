"""HTTP Basic authentication against project keys (per region) and the org key."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from .model import Org, Project


@dataclass(frozen=True)
class Credentials:
    """The decoded ``key:secret`` pair of a Basic header."""

    key: str
    secret: str


def parse_basic(header: str | None) -> Credentials | None:
    """Decode ``Authorization: Basic base64(key:secret)``; None when absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return Credentials(key, secret)


def find_project(projects: dict[str, Project], region: str, creds: Credentials | None) -> Project | None:
    """The project of this region whose keys match (keys of the other region are refused)."""
    if creds is None:
        return None
    for project in projects.values():
        if project.region == region and project.api_key == creds.key and project.secret_key == creds.secret:
            return project
    return None


def is_org(org: Org, creds: Credentials | None) -> bool:
    """Whether the credentials are the org-level key and secret."""
    return creds is not None and creds.key == org.api_key and creds.secret == org.secret_key
