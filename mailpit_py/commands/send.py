"""`mailpit-py send`: a test-mail tool in the spirit of swaks; prints the SMTP conversation."""

from __future__ import annotations

import argparse
import email.policy
import getpass
import mimetypes
import os
import smtplib
import socket
import ssl
import sys
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from mailpit_py.commands._common import (
    DEFAULT_SMTP_ADDR,
    EX_NOINPUT,
    EX_NOPERM,
    EX_OK,
    EX_UNAVAILABLE,
    EX_USAGE,
    CommandError,
    error,
    smtp_target,
)
from mailpit_py.commands._smtp import reply_exit_code, reply_text, send_failure, smtp_connect
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.values import parse_semicolon_list
from mailpit_py.dkimsign.signer import Signer, from_domain

PROG = "mailpit-py send"
ENV_ADDR = "MP_SENDMAIL_SMTP_ADDR"
ENV_DKIM = "MP_DKIM_SIGN"  # the server's variable: one setting signs what both send

EXAMPLES = f"""\
The conversation is printed as it happens: "->" what was sent, "<-" what the server said
(message content is summarized, not printed).

TLS certificates are not verified unless --tls-verify is given (a catcher's certificate is
usually self-signed). AUTH secrets are masked in the printed conversation.

mailboxes: the server's routes choose the mailbox the message lands in: log in as a username
an auth: route names (or any, with --mailbox-auto), send to an address a rcpt: route matches,
send to a listener routed to a mailbox with --server, or, with --mailbox-header, name an
existing mailbox in that header (see docs/mailboxes.md).

exit status: 0 accepted; 64 bad usage; 66 an --attach file is missing; 69 refused for good
(5xx) or TLS/AUTH not offered; 75 connection refused or a temporary refusal (4xx); 77
authentication failed.

examples:
  {PROG} --to you@example.com
  {PROG} --to a@example.com --to b@example.com --subject Report --body "see attached" \\
      --attach report.pdf --header "X-Campaign: spring"
  {PROG} --to you@example.com --html "<p>Hello <b>there</b></p>" --server 127.0.0.1:2525
  echo "body from stdin" | {PROG} --to you@example.com --body -
  {PROG} --to you@example.com --starttls --auth user:secret
  {PROG} --to you@example.com --tls --server 127.0.0.1:1465 --auth user:secret --auth-type LOGIN
  {PROG} --from app@example.com --to you@example.org --dkim-sign example.com:mail:dkim.pem
  {PROG} --to you@example.com --auth shop-ci:secret       # routed by its AUTH username
  {PROG} --to you@example.com --header "X-Mailbox: shop"  # with --mailbox-header X-Mailbox
"""

