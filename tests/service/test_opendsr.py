"""The OpenDSR 2.0 API end to end: the real ``amplitude-dsr serve`` (uvicorn, embedded worker)
beside the emulator, driven over HTTP. Claims are checked against what the emulator received
and against our database, and callback signatures with an independent verifier."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from amplitude_dsr.config import normalize_database_url

from .conftest import Receiver, ServiceProcess, api_calls, erasure, eventually, request_body

REQUESTS = "/opendsr/v2/requests"
DELETIONS = "/deletions/users"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signature_valid(certificate_pem: bytes, body: bytes, signature: str) -> bool:
    """The controller's check, written here with `cryptography` alone (not the service's code)."""
    key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def certificate_of(svc: ServiceProcess) -> bytes:
    """The certificate, fetched from the URL discovery names."""
    url = httpx.get(f"{svc.url}/opendsr/v2/discovery").json()["processor_certificate"]
    assert url.startswith(svc.url)
    response = httpx.get(url)
    assert response.status_code == 200
    return response.content


def status_of(svc: ServiceProcess, token: str, subject_request_id: str) -> dict[str, Any]:
    response = httpx.get(f"{svc.url}{REQUESTS}/{subject_request_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def detail(doc: dict[str, Any]) -> dict[str, Any]:
    [ours] = doc["extensions"].values()
    value: dict[str, Any] = ours
    return value


def requests_in_db(db_url: str) -> int:
    engine = sa.create_engine(normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM dsr_requests")).scalar_one())
    finally:
        engine.dispose()


def test_discovery_names_identities_types_and_a_certificate_that_signs_its_answer(
    start_service: Any,
) -> None:
    svc = start_service()
    response = httpx.get(f"{svc.url}/opendsr/v2/discovery")
    assert response.status_code == 200
    doc = response.json()
    assert {i["identity_type"] for i in doc["supported_identities"]} == {
        "email", "controller_customer_id", "amplitude_id", "device_id",
    }  # fmt: skip
    assert {i["identity_format"] for i in doc["supported_identities"]} == {"raw"}
    assert sorted(doc["supported_subject_request_types"]) == ["access", "erasure", "portability"]
    cert = certificate_of(svc)
    assert response.headers["X-OpenDSR-Processor-Domain"] == "127.0.0.1"
    assert signature_valid(cert, response.content, response.headers["X-OpenDSR-Signature"])
    assert not signature_valid(cert, response.content + b" ", response.headers["X-OpenDSR-Signature"])
    assert response.headers["X-OpenGDPR-Signature"] == response.headers["X-OpenDSR-Signature"]


def test_erasure_end_to_end_with_signed_callbacks(
    start_service: Any, make_token: Any, receiver: Receiver, catalog: dict[str, Any], emulator: Any
) -> None:
    user = catalog["web"]["ordinary"][0]
    token = make_token("acme", "submit", "read")
    svc = start_service()
    sid = str(uuid.uuid4())
    body = erasure(sid, ("controller_customer_id", user["user_id"]), status_callback_urls=[receiver.url])
    response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["subject_request_id"] == sid
    assert answer["controller_id"] == "acme"
    assert json.loads(base64.b64decode(answer["encoded_request"])) == body
    cert = certificate_of(svc)
    assert signature_valid(cert, response.content, response.headers["X-OpenDSR-Signature"])

    final = eventually(
        lambda: (doc := status_of(svc, token, sid))["request_status"] == "completed" and doc, "the erasure to complete"
    )
    ours = detail(final)
    assert ours["state"] == "verified"
    assert ours["verified"] is True
    assert [j["status"] for j in ours["jobs"]] == ["done"]
    assert len(ours["evidence_sha256"]) == 64
    # Amplitude received exactly one deletion POST, holding exactly this person's Amplitude ID.
    [post] = api_calls(emulator, DELETIONS, "POST")
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]

    # Callbacks: one per state change, the last saying completed, each signed over its raw body.
    def final_callback() -> bool:
        return any(r.json()["request_status"] == "completed" for r in receiver.received)

    eventually(final_callback, "the completed callback")
    states = [detail(r.json())["state"] for r in receiver.received]
    assert states[-1] == "verified"
    assert len(states) == len(set(states))  # no change announced twice
    assert "submitted" in states or "done" in states
    for got in receiver.received:
        assert got.path == "/callbacks"
        assert got.headers["x-opendsr-processor-domain"] == "127.0.0.1"
        assert signature_valid(cert, got.body, got.headers["x-opendsr-signature"])
        doc = got.json()
        assert doc["subject_request_id"] == sid
        assert doc["status_callback_url"] == receiver.url
        assert user["user_id"] not in got.body.decode()  # no identifier in a status body
    tampered = receiver.received[-1].body.replace(b"verified", b"recollect")
    assert not signature_valid(cert, tampered, receiver.received[-1].headers["x-opendsr-signature"])


def test_access_end_to_end_counts_what_the_emulator_served(
    start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any
) -> None:
    user = catalog["web"]["ordinary"][1]
    token = make_token("acme", "submit", "read")
    svc = start_service()
    sid = str(uuid.uuid4())
    body = request_body("access", sid, ("email", user["user_id"]))
    response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    final = eventually(
        lambda: (doc := status_of(svc, token, sid))["request_status"] == "completed" and doc, "the access to complete"
    )
    ours = detail(final)
    assert ours["state"] == "completed"
    assert ours["data_held"] is True
    assert final["results_count"] == user["num_events"]
    searches = api_calls(emulator, "/usersearch")
    assert [s["query"]["user"] for s in searches] == [user["user_id"]]
    activity = api_calls(emulator, "/useractivity")
    assert {int(a["query"]["user"]) for a in activity} == {user["amplitude_id"]}


def test_the_same_subject_request_id_returns_the_same_answer_and_creates_nothing(
    start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any, db_url: str
) -> None:
    user = catalog["web"]["ordinary"][2]
    token = make_token("acme", "submit", "read")
    svc = start_service()
    sid = str(uuid.uuid4())
    body = erasure(sid, ("amplitude_id", str(user["amplitude_id"])))
    first = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token))
    again = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token))
    legacy = httpx.post(f"{svc.url}/opendsr/v2/opengdpr_requests", json=body, headers=bearer(token))
    assert first.status_code == again.status_code == legacy.status_code == 201
    assert first.json() == again.json() == legacy.json()
    assert requests_in_db(db_url) == 1

    other = erasure(sid, ("amplitude_id", "12345"))
    refused = httpx.post(f"{svc.url}{REQUESTS}", json=other, headers=bearer(token))
    assert refused.status_code == 400
    assert refused.json()["error"]["errors"][0]["reason"] == "DuplicateRequestId"
    assert requests_in_db(db_url) == 1

    eventually(lambda: status_of(svc, token, sid)["request_status"] == "completed", "the erasure to complete")
    late = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token))
    assert late.json() == first.json()  # the same answer once the request is done, too
    [post] = api_calls(emulator, DELETIONS, "POST")
    assert post["body"]["amplitude_ids"] == [user["amplitude_id"]]
    assert requests_in_db(db_url) == 1


def test_cancel_while_staging_is_accepted_then_refused_with_the_reason(
    start_service: Any, make_token: Any, receiver: Receiver, catalog: dict[str, Any], emulator: Any
) -> None:
    emulator.admin.set_speed(1)  # real time: the job stays `staging` until the test moves the clock
    user = catalog["web"]["ordinary"][3]
    token = make_token("acme", "submit", "read")
    svc = start_service()
    sid = str(uuid.uuid4())
    body = erasure(sid, ("controller_customer_id", user["user_id"]), status_callback_urls=[receiver.url])
    assert httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token)).status_code == 201
    staged = eventually(lambda: detail(status_of(svc, token, sid))["jobs"], "the deletion to be receipted")
    [job] = staged
    assert job["status"] == "staging"

    response = httpx.delete(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(token))
    assert response.status_code == 202, response.text
    assert response.json()["subject_request_id"] == sid
    [removal] = api_calls(emulator, f"{DELETIONS}/{user['amplitude_id']}/{job['day']}", "DELETE")
    assert removal["status"] == 200
    doc = status_of(svc, token, sid)
    assert doc["request_status"] == "cancelled"

    again = httpx.delete(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(token))
    assert again.status_code == 400
    assert again.json()["error"]["message"] == "cannot cancel: the request is already 'cancelled'"
    assert again.json()["error"]["errors"][0]["reason"] == "CancelRefused"
    eventually(lambda: any(r.json()["request_status"] == "cancelled" for r in receiver.received), "cancel callback")


def test_an_access_request_cannot_be_cancelled(start_service: Any, make_token: Any) -> None:
    token = make_token("acme", "submit", "read")
    svc = start_service("--no-worker")
    sid = str(uuid.uuid4())
    body = request_body("portability", sid, ("device_id", "some-device"))
    assert httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token)).status_code == 201
    assert status_of(svc, token, sid)["request_status"] == "pending"  # no worker runs it
    refused = httpx.delete(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(token))
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "cannot cancel: only deletion requests can be cancelled"


# (token scopes, method, path, expected status): () means no Authorization header.
SCOPE_TABLE = [
    (("read",), "POST", REQUESTS, 403),
    (("read",), "DELETE", f"{REQUESTS}/{{sid}}", 403),
    (("submit",), "GET", f"{REQUESTS}/{{sid}}", 403),
    ((), "POST", REQUESTS, 401),
    ((), "GET", f"{REQUESTS}/{{sid}}", 401),
    ((), "DELETE", f"{REQUESTS}/{{sid}}", 401),
    (("admin",), "GET", f"{REQUESTS}/{{sid}}", 200),
    (("read",), "GET", f"{REQUESTS}/{{sid}}", 200),
]


def test_tokens_without_the_scope_are_refused(start_service: Any, make_token: Any) -> None:
    owner = make_token("acme", "submit", "read")
    svc = start_service("--no-worker")
    sid = str(uuid.uuid4())
    body = erasure(sid, ("device_id", "device-1"))
    assert httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(owner)).status_code == 201
    for scopes, method, path, expected in SCOPE_TABLE:
        headers = bearer(make_token("acme", *scopes)) if scopes else {}
        response = httpx.request(method, f"{svc.url}{path.format(sid=sid)}", json=body, headers=headers)
        assert response.status_code == expected, (scopes, method, path, response.text)
        if expected >= 400:
            error = response.json()["error"]
            assert error["code"] == expected
            assert error["errors"][0]["domain"] == ("Authentication" if expected == 401 else "Authorization")
    assert status_of(svc, owner, sid)["request_status"] == "pending"  # the refused DELETE changed nothing


SECRET = "jane.doe@example.org"
# (what is wrong, a change to a good body, the field the one-line message names)
BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("no id", {"subject_request_id": None}, "subject_request_id"),
    ("not a UUID", {"subject_request_id": "12345"}, "subject_request_id"),
    ("unknown type", {"subject_request_type": "rectification"}, "subject_request_type"),
    ("unknown regulation", {"regulation": "lgpd"}, "regulation"),
    ("no identities", {"subject_identities": []}, "subject_identities"),
    ("unknown identity", {"subject_identities": [{"identity_type": "ios_advertising_id", "identity_value": SECRET}]},
     "subject_identities[0].identity_type"),
    ("hashed identity", {"subject_identities": [{"identity_type": "email", "identity_value": SECRET,
                                                 "identity_format": "sha256"}]}, "identity_format"),
    ("malformed email", {"subject_identities": [{"identity_type": "email", "identity_value": "jane.doe@"}]},
     "subject_identities[0]: malformed email"),
    ("bad amplitude id", {"subject_identities": [{"identity_type": "amplitude_id", "identity_value": "-1"}]},
     "subject_identities[0]"),
    ("bad time", {"submitted_time": "yesterday"}, "submitted_time"),
    ("callback not http", {"status_callback_urls": ["file:///etc/passwd"]}, "status_callback_urls"),
    ("unknown field", {"colour": "blue"}, "colour"),
    ("unknown project", {"extensions": {"127.0.0.1": {"projects": ["nope"]}}}, "no project named"),
    ("unknown extension key", {"extensions": {"127.0.0.1": {"turbo": True}}}, "extensions.127.0.0.1: turbo"),
]  # fmt: skip


def test_bad_input_is_a_400_error_object_that_names_the_field_not_the_value(
    start_service: Any, make_token: Any, db_url: str
) -> None:
    token = make_token("acme", "submit", "read")
    svc = start_service("--no-worker")
    for what, change, named in BAD_INPUT:
        body = {**erasure(str(uuid.uuid4()), ("email", SECRET)), **change}
        body = {k: v for k, v in body.items() if v is not None}
        response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token))
        assert response.status_code == 400, (what, response.text)
        error = response.json()["error"]
        assert error["code"] == 400
        assert named in error["message"], (what, error["message"])
        assert {"domain", "reason", "message"} <= set(error["errors"][0]), what
        assert SECRET not in response.text, what
    broken = httpx.post(
        f"{svc.url}{REQUESTS}", content=b"{not json", headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["message"] == "body: the body is not valid JSON"
    unknown = httpx.get(f"{svc.url}{REQUESTS}/{uuid.uuid4()}", headers=bearer(token))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == 404
    assert requests_in_db(db_url) == 0


def test_revoked_wrong_and_foreign_tokens(start_service: Any, make_token: Any, service_env: Any) -> None:
    from .conftest import cli

    owner = make_token("acme", "submit", "read")
    stranger = make_token("globex", "read")
    svc = start_service("--no-worker")
    sid = str(uuid.uuid4())
    assert (
        httpx.post(f"{svc.url}{REQUESTS}", json=erasure(sid, ("device_id", "d")), headers=bearer(owner)).status_code
        == 201
    )
    # Another controller's request is as unknown as a missing one.
    assert httpx.get(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(stranger)).status_code == 404
    # A right ID with a wrong secret, and a revoked token, are refused.
    wrong = owner[:-4] + ("AAAA" if not owner.endswith("AAAA") else "BBBB")
    assert httpx.get(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(wrong)).status_code == 401
    token_id = owner.split("_", 2)[1]
    assert cli(service_env, "tokens", "revoke", token_id).returncode == 0
    assert httpx.get(f"{svc.url}{REQUESTS}/{sid}", headers=bearer(owner)).status_code == 401
    listed = json.loads(cli(service_env, "tokens", "list", "--json").stdout)["tokens"]
    assert {t["id"]: bool(t["revoked_at"]) for t in listed}[token_id] is True
    assert all("token" not in t and owner.split("_", 2)[2] not in json.dumps(t) for t in listed)


def test_an_erasure_can_ask_for_the_direct_path_in_our_extension(
    start_service: Any, make_token: Any, catalog: dict[str, Any], emulator: Any
) -> None:
    user = catalog["web"]["ordinary"][1]
    token = make_token("acme", "submit", "read")
    svc = start_service()
    sid = str(uuid.uuid4())
    ours = {"127.0.0.1": {"deletion_path": "direct"}}
    body = erasure(sid, ("controller_customer_id", user["user_id"]), extensions=ours)
    response = httpx.post(f"{svc.url}{REQUESTS}", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    eventually(lambda: status_of(svc, token, sid)["request_status"] == "completed", "the erasure to complete")
    [post] = api_calls(emulator, DELETIONS, "POST")  # the user ID as given, resolved by Amplitude
    assert post["body"]["user_ids"] == [user["user_id"]] and "amplitude_ids" not in post["body"]
    bad = erasure(str(uuid.uuid4()), ("controller_customer_id", user["user_id"]),
                  extensions={"127.0.0.1": {"deletion_path": "direct", "org_wide": True}})  # fmt: skip
    refused = httpx.post(f"{svc.url}{REQUESTS}", json=bad, headers=bearer(token))
    assert refused.status_code == 400 and "resolves its identifiers first" in refused.text
