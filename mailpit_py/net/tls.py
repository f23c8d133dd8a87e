"""TLS server contexts from PEM files, or from a self-signed certificate made at start-up."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailpit_py.config.errors import ConfigError

SANS_PREFIX = "sans:"


def self_signed(hosts: list[str]) -> tuple[bytes, bytes]:
    """A fresh self-signed certificate and its key (PEM) for the given DNS names or IPs."""
    key = ec.generate_private_key(ec.SECP256R1())  # fast to make, accepted by every modern client
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def sans_hosts(value: str) -> list[str] | None:
    """The host list of a `sans:host1,host2` value (Mailpit's convention), else None."""
    if not value.startswith(SANS_PREFIX):
        return None
    hosts = [h.strip() for h in value[len(SANS_PREFIX) :].split(",") if h.strip()]
    return hosts or ["localhost"]


def server_context(cert: str, key: str | None, flag: str) -> ssl.SSLContext:
    """A server SSLContext; `cert` is a PEM file or `sans:...`; errors name the flag to fix."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    hosts = sans_hosts(cert)
    if hosts is not None:
        cert_pem, key_pem = self_signed(hosts)
        # load_cert_chain reads files only; the pair lives in a private temp dir for the call.
        with tempfile.TemporaryDirectory(prefix="mailpit-py-tls-") as tmp:
            cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert_path.write_bytes(cert_pem)
            key_path.write_bytes(key_pem)
            context.load_cert_chain(cert_path, key_path)
        return context
    if not key:
        raise ConfigError(f"{flag}-key is needed with {flag}-cert (or use {flag}-cert sans:HOST)")
    for path, which in ((cert, f"{flag}-cert"), (key, f"{flag}-key")):
        if not Path(path).is_file():
            raise ConfigError(f"{which}: {path} does not exist or is not a file")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"{flag}-cert/{flag}-key: cannot load {cert} and {key} as a PEM certificate and its "
            f"key: {exc}"
        ) from None
    return context
