"""The processor's signing key and certificate (OpenDSR callbacks and responses).

OpenDSR signs every callback and response body: ``X-OpenDSR-Signature`` is the Base64 of an RSA
PKCS#1 v1.5 signature over the SHA-256 of the raw body, made with the private key of the
certificate served at the ``processor_certificate`` URL of ``/discovery``.

A self-hosted install has no certificate to start with: on first start a 2048-bit RSA key and a
self-signed certificate for the processor's domain are written under
``<data dir>/service/`` (``processor-key.pem`` 0600, ``processor-cert.pem``). Replace both
files with a CA-issued pair (the spec asks controllers to prefer one) and restart.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from amplitude_dsr.errors import ConfigError
from amplitude_dsr.store.db import private_dir

KEY_FILE = "processor-key.pem"
CERT_FILE = "processor-cert.pem"
# 2048 bits: FIPS 186-4 (which OpenDSR's section 4.2 names) and NIST SP 800-57 accept it (112-bit
# security); every POST answer is signed twice, and a 3072-bit signature costs about 2x the CPU
# (bench/PROBLEMS.md P-9). A CA-issued key of any RSA size (2048 or more) is used as given.
KEY_BITS = 2048
CERT_VALIDITY = timedelta(days=825)  # the longest validity browsers accept; renew by deleting both files


@dataclass(frozen=True)
class Signer:
    """Signs bodies with the processor's private key; serves its certificate (PEM)."""

    key: rsa.RSAPrivateKey
    certificate_pem: bytes

    def sign(self, body: bytes) -> str:
        """The Base64 signature of ``body`` (RSA PKCS#1 v1.5 over SHA-256)."""
        return base64.b64encode(self.key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(certificate_pem: bytes, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (Base64) is the certificate's key's signature of ``body``: what a
    controller does with a callback (and what the tests do, independently of :class:`Signer`)."""
    public = x509.load_pem_x509_certificate(certificate_pem).public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        return False
    try:
        public.verify(base64.b64decode(signature, validate=True), body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def load_or_create(directory: Path, domain: str) -> Signer:
    """The key pair in ``directory``, created (self-signed for ``domain``) when neither file
    exists. One file without the other, or files that do not parse, is a configuration error."""
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if not key_path.exists() and not cert_path.exists():
        _create(directory, domain)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert_pem = cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
    except FileNotFoundError as exc:
        raise ConfigError(f"the processor key pair is incomplete: {exc.filename} is missing") from None
    except ValueError:
        raise ConfigError(f"cannot read the processor key pair in {directory} (PEM, unencrypted RSA)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{key_path} is not an RSA private key")
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != key.public_key().public_numbers():
        raise ConfigError(f"{cert_path} does not belong to the private key in {key_path}")
    return Signer(key, cert_pem)


def _create(directory: Path, domain: str) -> None:
    private_dir(directory)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain[:64] or "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain or "localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(directory / KEY_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    (directory / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
