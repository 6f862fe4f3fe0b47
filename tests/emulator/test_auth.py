"""Auth: project keys per region, org keys for DSAR, 401 JSON bodies (docs/amplitude.md#authentication)."""

from __future__ import annotations

import base64

import httpx
import pytest

from .conftest import Emu


def _basic(key: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


@pytest.mark.parametrize(
    ("root", "path", "who", "expected"),
    [
        ("us", "/api/2/usersearch?user=x", "web", 200),
        ("us", "/api/2/usersearch?user=x", "mobile", 200),
        ("eu", "/api/2/usersearch?user=x", "eu-app", 200),
        ("us", "/api/2/usersearch?user=x", "eu-app", 401),  # EU keys at the US root
        ("eu", "/api/2/usersearch?user=x", "web", 401),  # US keys under /eu
        ("us", "/api/2/usersearch?user=x", "bad-secret", 401),
        ("us", "/api/2/usersearch?user=x", "unencoded", 401),
        ("us", "/api/2/usersearch?user=x", "none", 401),
        ("us", "/api/2/usersearch?user=x", "org", 401),  # org keys are not project keys
        ("us", "/api/2/deletions/users?start_day=2024-01-01&end_day=2024-01-02", "web", 200),
        ("us", "/api/2/dsar/requests/1", "org", 404),  # authenticated; unknown id
        ("eu", "/api/2/dsar/requests/1", "org", 404),
        ("us", "/api/2/dsar/requests/1", "web", 401),  # project key on DSAR
        ("us", "/api/2/dsar/requests/1", "none", 401),
    ],
)
def test_auth_table(emu: Emu, root: str, path: str, who: str, expected: int) -> None:
    base = emu.eu_url if root == "eu" else emu.url
    web_key, web_secret = emu.auth("web")
    headers = {
        "org": _basic(*emu.org_auth),
        "bad-secret": _basic(web_key, "0" * 32),
        "unencoded": {"Authorization": f"Basic {web_key}:{web_secret}"},
        "none": {},
    }.get(who)
    if headers is None:
        headers = _basic(*emu.auth(who))
    response = httpx.get(base + path, headers=headers)
    assert response.status_code == expected, response.text
    body = response.json()
    if expected == 401:
        assert "error" in body


def test_401_is_logged_without_project(emu: Emu) -> None:
    since = emu.server.admin.request_log()[-1]["seq"] if emu.server.admin.request_log() else 0
    httpx.get(emu.url + "/api/2/usersearch", params={"user": "x"}, auth=("nope", "nope"))
    entry = emu.server.admin.request_log(since)[-1]
    assert (entry["status"], entry["project"], entry["pool"]) == (401, None, "usersearch")
