"""Relay and forward settings are strict: a bad file, key, type, host or variable is a start-up
error that names what to fix; MP_SMTP_RELAY_* variables work without a file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.relay.config import settings


def write(tmp_path: Path, text: str, name: str = "relay.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_good_file_gives_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "host: 127.0.0.1\nport: 2525\nstarttls: true\nallow-insecure: true\nauth: CRAM-MD5\n"
        "username: u\nsecret: s\nreturn-path: b@x.test\noverride-from: 'Me <me@x.test>'\n"
        "allowed-recipients: '@x\\.test$'\nblocked-recipients: '^no@'\n"
        "preserve-message-ids: true\nforward-smtp-errors: false\n",
    )
    up = settings(Config(smtp_relay_config=path)).relay
    assert up is not None
    assert (up.host, up.port, up.starttls, up.allow_insecure) == ("127.0.0.1", 2525, True, True)
    assert (up.auth, up.username, up.secret) == ("cram-md5", "u", "s")
    assert up.override_from == "me@x.test"
    assert up.allowed_recipients == r"@x\.test$" and up.preserve_message_ids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host: 127.0.0.1\nhots: typo\n", "line 2: unknown key 'hots'"),
        ("host: 127.0.0.1\nport: twenty\n", "line 2: port must be a whole number"),
        ("host: 127.0.0.1\nstarttls: maybe\n", "line 2: starttls must be true or false"),
        ("host: 127.0.0.1\nusername: [a, b]\n", "line 2: username must be text"),
        ("host: [unclosed\n", "is not valid YAML"),
        ("- a list\n", "must be a mapping"),
        ("port: 25\n", "host is required"),
        ("host: no-such-host.mailpit-py.invalid\n", "'no-such-host.mailpit-py.invalid' cannot"),
        ("host: 127.0.0.1\nstarttls: true\ntls: true\n", "starttls and tls cannot both"),
        ("host: 127.0.0.1\nauth: plain\nusername: u\n", "auth plain needs username and password"),
        ("host: 127.0.0.1\nauth: kerberos\n", "auth 'kerberos' is not one of"),
        ("host: 127.0.0.1\nallowed-recipients: '(['\n", "allowed-recipients is not a regular"),
        ("host: 127.0.0.1\nreturn-path: nobody\n", "return-path 'nobody' is not an email"),
    ],
)
def test_a_bad_file_is_an_error_naming_the_key_or_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=None) as err:
        validate(Config(smtp_relay_config=path))
    assert expected in str(err.value)
    assert "--smtp-relay-config" in str(err.value)


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        validate(Config(smtp_relay_config=str(tmp_path / "missing.yaml")))


def test_variables_configure_the_relay_without_a_file() -> None:
    cfg = config_from(
        ["--smtp-relay-all"],
        {
            "MP_SMTP_RELAY_HOST": "127.0.0.1",
            "MP_SMTP_RELAY_PORT": "2525",
            "MP_SMTP_RELAY_STARTTLS": "true",
            "MP_SMTP_RELAY_AUTH": "login",
            "MP_SMTP_RELAY_USERNAME": "u",
            "MP_SMTP_RELAY_PASSWORD": "p",
            "MP_SMTP_RELAY_BLOCKED_RECIPIENTS": "@real",
            "MP_SMTP_RELAY_PRESERVE_MESSAGE_IDS": "1",
            "MP_SMTP_RELAY_FORWARD_SMTP_ERRORS": "yes",
        },
    )
    s = settings(cfg)
    assert s.relay_all and s.relay is not None
    assert (s.relay.host, s.relay.port, s.relay.auth, s.relay.password) == (
        "127.0.0.1",
        2525,
        "login",
        "p",
    )
    assert s.relay.blocked("x@real") and s.relay.preserve_message_ids
    assert s.relay.forward_smtp_errors


def test_forward_variables_need_to() -> None:
    with pytest.raises(ConfigError, match="'to' is required"):
        config_from([], {"MP_SMTP_FORWARD_HOST": "127.0.0.1"})
    cfg = config_from(
        [], {"MP_SMTP_FORWARD_HOST": "127.0.0.1", "MP_SMTP_FORWARD_TO": "a@x.test,b@x.test"}
    )
    forward = settings(cfg).forward
    assert forward is not None and forward.to == ("a@x.test", "b@x.test")


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {"MP_SMTP_RELAY_HOST": "127.0.0.1", "MP_SMTP_RELAY_TLS": "sure"}, "not true or"),
        (["--smtp-relay-all"], {}, "need a relay"),
        (["--smtp-relay-matching", "(["], {"MP_SMTP_RELAY_HOST": "127.0.0.1"}, "not a regular"),
        (
            ["--smtp-relay-all", "--smtp-relay-matching", "x"],
            {"MP_SMTP_RELAY_HOST": "127.0.0.1"},
            "cannot be used together",
        ),
        (["--smtp-relay-mx", "--smtp-relay-mx-nameserver", "nowhere"], {}, "not an address"),
        (["--smtp-relay-max-attempts", "0"], {}, "1 or more"),
    ],
)
def test_bad_relay_flags_and_variables_are_errors(
    argv: list[str], env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config_from(argv, env)
    assert expected in str(err.value)


def test_the_cli_refuses_to_start_with_a_bad_relay_file(tmp_path: Path) -> None:
    path = write(tmp_path, "host: 127.0.0.1\nprot: 25\n")
    done = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "--smtp-relay-config", path],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert "line 2: unknown key 'prot'" in done.stderr


def test_mailpit_py_config_masks_relay_passwords() -> None:
    env = {
        "MP_SMTP_RELAY_HOST": "127.0.0.1",
        "MP_SMTP_RELAY_AUTH": "plain",
        "MP_SMTP_RELAY_USERNAME": "me",
        "MP_SMTP_RELAY_PASSWORD": "hunter2-relay",
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "config", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "hunter2-relay" not in done.stdout
    assert "MP_SMTP_RELAY_USERNAME" in done.stdout and "me" in done.stdout
    assert "hunter2-relay" not in repr(config_from([], env))


def test_mailpits_deprecated_recipient_allowlist_still_works_and_is_named(tmp_path: Path) -> None:
    from mailpit_py.config.validate import notices

    old = write(tmp_path, "host: 127.0.0.1\nrecipient-allowlist: '@x\\.test$'\n")
    config = validate(Config(smtp_relay_config=old))
    up = settings(config).relay
    assert up is not None and up.allowed_recipients == r"@x\.test$"
    assert notices(config, {}, []) == [
        f"--smtp-relay-config {old}: 'recipient-allowlist' is deprecated, as in Mailpit: "
        "use 'allowed-recipients'"
    ]
    both = "host: 127.0.0.1\nrecipient-allowlist: old\nallowed-recipients: new\n"
    up = settings(Config(smtp_relay_config=write(tmp_path, both, "both.yaml"))).relay
    assert up is not None and up.allowed_recipients == "new"  # as in Mailpit, the new key wins
    # Only the relay file knew that key: a forward file with it is still refused.
    fwd = "host: 127.0.0.1\nto: a@x.test\nrecipient-allowlist: x\n"
    with pytest.raises(ConfigError, match="unknown key 'recipient-allowlist'"):
        settings(Config(smtp_forward_config=write(tmp_path, fwd, "fwd.yaml")))
