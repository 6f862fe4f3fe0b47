"""Which host a credential talks to (facts: ``docs/amplitude.md#hosts-and-regions``, gotcha 10).

Keys work only against their own region's host: EU projects must use
``analytics.eu.amplitude.com``. ``analytics.amplitude.com`` is the web app, never an API host.
A ``base_url`` on the credentials (the emulator, a proxy, tests) wins over the region.
"""

from __future__ import annotations

import hashlib

import httpx

from amplitude_dsr.config import Credentials, Region

REGION_BASE_URLS: dict[Region, str] = {
    "us": "https://amplitude.com",
    "eu": "https://analytics.eu.amplitude.com",
}


def base_url(credentials: Credentials) -> str:
    """The base URL (no trailing slash) for ``credentials``: the override, else the region's."""
    if credentials.base_url:
        return credentials.base_url.rstrip("/")
    return REGION_BASE_URLS[credentials.region]


def scope_key(credentials: Credentials) -> str:
    """A budget scope for ``credentials`` that never contains a secret: a short SHA-256 of the
    API key (the key identifies the project, or the org for org keys)."""
    digest = hashlib.sha256(credentials.api_key.get_secret_value().encode("utf-8")).hexdigest()
    return digest[:12]


def is_amplitude_origin(url: httpx.URL, base: httpx.URL) -> bool:
    """True when org credentials may be sent to ``url``: the configured base origin, or an
    ``https`` Amplitude host (DSAR output links may point at ``analytics.amplitude.com``)."""
    if (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port):
        return True
    host = url.host.lower()
    return url.scheme == "https" and (host == "amplitude.com" or host.endswith(".amplitude.com"))
