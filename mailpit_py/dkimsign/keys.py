"""Signing keys: a PEM file (RSA or Ed25519) read once, and the DNS TXT record publishing it."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

MIN_RSA_BITS = 1024  # RFC 8301: verifiers must refuse smaller RSA keys


class KeyFileError(ValueError):
    """A key file that cannot sign; the message names the file and how to fix it."""


@dataclass(frozen=True)
class SigningKey:
    """A private key in the form dkimpy signs with, and its public half for the DNS record."""

    path: str
    algorithm: bytes  # b"rsa-sha256" or b"ed25519-sha256"
    private: bytes  # PEM (RSA) or the base64 32-byte seed (Ed25519), as dkimpy takes them
    public: str  # base64: the RSA SubjectPublicKeyInfo, or the raw Ed25519 key (RFC 8463)

    @property
    def kind(self) -> str:
        return "rsa" if self.algorithm == b"rsa-sha256" else "ed25519"

    def record(self) -> str:
        """The TXT record value to publish at SELECTOR._domainkey.DOMAIN (RFC 6376 3.6.1)."""
        return f"v=DKIM1; k={self.kind}; p={self.public}"


_HOW = (
    "make one with `openssl genrsa -out dkim.pem 2048` or `openssl genpkey -algorithm ed25519 "
    "-out dkim.pem`"
)


def load_key(path: str) -> SigningKey:
    """Read a PEM private key (RSA PKCS#1 or PKCS#8, Ed25519 PKCS#8, unencrypted); also the
    base64 Ed25519 seed that dkimpy's dknewkey writes. Raises KeyFileError saying what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        return _seed(path, data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(f"{path}: the key is encrypted: decrypt it first ({_HOW})") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not a PEM private key ({exc}); {_HOW}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyFileError(
                f"{path}: a {key.key_size}-bit RSA key is too small for DKIM (RFC 8301 needs "
                f"{MIN_RSA_BITS}, 2048 is usual): {_HOW}"
            )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return SigningKey(path, b"rsa-sha256", pem, base64.b64encode(der).decode())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _ed25519(path, key)
    raise KeyFileError(
        f"{path}: a {type(key).__name__.removeprefix('_')} key cannot sign DKIM: use RSA or "
        f"Ed25519 ({_HOW})"
    )


def _seed(path: str, data: bytes) -> SigningKey:
    try:
        seed = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        seed = b""
    if len(seed) != 32:
        raise KeyFileError(f"{path}: not a PEM private key: {_HOW}")
    return _ed25519(path, ed25519.Ed25519PrivateKey.from_private_bytes(seed))


def _ed25519(path: str, key: ed25519.Ed25519PrivateKey) -> SigningKey:
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SigningKey(
        path, b"ed25519-sha256", base64.b64encode(seed), base64.b64encode(public).decode()
    )
