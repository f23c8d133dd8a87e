"""Mailpit's flags and MP_* variables keep Mailpit's meaning: units, defaults, accepted names."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import urllib.request
from dataclasses import asdict

import pytest

from helpers import REPO, make_server
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError


def _serve(environ: dict[str, str], argv: list[str] | None = None, **extra: object):  # type: ignore[no-untyped-def]
    """A real server built from flags and variables as the CLI reads them, on loopback."""
    cfg = asdict(config_from(argv or [], environ))
    cfg.pop("smtp_relay_env", None)
    cfg.update(extra)
    return make_server(**{k: v for k, v in cfg.items() if k not in ("smtp_addr", "http_addr")})


def _count(mp) -> int:  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(mp.http_url + "api/v1/messages") as resp:
        return int(json.load(resp)["total"])


@pytest.mark.parametrize(
    ("value", "size"),
    [("10", 10 * 1024**2), ("1", 1024**2), ("0", 0), ("512KB", 512 * 1024), ("10MB", 10 * 1024**2)],
)
def test_max_message_size_is_megabytes_as_in_mailpit(value: str, size: int) -> None:
    assert config_from([], {"MP_MAX_MESSAGE_SIZE": value}).max_message_size == size
    assert config_from(["--max-message-size", value], {}).max_message_size == size


def test_max_message_size_error_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError, match="megabytes as Mailpit does"):
        config_from(["--max-message-size", "lots"], {})


@pytest.mark.parametrize("value", ["10", "0"])
def test_max_message_size_in_megabytes_accepts_ordinary_mail(value: str) -> None:
    # A plain 10 was read as 10 bytes (every message refused with 552); 0 stopped start-up.
    with _serve({"MP_MAX_MESSAGE_SIZE": value}).start() as mp:
        body = "x" * 20_000
        with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: s\r\n\r\n{body}\r\n")
        assert _count(mp) == 1
        # The web app takes an upload larger than the old byte limit too (0: no limit at all).
        req = urllib.request.Request(
            mp.http_url + "api/v1/send",
            data=json.dumps(
                {
                    "From": {"Email": "a@example.com"},
                    "To": [{"Email": "b@example.com"}],
                    "Subject": "big",
                    "Text": "y" * 40_000,
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 200
        assert _count(mp) == 2


def test_max_message_size_in_megabytes_still_refuses_larger_mail() -> None:
    with _serve({"MP_MAX_MESSAGE_SIZE": "1"}).start() as mp:
        body = "x" * (1024**2 + 100)
        with (
            smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp,
            pytest.raises(smtplib.SMTPResponseException) as exc,
        ):
            smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: s\r\n\r\n{body}\r\n")
        assert exc.value.smtp_code == 552
        assert _count(mp) == 0


def _families() -> list[tuple[int, str]]:
    """The loopback addresses this machine can reach: IPv4, and IPv6 where it has it."""
    found = [(socket.AF_INET, "127.0.0.1")]
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        found.append((socket.AF_INET6, "::1"))
    except OSError:
        pass
    return found


def test_all_interfaces_listen_on_ipv4_and_ipv6_as_mailpit() -> None:
    # `[::]` was IPv6 only (Python sets IPV6_V6ONLY): a client of 127.0.0.1 was refused.
    with make_server(smtp_addr="[::]:0", http_addr="[::]:0").start() as mp:
        smtp_port, http_port = mp.smtp_address[1], mp.http_address[1]
        for _family, host in _families():
            with smtplib.SMTP(host, smtp_port, timeout=10) as smtp:
                smtp.sendmail("a@example.com", ["b@example.com"], "Subject: s\r\n\r\nhi\r\n")
            name = f"[{host}]" if ":" in host else host
            with urllib.request.urlopen(f"http://{name}:{http_port}/livez", timeout=10) as resp:
                assert resp.status == 200
        assert _count(mp) == len(_families())


def test_start_line_says_every_interface_listens_and_how_to_keep_it_local() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpit_py", "--smtp", "[::]:0", "--listen", "[::]:0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("MP_")},
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(2)]
        text = "".join(lines)
        assert "SMTP and HTTP listening on every network interface" in text, text
        assert "--smtp 127.0.0.1:1025 --listen 127.0.0.1:8025" in text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
