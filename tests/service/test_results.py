"""Results as short-lived signed links: a final request's ``results_url`` downloads its package
(or certificate) as a zip whose files match the manifest; a tampered, expired or missing
signature is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .conftest import eventually
from .test_opendsr import REQUESTS, bearer, detail, erasure, request_body, status_of


def completed(svc: Any, token: str, sid: str) -> dict[str, Any]:
    return eventually(
        lambda: (doc := status_of(svc, token, sid))["request_status"] == "completed" and doc, "completion"
    )


def unzip(response: httpx.Response) -> dict[str, bytes]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def check_against_manifest(files: dict[str, bytes], evidence_sha256: str) -> None:
    manifest = json.loads(files["manifest.json"])
    assert hashlib.sha256(files["manifest.json"]).hexdigest() == evidence_sha256
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    for name, digest in listed.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, name


def test_an_access_package_downloads_through_its_signed_link(
    start_service: Any, make_token: Any, catalog: dict[str, Any], tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][5]
    token = make_token("acme", "submit", "read")
    svc = start_service()
    sid = str(uuid.uuid4())
    body = request_body("access", sid, ("controller_customer_id", user["user_id"]))
    assert httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token)).status_code == 201
    doc = completed(svc, token, sid)
    link = doc["results_url"]
    assert link.startswith(f"{svc.url}/opendsr/v2/results/{sid}?")
    files = unzip(httpx.get(link))  # no token: the signature is the authorisation
    assert {"export.json", "report.html", "events.csv", "manifest.json"} <= set(files)
    check_against_manifest(files, detail(doc)["evidence_sha256"])
    export = json.loads(files["export.json"])
    assert sum(len(s["events"]) for s in export["subjects"]) == user["num_events"]

    query = parse_qs(urlsplit(link).query)
    expires, signature = int(query["expires"][0]), query["signature"][0]
    base = f"{svc.url}/opendsr/v2/results/{sid}"
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for params in (
        {"expires": expires + 3600, "signature": signature},  # a longer life it was not signed for
        {"expires": expires, "signature": flipped},
        {"expires": expires},
    ):
        refused = httpx.get(base, params=params)
        assert refused.status_code == 403, params
        assert refused.json()["error"]["code"] == 403
    # No link parameters: a bearer token is the authorisation instead (Fides' result request).
    assert httpx.get(base).status_code == 401
    assert httpx.get(base, headers=bearer(make_token("acme-submit", "submit"))).status_code == 403
    assert httpx.get(base, headers=bearer(make_token("other", "read"))).status_code == 404  # not its request
    with_token = httpx.get(base, headers=bearer(token))
    assert with_token.status_code == 200
    assert unzip(with_token)["manifest.json"] == files["manifest.json"]
    # Expired: a link signed with the service's own key, an hour in the past.
    [key_file] = list(tmp_path.rglob("results-key"))
    past = int(time.time()) - 3600
    mac = hmac.new(key_file.read_bytes(), f"{sid}:{past}".encode(), hashlib.sha256).digest()
    old = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert httpx.get(base, params={"expires": past, "signature": old}).status_code == 403
    future = int(time.time()) + 600
    mac = hmac.new(key_file.read_bytes(), f"{sid}:{future}".encode(), hashlib.sha256).digest()
    fresh = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert httpx.get(base, params={"expires": future, "signature": fresh}).status_code == 200


def test_an_erasure_links_its_certificate_and_a_pending_request_has_no_link(
    start_service: Any, make_token: Any, catalog: dict[str, Any]
) -> None:
    user = catalog["web"]["ordinary"][6]
    token = make_token("acme", "submit", "read")
    svc = start_service()
    sid = str(uuid.uuid4())
    body = erasure(sid, ("controller_customer_id", user["user_id"]))
    accepted = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token))
    assert accepted.status_code == 201
    doc = completed(svc, token, sid)
    files = unzip(httpx.get(doc["results_url"]))
    assert {"certificate.json", "certificate.html", "manifest.json"} == set(files)
    check_against_manifest(files, detail(doc)["evidence_sha256"])
    certificate = json.loads(files["certificate.json"])
    assert certificate["outcome"]["document"] == "certificate_of_deletion"
    assert json.loads(files["manifest.json"])["request_id"] == detail(doc)["request_id"]
    assert user["user_id"] not in files["manifest.json"].decode()


def test_no_link_before_the_request_is_final(start_service: Any, make_token: Any, tmp_path: Path) -> None:
    token = make_token("acme", "submit", "read")
    svc = start_service("--no-worker")
    sid = str(uuid.uuid4())
    assert (
        httpx.post(f"{svc.url}{REQUESTS}", json=erasure(sid, ("device_id", "d-1")), headers=bearer(token)).status_code
        == 201
    )
    assert status_of(svc, token, sid)["results_url"] is None
    [key_file] = list(tmp_path.rglob("results-key"))
    future = int(time.time()) + 600
    mac = hmac.new(key_file.read_bytes(), f"{sid}:{future}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    response = httpx.get(f"{svc.url}/opendsr/v2/results/{sid}", params={"expires": future, "signature": signature})
    assert response.status_code == 404
