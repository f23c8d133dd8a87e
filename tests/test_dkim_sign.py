"""DKIM signing of what mailpit_py sends (--dkim-sign): keys made with openssl, the record from
`mailpit-py dkim-record` in a --dns-override file, and a sign -> relay -> verify round trip
between two real instances (A signs and relays, B checks), for RSA and Ed25519."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, wait_until
from mailpit_py.checks.dkim_check import verify_all
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.dkimsign.signer import Signer
from mailpit_py.mailbox.compose import compose
from mailpit_py.net.dns import Resolver, load_overrides
from mailpit_py.server import Server

MESSAGE = (
    b"From: App <app@example.test>\r\n"
    b"To: Dev <dev@example.org>\r\n"
    b"Subject: signed on the way out\r\n"
    b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <m1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello through A to B.\r\n"
)
ALGORITHMS = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}


def openssl_key(path: Path, kind: str) -> Path:
    """A private key made as docs/relay.md says: `openssl genrsa` / `openssl genpkey`."""
    if kind == "rsa":
        cmd = ["openssl", "genrsa", "-out", str(path), "2048"]
    else:
        cmd = ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailpit_py", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def published(tmp_path: Path, key: Path, domain: str = "example.test", selector: str = "mail"):
    """A --dns-override file holding the record `mailpit-py dkim-record` prints for `key`."""
    done = cli("dkim-record", str(key), "--domain", domain, "--selector", selector)
    assert done.returncode == 0, done.stderr
    zone = tmp_path / f"zone-{key.stem}-{selector}.txt"
    zone.write_text(done.stdout)
    return zone


def auth_check(mp: Server, uid: str) -> dict[str, Any]:
    url = f"{mp.http_url}api/v1/message/{uid}/auth-check"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def relay_to(tmp_path: Path, b: Server, name: str = "relay.yaml", **extra: Any) -> str:
    lines = {"host": "127.0.0.1", "port": b.smtp_address[1], **extra}
    path = tmp_path / name
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in lines.items()))
    return str(path)


def arrived(b: Server, count: int = 1) -> str:
    """The ID of the newest message at B once it holds `count`."""
    assert b.mailbox is not None
    found = wait_until(
        lambda: len(b.mailbox.list_messages()) >= count and b.mailbox.list_messages(),
        what=f"{count} messages at B",
    )
    return str(found[0]["ID"])


def pair(server_factory, tmp_path: Path, kind: str, zone_key: Path | None = None, **a_config: Any):
    """B verifies with the record of `zone_key` (default: A's key); A signs with its key and
    relays everything to B."""
    key = openssl_key(tmp_path / f"a-{kind}.pem", kind)
    zone = published(tmp_path, zone_key or key)
    b = server_factory(dns_override=str(zone), dns_offline=True)
    a = server_factory(
        smtp_relay_config=relay_to(tmp_path, b),
        smtp_relay_all=True,
        smtp_relay_retry_delay=0.05,
        dkim_sign=(f"example.test:mail:{key}",),
        **a_config,
    )
    return a, b, key


# -- sign -> relay -> verify -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_a_relayed_copy_is_signed_by_a_and_passes_bs_dkim_check(
    server_factory, tmp_path: Path, kind: str
) -> None:
    a, b, _ = pair(server_factory, tmp_path, kind)
    with smtplib.SMTP(*a.smtp_address) as client:
        client.sendmail("bounce@example.test", ["dev@example.org"], MESSAGE)
    uid = arrived(b)
    report = auth_check(b, uid)
    (sig,) = report["DKIM"]
    assert (sig["Result"], sig["Domain"], sig["Selector"]) == ("pass", "example.test", "mail")
    assert sig["Algorithm"] == ALGORITHMS[kind]
    assert sig["Canonicalization"] == "relaxed/relaxed"
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in sig["SignedHeaders"]
    assert "dkim=pass header.d=example.test header.s=mail" in report["AuthenticationResults"]
    # A keeps the message as it came, unsigned: the signature is on the copy that left.
    assert a.mailbox is not None and b"DKIM-Signature" not in a.mailbox.raw("latest")


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_the_signature_fails_at_b_once_the_body_is_altered(
    server_factory, tmp_path: Path, kind: str
) -> None:
    a, b, _ = pair(server_factory, tmp_path, kind)
    with smtplib.SMTP(*a.smtp_address) as client:
        client.sendmail("bounce@example.test", ["dev@example.org"], MESSAGE)
    assert b.mailbox is not None
    signed = b.mailbox.raw(arrived(b))
    # A later hop changes the body (a footer added) and hands the message on to B again.
    altered = signed.replace(b"Hello through A to B.", b"Hello through A to B. Footer!")
    with smtplib.SMTP(*b.smtp_address) as client:
        client.sendmail("bounce@example.test", ["dev@example.org"], altered)
    (sig,) = auth_check(b, arrived(b, 2))["DKIM"]
    assert (sig["Result"], sig["BodyHashOK"]) == ("fail", False)
    assert sig["Reason"].startswith("body modified")


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_the_signature_fails_at_b_when_b_knows_another_key(
    server_factory, tmp_path: Path, kind: str
) -> None:
    other = openssl_key(tmp_path / f"other-{kind}.pem", kind)
    a, b, _ = pair(server_factory, tmp_path, kind, zone_key=other)
    with smtplib.SMTP(*a.smtp_address) as client:
        client.sendmail("bounce@example.test", ["dev@example.org"], MESSAGE)
    (sig,) = auth_check(b, arrived(b))["DKIM"]
    assert (sig["Result"], sig["BodyHashOK"], sig["SignatureOK"]) == ("fail", True, False)


def test_mail_from_a_domain_without_a_key_goes_unsigned(server_factory, tmp_path: Path) -> None:
    a, b, _ = pair(server_factory, tmp_path, "rsa")
    other = MESSAGE.replace(b"app@example.test", b"app@elsewhere.test")
    with smtplib.SMTP(*a.smtp_address) as client:
        client.sendmail("bounce@elsewhere.test", ["dev@example.org"], other)
    assert b.mailbox is not None
    assert b"DKIM-Signature" not in b.mailbox.raw(arrived(b))


def test_a_wildcard_rule_signs_every_domain_with_its_own_d(server_factory, tmp_path: Path) -> None:
    key = openssl_key(tmp_path / "any.pem", "ed25519")
    zone = published(tmp_path, key, domain="shop.example.test", selector="any")
    b = server_factory(dns_override=str(zone), dns_offline=True)
    a = server_factory(
        smtp_relay_config=relay_to(tmp_path, b),
        smtp_relay_all=True,
        dkim_sign=(f"*:any:{key}",),
    )
    shop = MESSAGE.replace(b"app@example.test", b"app@shop.example.test")
    with smtplib.SMTP(*a.smtp_address) as client:
        client.sendmail("bounce@shop.example.test", ["dev@example.org"], shop)
    (sig,) = auth_check(b, arrived(b))["DKIM"]
    assert (sig["Result"], sig["Domain"], sig["Selector"]) == ("pass", "shop.example.test", "any")


def test_a_release_is_signed_after_its_new_date_and_message_id(
    server_factory, tmp_path: Path
) -> None:
    key = openssl_key(tmp_path / "rel.pem", "rsa")
    zone = published(tmp_path, key)
    b = server_factory(dns_override=str(zone), dns_offline=True)
    a = server_factory(
        smtp_relay_config=relay_to(tmp_path, b), dkim_sign=(f"example.test:mail:{key}",)
    )
    with smtplib.SMTP(*a.smtp_address) as client:
        client.sendmail("bounce@example.test", ["dev@example.org"], MESSAGE)
    assert a.mailbox is not None
    uid = a.mailbox.list_messages()[0]["ID"]
    body = json.dumps({"To": ["dev@example.org"]}).encode()
    req = urllib.request.Request(
        f"{a.http_url}api/v1/message/{uid}/release", data=body, method="POST"
    )
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
    assert b.mailbox is not None
    raw = b.mailbox.raw(arrived(b))
    assert b"<m1@example.test>" not in raw  # the release's fresh Message-ID is what was signed
    (sig,) = auth_check(b, b.mailbox.list_messages()[0]["ID"])["DKIM"]
    assert sig["Result"] == "pass"


def test_a_forwarded_copy_is_signed(server_factory, tmp_path: Path) -> None:
    key = openssl_key(tmp_path / "fwd.pem", "ed25519")
    zone = published(tmp_path, key)
    b = server_factory(dns_override=str(zone), dns_offline=True)
    a = server_factory(
        smtp_forward_config=relay_to(tmp_path, b, "forward.yaml", to="archive@example.org"),
        dkim_sign=(f"example.test:mail:{key}",),
    )
    with smtplib.SMTP(*a.smtp_address) as client:
        client.sendmail("bounce@example.test", ["dev@example.org"], MESSAGE)
    (sig,) = auth_check(b, arrived(b))["DKIM"]
    assert sig["Result"] == "pass"


# -- the send API and `mailpit-py send` ------------------------------------------------------


def test_the_send_api_signs_what_it_stores_and_relays(server_factory, tmp_path: Path) -> None:
    a, b, _ = pair(server_factory, tmp_path, "rsa", dns_override=None)
    body = {
        "From": {"Email": "app@example.test", "Name": "App"},
        "To": [{"Email": "dev@example.org"}],
        "Subject": "from the send API",
        "Text": "Hello.",
    }
    req = urllib.request.Request(
        f"{a.http_url}api/v1/send", data=json.dumps(body).encode(), method="POST"
    )
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        uid = json.loads(resp.read())["ID"]
    assert a.mailbox is not None
    assert a.mailbox.raw(uid).startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    (sig,) = auth_check(b, arrived(b))["DKIM"]
    assert sig["Result"] == "pass"
    # Relayed, the stored signature is replaced by a fresh one of the same key, not doubled.
    assert b.mailbox is not None and b.mailbox.raw("latest").count(b"DKIM-Signature:") == 1


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_mailpit_py_send_signs_the_message(server_factory, tmp_path: Path, how: str) -> None:
    key = openssl_key(tmp_path / "send.pem", "ed25519")
    b = server_factory(dns_override=str(published(tmp_path, key)), dns_offline=True)
    spec = f"example.test:mail:{key}"
    host, port = b.smtp_address
    args = ["send", "--server", f"{host}:{port}", "--from", "app@example.test"]
    args += ["--to", "dev@example.org", "--subject", "signed by send"]
    if how == "flag":
        done = cli(*args, "--dkim-sign", spec)
    else:
        done = cli(*args, env={"MP_DKIM_SIGN": f"other.test:x:{key}; {spec}"})
    assert done.returncode == 0, done.stderr
    assert "=== DKIM-signed: d=example.test s=mail (ed25519-sha256)" in done.stdout
    (sig,) = auth_check(b, arrived(b))["DKIM"]
    assert (sig["Result"], sig["Algorithm"]) == ("pass", "ed25519-sha256")


def test_mailpit_py_send_says_when_no_rule_covers_the_from_domain(
    server_factory, tmp_path: Path
) -> None:
    key = openssl_key(tmp_path / "send.pem", "rsa")
    b = server_factory()
    host, port = b.smtp_address
    done = cli("send", "--server", f"{host}:{port}", "--from", "app@elsewhere.test",
               "--to", "dev@example.org", "--dkim-sign", f"example.test:mail:{key}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "=== not DKIM-signed: no --dkim-sign rule covers the From domain elsewhere.test" in (
        done.stdout
    )
    assert b.mailbox is not None and b"DKIM-Signature" not in b.mailbox.raw(arrived(b))


def test_mailpit_py_send_with_a_bad_key_stops_before_connecting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    done = cli("send", "-q", "--to", "a@example.org", "--dkim-sign", f"example.test:s:{bad}")
    assert done.returncode == 64
    assert f"{bad}: not a PEM private key" in done.stderr


# -- keys, records and start-up --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_dkim_record_prints_the_value_and_an_override_line_that_verifies(
    tmp_path: Path, kind: str
) -> None:
    key = openssl_key(tmp_path / f"k-{kind}.pem", kind)
    value = cli("dkim-record", str(key))
    assert value.returncode == 0, value.stderr
    assert value.stdout.startswith(f"v=DKIM1; k={kind}; p=")
    line = cli("dkim-record", f"example.test:mail:{key}").stdout.strip()
    assert line.startswith('mail._domainkey.example.test TXT "v=DKIM1;')
    overrides = load_overrides(str(published(tmp_path, key)))
    assert overrides[("mail._domainkey.example.test", "TXT")] == [value.stdout.strip()]
    # The send API's composer signs with the same rule, and the checks verify it offline.
    _, raw, _ = compose(
        {"From": {"Email": "a@example.test"}, "To": [{"Email": "b@example.org"}], "Text": "hi"},
        (f"example.test:mail:{key}",),
    )
    (sig,) = verify_all(raw, Resolver(overrides, offline=True))
    assert sig.result == "pass", sig.reason


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--dkim-sign", "example.test:mail"], "is not DOMAIN:SELECTOR:KEYFILE"),
        (["--dkim-sign", "exa mple.test:mail:k.pem"], "is not a domain"),
        (["--dkim-sign", "example.test:m@il:k.pem"], "is not a selector"),
        (["--dkim-sign", "example.test:mail:/no/such.pem"], "cannot read the key file"),
    ],
)
def test_a_bad_dkim_sign_value_stops_start_up_naming_it(argv: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        config_from(argv, {})


def test_a_key_that_cannot_sign_stops_start_up_saying_why(tmp_path: Path) -> None:
    small = tmp_path / "small.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(small), "512"], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    ec = tmp_path / "ec.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(ec)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    locked = tmp_path / "locked.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-aes256", "-pass",
                    "pass:x", "-out", str(locked)], check=True, capture_output=True,
                   timeout=60)  # fmt: skip
    for path, says in (
        (small, "512-bit RSA key is too small"),
        (ec, "cannot sign DKIM: use RSA or Ed25519"),
        (locked, "the key is encrypted"),
    ):
        with pytest.raises(ConfigError, match=says) as err:
            config_from(["--dkim-sign", f"example.test:mail:{path}"], {})
        assert str(path) in str(err.value)
    done = cli("--dkim-sign", f"example.test:mail:{ec}", "--smtp", "127.0.0.1:0")
    assert done.returncode != 0 and "cannot sign DKIM" in done.stderr


def test_dkim_sign_reads_its_variable_and_a_flag_of_several(tmp_path: Path) -> None:
    rsa = openssl_key(tmp_path / "r.pem", "rsa")
    ed = openssl_key(tmp_path / "e.pem", "ed25519")
    both = (f"a.test:s1:{rsa}", f"*.b.test:s2:{ed}")
    assert config_from([], {"MP_DKIM_SIGN": "; ".join(both)}).dkim_sign == both
    assert config_from(["--dkim-sign", ";".join(both)], {}).dkim_sign == both


def test_dkim_sign_repeats(tmp_path: Path) -> None:
    rsa = openssl_key(tmp_path / "r.pem", "rsa")
    ed = openssl_key(tmp_path / "e.pem", "ed25519")
    both = (f"a.test:s1:{rsa}", f"*.b.test:s2:{ed}")
    config = config_from(["--dkim-sign", both[0], "--dkim-sign", both[1]], {})
    assert config.dkim_sign == both


def test_a_key_file_replaced_at_the_same_path_is_read_again(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    first = openssl_key(tmp_path / "first.pem", "ed25519")
    second = openssl_key(tmp_path / "second.pem", "ed25519")
    rule = (f"example.test:mail:{key}",)
    body = {"From": {"Email": "a@example.test"}, "To": [{"Email": "b@example.org"}]}
    for made in (first, second):
        key.write_bytes(made.read_bytes())
        os.utime(key, ns=(made.stat().st_mtime_ns, made.stat().st_mtime_ns))
        _, raw, _ = compose(body, rule)
        zone = load_overrides(str(published(tmp_path, made)))
        (sig,) = verify_all(raw, Resolver(zone, offline=True))
        assert sig.result == "pass", sig.reason


@pytest.mark.parametrize(
    "sender",
    [b"a@[127.0.0.1]", b"a@", b"\xff@ex\xffample.test", b"a@localhost"],
)
def test_a_from_without_a_domain_name_goes_unsigned(tmp_path: Path, sender: bytes) -> None:
    key = openssl_key(tmp_path / "k.pem", "ed25519")
    raw = b"From: " + sender + b"\r\nSubject: x\r\n\r\nHello\r\n"
    assert Signer.from_values([f"*:mail:{key}"]).sign(raw) == raw
