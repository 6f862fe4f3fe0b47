"""The service's pure parts as tables: status mapping, backoff, tokens, the key pair."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import amplitude_dsr.service as service_package
from amplitude_dsr.dsr.periodic import PeriodicCheck
from amplitude_dsr.errors import ConfigError, UsageError
from amplitude_dsr.service import EmbeddedWorker, auth, signing
from amplitude_dsr.service.callbacks import backoff, jitter
from amplitude_dsr.service.status import opendsr_status
from amplitude_dsr.states import RequestStatus
from amplitude_dsr.store.db import make_engine
from amplitude_dsr.store.service_tables import create_service_tables

ACCESS = {
    "received": "pending", "held": "pending", "resolving": "in_progress", "collecting": "in_progress",
    "completed": "completed", "failed": "completed",
}  # fmt: skip
DELETION = {
    "received": "pending", "held": "pending", "resolving": "in_progress", "resolved": "in_progress",
    "queued": "in_progress",
    "staging": "in_progress", "submitted": "in_progress", "done": "in_progress", "verifying": "in_progress",
    "verified": "completed", "recollected": "completed", "still_present": "completed",
    "nothing_found": "completed", "failed": "completed", "cancelled": "cancelled",
}  # fmt: skip


@pytest.mark.parametrize(("status", "expected"), sorted(ACCESS.items()))
def test_access_status_mapping(status: str, expected: str) -> None:
    assert opendsr_status("access", status) == expected


@pytest.mark.parametrize(("status", "expected"), sorted(DELETION.items()))
def test_deletion_status_mapping(status: str, expected: str) -> None:
    assert opendsr_status("deletion", status) == expected


def test_every_deletion_status_is_mapped() -> None:
    assert set(DELETION) == {s.value for s in RequestStatus} - {"collecting", "completed"}


@pytest.mark.parametrize(
    ("attempts", "expected"), [(1, 5.0), (2, 10.0), (3, 20.0), (10, 2560.0), (11, 3600.0), (40, 3600.0)]
)
def test_backoff_doubles_and_is_capped(attempts: int, expected: float) -> None:
    assert backoff(attempts, 5.0, 3600.0) == expected


def test_jitter_adds_at_most_ten_percent() -> None:
    assert jitter(10.0, 0.0) == 10.0
    assert jitter(10.0, 1.0) == pytest.approx(11.0)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    e = make_engine(f"sqlite:///{tmp_path / 'svc.sqlite'}")
    create_service_tables(e)
    return e


def test_a_token_authenticates_only_whole_and_unrevoked(engine: sa.Engine) -> None:
    from amplitude_dsr.store import service_repo

    token_id, token = auth.create(engine, "acme", ["read", "submit"])
    caller = auth.authenticate(engine, f"Bearer {token}")
    assert caller is not None
    assert (caller.name, caller.scopes) == ("acme", frozenset({"read", "submit"}))
    assert caller.may("read") and not caller.may("admin")
    for header in (None, "", token, f"Basic {token}", f"Bearer {token}x", f"Bearer {token[:-1]}",
                   f"Bearer adsr_{'0' * 16}_{token.split('_', 2)[2]}", "Bearer adsr_zz"):  # fmt: skip
        assert auth.authenticate(engine, header) is None, header
    assert service_repo.revoke_token(engine, token_id)
    assert not service_repo.revoke_token(engine, token_id)
    assert auth.authenticate(engine, f"Bearer {token}") is None
    [stored] = service_repo.list_tokens(engine)
    assert token.split("_", 2)[2] not in repr(stored)  # only the digest is kept


@pytest.mark.parametrize(("name", "scopes"), [("acme", []), ("acme", ["write"]), ("", ["read"]), ("a b", ["read"])])
def test_bad_token_requests_are_usage_errors(engine: sa.Engine, name: str, scopes: list[str]) -> None:
    with pytest.raises(UsageError):
        auth.create(engine, name, scopes)


def test_the_key_pair_is_made_once_private_and_checked(tmp_path: Path) -> None:
    first = signing.load_or_create(tmp_path / "svc", "dsr.example.com")
    key_file = tmp_path / "svc" / signing.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = signing.load_or_create(tmp_path / "svc", "dsr.example.com")
    assert again.certificate_pem == first.certificate_pem
    assert signing.verify(first.certificate_pem, b"body", again.sign(b"body"))
    assert not signing.verify(first.certificate_pem, b"other", again.sign(b"body"))
    # A certificate that is not the key's (replaced by hand, half) is refused at start.
    other = signing.load_or_create(tmp_path / "other", "dsr.example.com")
    (tmp_path / "svc" / signing.CERT_FILE).write_bytes(other.certificate_pem)
    with pytest.raises(ConfigError, match="does not belong"):
        signing.load_or_create(tmp_path / "svc", "dsr.example.com")
    (tmp_path / "svc" / signing.CERT_FILE).unlink()
    with pytest.raises(ConfigError, match="missing"):
        signing.load_or_create(tmp_path / "svc", "dsr.example.com")
    # A replaced pair (both files) is used as it is.
    (tmp_path / "svc" / signing.CERT_FILE).write_bytes(other.certificate_pem)
    key_file.write_bytes((tmp_path / "other" / signing.KEY_FILE).read_bytes())
    assert signing.load_or_create(tmp_path / "svc", "x").certificate_pem == other.certificate_pem


def test_exported_members() -> None:
    exported = service_package.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(service_package, name) is not None


SECRET = "s3cret"
NOW = 1_800_000_000


def _signed(body: bytes, ts: int = NOW, secret: str = SECRET) -> tuple[str, str]:
    import base64
    import hashlib
    import hmac

    mac = hmac.new(secret.encode(), f"{ts}:".encode() + body, hashlib.sha256).digest()
    return str(ts), base64.b64encode(mac).decode()


@pytest.mark.parametrize(
    ("what", "timestamp", "signature", "body", "refused"),
    [
        ("good", *_signed(b"{}"), b"{}", None),
        ("good with v1=", _signed(b"{}")[0], "v1=" + _signed(b"{}")[1], b"{}", None),
        ("edge of the window", *_signed(b"{}", NOW - 300), b"{}", None),
        ("stale", *_signed(b"{}", NOW - 301), b"{}", "more than 300 seconds"),
        ("future", *_signed(b"{}", NOW + 301), b"{}", "more than 300 seconds"),
        ("other body", *_signed(b"{}"), b"{ }", "does not match"),
        ("other secret", *_signed(b"{}", secret="x"), b"{}", "does not match"),
        ("timestamp changed", str(NOW + 1), _signed(b"{}")[1], b"{}", "does not match"),
        ("no signature", str(NOW), None, b"{}", "does not match"),
        ("no timestamp", None, _signed(b"{}")[1], b"{}", "missing or not Unix seconds"),
        ("timestamp not digits", "1.5e9", _signed(b"{}")[1], b"{}", "missing or not Unix seconds"),
    ],
)
def test_datagrail_signature_table(
    what: str, timestamp: str | None, signature: str | None, body: bytes, refused: str | None
) -> None:
    from amplitude_dsr.service.datagrail import refusal

    reason = refusal(SECRET, timestamp, signature, body, float(NOW))
    if refused is None:
        assert reason is None, what
    else:
        assert reason is not None and refused in reason, what


class _Count(PeriodicCheck):
    name = "count"

    def __init__(self) -> None:
        super().__init__(interval=0.0, first=0.0)
        self.runs = 0

    def check(self) -> int:
        self.runs += 1
        return self.runs


def test_the_embedded_worker_ticks_until_told_to_stop() -> None:
    check = _Count()
    told = threading.Event()
    stopped = threading.Event()
    worker = EmbeddedWorker([check], tick=0.01, should_stop=told.is_set, on_stop=stopped.set)
    worker.start()
    deadline = time.monotonic() + 30
    while check.runs < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert check.runs >= 3 and worker.alive()
    told.set()  # the executor must stop (its lock was taken): the loop ends and says so
    assert stopped.wait(30)
    deadline = time.monotonic() + 30
    while worker.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.alive()
    runs = check.runs
    worker.stop()
    assert check.runs == runs
