"""`mailpit-py send`: a test-mail tool in the spirit of swaks; prints the SMTP conversation.

TLS and AUTH (`--tls`, `--starttls`, `--auth`) are not here yet: the server does not offer them.
"""

from __future__ import annotations

import argparse
import getpass
import mimetypes
import os
import smtplib
import socket
import sys
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from mailpit_py.commands._common import (
    DEFAULT_SMTP_ADDR,
    EX_NOINPUT,
    EX_OK,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    CommandError,
    error,
    refused_hint,
    smtp_target,
)

PROG = "mailpit-py send"
ENV_ADDR = "MP_SENDMAIL_SMTP_ADDR"

EXAMPLES = f"""\
The conversation is printed as it happens: "->" what was sent, "<-" what the server said
(message content is summarized, not printed).

exit status: 0 accepted; 64 bad usage; 66 an --attach file is missing; 69 refused for good
(5xx); 75 connection refused or a temporary refusal (4xx).

examples:
  {PROG} --to you@example.com
  {PROG} --to a@example.com --to b@example.com --subject Report --body "see attached" \\
      --attach report.pdf --header "X-Campaign: spring"
  {PROG} --to you@example.com --html "<p>Hello <b>there</b></p>" --server 127.0.0.1:2525
  echo "body from stdin" | {PROG} --to you@example.com --body -
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Send a test message and show the SMTP conversation.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--to", action="append", required=True, metavar="ADDR", help="recipient (repeatable)"
    )
    parser.add_argument("--from", dest="sender", metavar="ADDR", help="sender (default: USER@HOST)")
    parser.add_argument("--subject", help="subject (default: 'test' and the date)")
    parser.add_argument("--body", metavar="TEXT", help="plain text body; - reads stdin")
    parser.add_argument("--html", metavar="HTML", help="HTML body (with --body: an alternative)")
    parser.add_argument(
        "--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)"
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a header (repeatable)",
    )
    parser.add_argument(
        "--server",
        metavar="ADDR",
        help=f"SMTP server, HOST:PORT (default: ${ENV_ADDR}, else {DEFAULT_SMTP_ADDR})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print the conversation")
    return parser


def build_message(args: argparse.Namespace, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(args.to)
    msg["Subject"] = args.subject if args.subject is not None else f"test {formatdate()}"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise CommandError(f"--header {header!r}: use 'Name: value'", EX_USAGE)
        msg[name.strip()] = value.strip()
    body = args.body
    if body == "-":
        body = sys.stdin.read()
    if body is None and args.html is None:
        body = "This is a test message sent by mailpit-py send.\n"
    if body is not None:
        msg.set_content(body)
        if args.html is not None:
            msg.add_alternative(args.html, subtype="html")
    else:
        msg.set_content(args.html, subtype="html")
    for name in args.attach:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"--attach {name}: {exc.strerror or exc}", EX_NOINPUT) from None
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    return msg


class TalkingSMTP(smtplib.SMTP):
    """smtplib that prints each command and reply, swaks-style."""

    def __init__(self, *args: Any, out: Any = None, **kwargs: Any) -> None:
        self.out = out
        super().__init__(*args, **kwargs)

    def send(self, s: Any) -> None:
        if self.out is not None:
            data = s if isinstance(s, bytes) else str(s).encode()
            lines = data.split(b"\r\n")
            if len(lines) > 3:  # the message itself
                print(f" -> ({len(data)} bytes of message content)", file=self.out)
            else:
                for line in lines:
                    if line:
                        print(f" -> {line.decode(errors='replace')}", file=self.out)
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        code, msg = super().getreply()
        if self.out is not None:
            lines = msg.decode(errors="replace").split("\n") or [""]
            for i, line in enumerate(lines):
                sep = " " if i == len(lines) - 1 else "-"
                print(f"<-  {code}{sep}{line}", file=self.out)
        return code, msg


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    out = None if args.quiet else sys.stdout
    try:
        addr_text = args.server or os.environ.get(ENV_ADDR) or DEFAULT_SMTP_ADDR
        address = smtp_target(addr_text, "--server")
        sender = args.sender or f"{getpass.getuser()}@{socket.gethostname()}"
        msg = build_message(args, sender)
        if out is not None:
            print(f"=== Trying {addr_text}...", file=out)
        try:
            client = TalkingSMTP(address[0], address[1], timeout=60, out=out)
        except (OSError, smtplib.SMTPException) as exc:
            raise CommandError(
                refused_hint("the SMTP server", addr_text, exc, f"--server or ${ENV_ADDR}"),
                EX_TEMPFAIL,
            ) from None
        try:
            refused = client.send_message(msg, sender, args.to)
            client.quit()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            raise CommandError(
                "every recipient was refused",
                EX_TEMPFAIL if any(400 <= c < 500 for c in codes) else EX_UNAVAILABLE,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise CommandError(
                f"{addr_text} refused the message: {exc.smtp_code} "
                f"{exc.smtp_error.decode(errors='replace')}",
                EX_TEMPFAIL if 400 <= exc.smtp_code < 500 else EX_UNAVAILABLE,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise CommandError(f"sending to {addr_text} failed: {exc}", EX_TEMPFAIL) from None
        finally:
            client.close()
        if refused:
            raise CommandError(
                "some recipients were refused: " + ", ".join(refused), EX_UNAVAILABLE
            )
    except CommandError as exc:
        error(PROG, str(exc))
        return exc.code
    if out is not None:
        print("=== Message accepted", file=out)
    return EX_OK