AUTH_TYPES = ("PLAIN", "LOGIN", "CRAM-MD5")


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
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--starttls", action="store_true", help="upgrade to TLS with STARTTLS")
    tls.add_argument("--tls", action="store_true", help="implicit TLS from the start (SMTPS)")
    parser.add_argument(
        "--tls-verify",
        action="store_true",
        help="verify the server certificate and host name (default: accept any)",
    )
    parser.add_argument("--auth", metavar="USER:PASS", help="authenticate with AUTH")
    parser.add_argument(
        "--auth-type",
        type=str.upper,
        choices=AUTH_TYPES,
        metavar="MECH",
        help="AUTH mechanism: PLAIN, LOGIN or CRAM-MD5 (default: the best one offered)",
    )
    parser.add_argument(
        "--dkim-sign",
        action="append",
        default=[],
        metavar="DOMAIN:SELECTOR:KEYFILE",
        help=f"DKIM-sign the message when its From domain matches DOMAIN (or * or "
        f"*.example.com), with the PEM key (RSA or Ed25519); repeatable (default: ${ENV_DKIM}, "
        f";-separated). `mailpit-py dkim-record KEYFILE` prints the DNS record",
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


class Talking:
    """Mixin for smtplib clients: prints each command and reply, swaks-style, secrets masked."""

    out: Any = None
    _masking = False  # inside an AUTH exchange: what we send is a secret

    def send(self, s: Any) -> None:
        if self.out is not None:
            data = s if isinstance(s, bytes) else str(s).encode()
            lines = data.split(b"\r\n")
            if len(lines) > 3:  # the message itself
                print(f" -> ({len(data)} bytes of message content)", file=self.out)
            else:
                for line in lines:
                    if line:
                        print(f" -> {self._shown(line)}", file=self.out)
        super().send(s)  # type: ignore[misc]

    def _shown(self, line: bytes) -> str:
        text = line.decode(errors="replace")
        if text.upper().startswith("AUTH "):
            self._masking = True
            words = text.split(" ")
            return " ".join(words[:2] + ["****"] * (len(words) > 2))
        return "****" if self._masking else text

    def getreply(self) -> tuple[int, bytes]:
        code, msg = super().getreply()  # type: ignore[misc]
        if code != 334:  # 334 asks for more of the AUTH exchange
            self._masking = False
        if self.out is not None:
            lines = msg.decode(errors="replace").split("\n") or [""]
            for i, line in enumerate(lines):
                sep = " " if i == len(lines) - 1 else "-"
                print(f"<-  {code}{sep}{line}", file=self.out)
        return code, msg


class TalkingSMTP(Talking, smtplib.SMTP):
    def __init__(self, *args: Any, out: Any = None, **kwargs: Any) -> None:
        self.out = out
        super().__init__(*args, **kwargs)


class TalkingSMTPS(Talking, smtplib.SMTP_SSL):
    def __init__(self, *args: Any, out: Any = None, **kwargs: Any) -> None:
        self.out = out
        super().__init__(*args, **kwargs)


def tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def split_auth(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise CommandError(f"--auth {value!r}: use USER:PASS", EX_USAGE)
    return user, password


def connect(args: argparse.Namespace, address: tuple[str, int], addr_text: str, out: Any) -> Any:
    """Open the session (TLS from the start with --tls), then STARTTLS and AUTH when asked."""
    context = tls_context(args.tls_verify)
    client: Any = smtp_connect(
        lambda: (
            TalkingSMTPS(address[0], address[1], timeout=60, out=out, context=context)
            if args.tls
            else TalkingSMTP(address[0], address[1], timeout=60, out=out)
        ),
        addr_text,
        f"--server or ${ENV_ADDR}",
        tls_hint="does the server speak implicit TLS on that port? Without --tls, try --starttls",
    )
    try:
        if args.tls and out is not None:
            print(f"=== TLS started ({describe_tls(client.sock)})", file=out)
        if args.starttls:
            client.ehlo()
            if not client.has_extn("starttls"):
                raise CommandError(
                    f"{addr_text} does not offer STARTTLS (start it with --smtp-tls-cert)",
                    EX_UNAVAILABLE,
                )
            client.starttls(context=context)
            if out is not None:
                print(f"=== TLS started ({describe_tls(client.sock)})", file=out)
            client.ehlo()
        if args.auth is not None:
            authenticate(client, args, addr_text)
    except CommandError:
        client.close()
        raise
    except (OSError, smtplib.SMTPException) as exc:
        client.close()
        raise CommandError(f"STARTTLS with {addr_text} failed: {exc}", EX_UNAVAILABLE) from None
    return client


def describe_tls(sock: Any) -> str:
    cipher = sock.cipher() if hasattr(sock, "cipher") else None
    return f"{sock.version()}, {cipher[0]}" if cipher else "TLS"


def authenticate(client: Any, args: argparse.Namespace, addr_text: str) -> None:
    user, password = split_auth(args.auth)
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("auth"):
        raise CommandError(
            f"{addr_text} does not offer AUTH here"
            + ("" if (args.tls or args.starttls) else " (it may need --starttls or --tls first)"),
            EX_UNAVAILABLE,
        )
    try:
        if args.auth_type:
            client.user, client.password = user, password
            method = {
                "PLAIN": client.auth_plain,
                "LOGIN": client.auth_login,
                "CRAM-MD5": client.auth_cram_md5,
            }[args.auth_type]
            code, reply = client.auth(args.auth_type, method, initial_response_ok=True)
        else:
            code, reply = client.login(user, password)
    except smtplib.SMTPAuthenticationError as exc:
        raise CommandError(
            f"{addr_text} refused the credentials for {user!r}: {exc.smtp_code} {reply_text(exc)}",
            EX_NOPERM,
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise CommandError(
            f"{addr_text} refused AUTH: {exc.smtp_code} {reply_text(exc)}",
            reply_exit_code([exc.smtp_code]),
        ) from None
    except smtplib.SMTPException as exc:
        raise CommandError(f"AUTH with {addr_text} failed: {exc}", EX_UNAVAILABLE) from None


def dkim_signer(args: argparse.Namespace) -> Signer:
    """--dkim-sign's rules (else $MP_DKIM_SIGN's) with their keys; a bad one is EX_USAGE."""
    values = args.dkim_sign or parse_semicolon_list(os.environ.get(ENV_DKIM, ""), ENV_DKIM)
    flag = "--dkim-sign" if args.dkim_sign else ENV_DKIM
    try:
        return Signer.from_values(values, flag)
    except ConfigError as exc:
        raise CommandError(str(exc), EX_USAGE) from None


def dkim_note(signer: Signer, data: bytes) -> str:
    """What signing did, for the printed conversation: a From domain no rule covers is sent
    unsigned, which a developer should see rather than find out from the receiver."""
    domain = from_domain(data)
    rule = signer.rule_for(domain) if domain else None
    if rule is None:
        return f"not DKIM-signed: no --dkim-sign rule covers the From domain {domain or '(none)'}"
    if not data.startswith(b"DKIM-Signature:"):
        return f"not DKIM-signed: the message could not be signed for {domain}"
    return f"DKIM-signed: d={domain} s={rule.selector} ({rule.key.algorithm.decode()})"


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
        if args.auth is not None:
            split_auth(args.auth)  # a usage error before any connection
        signer = dkim_signer(args)  # a bad key is a usage error before any connection
        client = connect(args, address, addr_text, out)
        try:
            if signer:
                # Signed as it will be sent: the bytes smtplib's send_message would write.
                utf8 = not (sender + "".join(args.to)).isascii()
                data = signer.sign(
                    msg.as_bytes(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
                )
                if out is not None:
                    print(f"=== {dkim_note(signer, data)}", file=out)
                options = ["SMTPUTF8"] if utf8 else []
                refused = client.sendmail(sender, args.to, data, mail_options=options)
            else:
                refused = client.send_message(msg, sender, args.to)
            client.quit()
        except (OSError, smtplib.SMTPException) as exc:
            raise send_failure(exc, addr_text, lambda _: "every recipient was refused") from None
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
