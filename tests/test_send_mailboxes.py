"""`mailpit-py send` and `sendmail` reach a mailbox through the server's routing, as their
--help says: by AUTH username (--mailbox-auto), by recipient, by the --mailbox-header header and
by listener. Real servers, the commands as processes."""

from __future__ import annotations

import subprocess
import sys

from test_migrate_mailboxes import api

from helpers import make_server

MAILPIT = [sys.executable, "-m", "mailpit_py"]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAILPIT, *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_help_says_how_to_reach_a_mailbox() -> None:
    send = run("send", "--help").stdout
    assert "mailbox" in send
    assert "--auth shop-ci:secret" in send and "X-Mailbox: shop" in send
    sendmail = run("sendmail", "--help").stdout
    assert "mailbox" in sendmail and "X-Mailbox: shop" in sendmail and "-S" in sendmail


def test_send_and_sendmail_reach_mailboxes_by_each_route() -> None:
    with make_server(
        max_messages=0,
        smtp_auth_accept_any=True,
        smtp_auth_allow_insecure=True,
        mailbox_auto=True,
        mailbox_header="X-Mailbox",
        mailbox_routes=("shop=rcpt:*@shop.test",),
        smtp_listeners=("billing=127.0.0.1:0,mailbox=billing",),
    ) as mp:
        server = "{}:{}".format(*mp.smtp_address)
        send = ["send", "-q", "--to", "a@example.org", "--server", server]
        listener = "{}:{}".format(*mp.listener_address("billing"))
        sent = [
            run(*send, "--auth", "ci:x", "--subject", "by auth"),
            run(*send, "--header", "X-Mailbox: shop", "--subject", "by header"),
            run("sendmail", "-S", server, "orders@shop.test", stdin="Subject: by recipient\n\n"),
            run("sendmail", "-S", listener, "a@example.org", stdin="Subject: by listener\n\nhi\n"),
        ]
        for proc in sent:
            assert proc.returncode == 0, proc.stderr
        subjects = {
            box["Name"]: sorted(
                m["Subject"] for m in api(mp, f"/mailbox/{box['Name']}/api/v1/messages")["messages"]
            )
            for box in api(mp, "/api/v1/mailboxes")["Mailboxes"]
        }
    assert subjects == {
        "billing": ["by listener"],
        "ci": ["by auth"],
        "default": [],
        "shop": ["by header", "by recipient"],
    }
