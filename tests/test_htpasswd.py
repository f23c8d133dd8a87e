"""Auth files written by htpasswd or openssl, in every format Mailpit's reader takes, log in."""

from __future__ import annotations

import base64
import hashlib
import shutil
import smtplib
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import make_server
from mailpit_py.config.credentials import Credentials
from mailpit_py.config.htpasswd import matches

OPENSSL = shutil.which("openssl")
need_openssl = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")

# Published vectors: the SHA-crypt specification's own examples (rounds given and default).
SHA_CRYPT_VECTORS = [
    ("Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    (
        "Hello world!",
        "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
    ),
    (
        "Hello world!",
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    ),
]


def openssl_hash(scheme: str, password: str) -> str:
    """A hash as `openssl passwd` writes it (-1, -apr1, -5, -6), as people fill auth files."""
    assert OPENSSL is not None
    done = subprocess.run(
        [OPENSSL, "passwd", scheme, "-stdin"],
        input=password.encode(),
        capture_output=True,
        check=True,
        timeout=30,
    )
    return done.stdout.decode().strip()


@pytest.mark.parametrize(("password", "stored"), SHA_CRYPT_VECTORS)
def test_sha_crypt_matches_the_published_vectors(password: str, stored: str) -> None:
    assert matches(password, stored)
    assert not matches("Hello world", stored)


@need_openssl
@pytest.mark.parametrize("scheme", ["-apr1", "-1", "-5", "-6"])
@pytest.mark.parametrize("password", ["s3cret", "a" * 70, "pässwörd"])
def test_openssl_hashes_match_their_password_only(scheme: str, password: str) -> None:
    stored = openssl_hash(scheme, password)
    assert matches(password, stored), stored
    assert not matches(password + "x", stored)
    assert not matches(password[:-1], stored)


def test_sha_ssha_and_plain_forms() -> None:
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"s3cret").digest()).decode()
    salted = hashlib.sha1(b"s3cret" + b"salt").digest() + b"salt"
    ssha = "{SSHA}" + base64.b64encode(salted).decode()
    for stored in (sha, ssha, "{PLAIN}s3cret"):
        assert matches("s3cret", stored), stored
        assert not matches("s3cre", stored), stored
    # Malformed hashes match nothing, whatever is typed (their text included).
    for stored in ("$apr1$nosalt", "$5$", "$6$rounds=x$salt$hash", "{SSHA}!!", "$2y$junk"):
        assert not matches(stored, stored)
        assert not matches("", stored)


@need_openssl
def test_hashed_entries_give_cram_md5_no_password() -> None:
    creds = Credentials.parse(
        f"ann:{openssl_hash('-apr1', 'a')} bob:{openssl_hash('-6', 'b')} cat:clear",
        "MP_SMTP_AUTH",
    )
    assert creds.plain_password("ann") is None and creds.plain_password("bob") is None
    assert creds.plain_password("cat") == "clear"
    assert creds.check("ann", "a") and creds.check("bob", "b") and creds.check("cat", "clear")
    assert not creds.check("ann", creds.entries["ann"])  # the hash is not the password


def _get(url: str, user: str, password: str) -> int:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


@need_openssl
def test_htpasswd_style_files_log_in_to_the_api_and_smtp(tmp_path: Path) -> None:
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"pw-sha").digest()).decode()
    lines = [
        f"apr:{openssl_hash('-apr1', 'pw-apr')}",  # htpasswd's default
        f"md5:{openssl_hash('-1', 'pw-md5')}",
        f"s256:{openssl_hash('-5', 'pw-256')}",
        f"s512:{openssl_hash('-6', 'pw-512')}",
        f"sha:{sha}",  # htpasswd -s
    ]
    users = tmp_path / "htpasswd"
    users.write_text("\n".join(lines) + "\n")
    with make_server(
        ui_auth_file=str(users), smtp_auth_file=str(users), smtp_auth_allow_insecure=True
    ).start() as mp:
        url = mp.http_url + "api/v1/messages"
        logins = [("apr", "pw-apr"), ("md5", "pw-md5"), ("s256", "pw-256")]
        logins += [("s512", "pw-512"), ("sha", "pw-sha")]
        for user, password in logins:
            assert _get(url, user, password) == 200, user
            assert _get(url, user, password + "!") == 401, user
        for user, password in logins[:2]:
            with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
                smtp.login(user, password)  # raises unless 235
                smtp.sendmail("a@example.com", ["b@example.com"], "Subject: s\r\n\r\nhi\r\n")
            with (
                smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp,
                pytest.raises(smtplib.SMTPAuthenticationError),
            ):
                smtp.login(user, "wrong")
        assert mp.mailbox is not None and mp.mailbox.counts()[0] == 2
