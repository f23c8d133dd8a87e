"""`mailpit-py sendmail`: a drop-in sendmail that hands the message to mailpit-py over SMTP.

Apps that pipe mail to sendmail (PHP's sendmail_path, cron, git send-email) keep working
unchanged. Exit codes are sendmail's, from sysexits.h.
"""

from __future__ import annotations

import email.parser
import email.policy
import getpass
import os
import re
import smtplib
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from mailpit_py.commands._common import (
    DEFAULT_SMTP_ADDR,
    EX_DATAERR,
    EX_OK,
    EX_TEMPFAIL,
    EX_USAGE,
    CommandError,
    error,
    header_addresses,
    refused_hint,
    smtp_target,
)
from mailpit_py.commands._smtp import reply_exit_code, send_failure, smtp_connect

PROG = "mailpit-py sendmail"
ENV_ADDR = "MP_SENDMAIL_SMTP_ADDR"
ENV_FROM = "MP_SENDMAIL_FROM"  # Mailpit's default envelope sender

HELP = f"""\
usage: {PROG} [options] [RECIPIENT ...] < message

Read a message on standard input and send it to mailpit-py over SMTP, like sendmail.
Also works when installed or linked under the name `sendmail`.

options:
  -t                 take recipients from the To, Cc and Bcc headers (plus any given);
                     with no recipient given they are taken from there anyway, as
                     Mailpit's sendmail does
  -f ADDR, -r ADDR, --from ADDR
                     envelope sender (default: ${ENV_FROM}, else the From header,
                     else USER@HOST); -f '' or -f '<>' sends with the null sender
  -i, -oi            a line with a single dot does not end the message (read to end of input)
  -bs                speak SMTP on standard input and output (proxied to the server)
  -bm                read a message on standard input (the default)
  -S, --smtp-addr ADDR
                     server to send to, HOST:PORT (default: ${ENV_ADDR},
                     else {DEFAULT_SMTP_ADDR})
  -h, --help         show this help and exit
  Other sendmail options (-o..., -v, -F NAME, -N DSN, -B TYPE, -U, -G, -em, ...) are accepted
  and ignored.

Line endings are sent as CRLF; a leading mbox "From " line is dropped; the message is
otherwise sent as it is (a Bcc header stays, so mailpit-py shows it).

Mailboxes: the server's routes choose the mailbox: by recipient (a rcpt: route), by listener
(-S to a --smtp-listener routed with mailbox=NAME), or, with the server's --mailbox-header,
by that header in the message (X-Mailbox: shop); sendmail does not log in, so auth: routes and
--mailbox-auto do not apply (mailpit-py send --auth does).

exit status (sysexits.h):
  0   sent            64 EX_USAGE: bad option, or no recipient given nor in the headers
  65  EX_DATAERR: the message could not be read
  69  EX_UNAVAILABLE: the server refused the message for good (5xx)
  75  EX_TEMPFAIL: connection refused or timed out, or a temporary refusal (4xx)

examples:
  printf 'Subject: hi\\n\\nhello\\n' | {PROG} you@example.com
  {PROG} -t -f app@example.com < message.eml
  {PROG} --smtp-addr 127.0.0.1:2525 -t < message.eml
  php.ini:  sendmail_path = "mailpit-py sendmail -t -i"
  ln -s "$(command -v mailpit-py)" /usr/local/bin/sendmail   # then: sendmail -t < msg
"""

# Options that take a value (as the next argument or attached: -FName).
_WITH_VALUE = set("FNBRVLOCXhq")  # -h N is sendmail's hop count; --help/-h alone shows help


@dataclass
class Options:
    from_headers: bool = False  # -t
    sender: str | None = None  # -f / -r
    ignore_dots: bool = False  # -i / -oi
    smtp_mode: bool = False  # -bs
    smtp_addr: str | None = None
    help: bool = False
    recipients: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str]) -> Options:
    """sendmail's own syntax: clustered and attached values (-oi, -fme@x), which argparse
    cannot express."""
    opts = Options()
    args = list(argv)
    i = 0

    def value(attached: str, flag: str) -> str:
        nonlocal i
        if attached:
            return attached
        if i >= len(args):
            raise CommandError(f"{flag} needs a value", EX_USAGE)
        i += 1
        return args[i - 1]

    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            opts.recipients.extend(args[i:])
            break
        if arg in ("-h", "--help") and (arg == "--help" or i >= len(args) or not args[i].isdigit()):
            opts.help = True
            continue
        if arg.startswith("--smtp-addr"):
            opts.smtp_addr = arg.partition("=")[2] if "=" in arg else value("", "--smtp-addr")
            continue
        if arg == "--from" or arg.startswith("--from="):  # Mailpit's long name of -f
            opts.sender = arg.partition("=")[2] if "=" in arg else value("", "--from")
            continue
        if arg == "--verbose":  # Mailpit's long name of -v, ignored as there
            continue
        if arg.startswith("--"):
            raise CommandError(f"unknown option {arg} (see {PROG} --help)", EX_USAGE)
        if not arg.startswith("-") or arg == "-":
            opts.recipients.append(arg)
            continue
        letter, rest = arg[1], arg[2:]
        if letter == "t" and not rest:
            opts.from_headers = True
        elif letter == "i" and not rest:
            opts.ignore_dots = True
        elif letter in ("f", "r"):
            opts.sender = value(rest, f"-{letter}")
        elif letter == "S":
            opts.smtp_addr = value(rest, "-S")
        elif letter == "o":
            if rest == "i":
                opts.ignore_dots = True
            elif rest in ("", "A", "B", "F", "L", "M", "O", "V") or rest.startswith("M"):
                pass  # e.g. -oem, -odb, -oQdir: sendmail queue settings, meaningless here
        elif letter == "b":
            if rest == "s":
                opts.smtp_mode = True
            elif rest not in ("m", ""):
                raise CommandError(f"-b{rest} is not supported: use -bm (default) or -bs", EX_USAGE)
        elif letter == "e" and not rest:
            value("", "-e")  # Mailpit's -e takes a value (-e m), ignored as -em is
        elif letter in "vmnUGe":
            pass  # verbose, me-too, no-alias, initial submission, gateway, error mode
        elif letter in _WITH_VALUE:
            value(rest, f"-{letter}")
        else:
            raise CommandError(f"unknown option {arg} (see {PROG} --help)", EX_USAGE)
    return opts


def read_message(stream: BinaryIO, ignore_dots: bool) -> bytes:
    """The message as it goes on the wire: CRLF line endings, no mbox "From " line."""
    data = stream.read()
    if not ignore_dots:
        # Traditional sendmail: a line holding a single dot ends the message.
        m = re.search(rb"(?m)^\.\r?$", data)
        if m:
            data = data[: m.start()]
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return re.sub(rb"\r?\n", b"\r\n", data)


def envelope(opts: Options, raw: bytes) -> tuple[str, list[str]]:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    rcpts: list[str] = []
    for arg in opts.recipients:
        for part in arg.split(","):
            if part.strip() and part.strip() not in rcpts:
                rcpts.append(part.strip())
    # Without -t, the headers' recipients stand in only when none is given, as Mailpit's
    # sendmail takes them (PHP's sendmail_path = "mailpit sendmail" gives none).
    if opts.from_headers or not rcpts:
        rcpts.extend(a for a in header_addresses(headers, ("To", "Cc", "Bcc")) if a not in rcpts)
    if not rcpts:
        raise CommandError(
            "no recipients: give them as arguments, or in the To, Cc or Bcc header", EX_USAGE
        )
    if opts.sender is None and os.environ.get(ENV_FROM, "").strip():
        opts.sender = os.environ[ENV_FROM]
    if opts.sender is not None:
        sender = "" if opts.sender.strip() in ("", "<>") else opts.sender.strip().strip("<>")
    else:
        found = header_addresses(headers, ("From",))
        sender = found[0] if found else f"{_user()}@{socket.gethostname()}"
    return sender, rcpts


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "nobody"


def send(
    address: tuple[str, int], addr_text: str, sender: str, rcpts: list[str], raw: bytes
) -> None:
    client = smtp_connect(
        lambda: smtplib.SMTP(address[0], address[1], timeout=60),
        addr_text,
        f"--smtp-addr or ${ENV_ADDR}",
    )
    try:
        client.ehlo_or_helo_if_needed()
        options: list[str] = []
        if not all(s.isascii() for s in [sender, *rcpts]) and client.has_extn("smtputf8"):
            options.append("SMTPUTF8")
        refused = client.sendmail(sender, rcpts, raw, mail_options=options)
    except (OSError, smtplib.SMTPException) as exc:
        raise send_failure(exc, addr_text, lambda r: _refusals(r) + "; nothing was sent") from None
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    if refused:
        raise CommandError(
            _refusals(refused) + "; the others were sent",
            reply_exit_code(c for c, _ in refused.values()),
        )


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "recipients refused: " + ", ".join(
        f"<{r}> ({c} {m.decode(errors='replace')})" for r, (c, m) in refused.items()
    )


def proxy_smtp(address: tuple[str, int], addr_text: str, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """-bs: relay bytes between stdin/stdout and the server until the server hangs up."""
    try:
        sock = socket.create_connection(address, timeout=60)
    except OSError as exc:
        msg = refused_hint("the SMTP server", addr_text, exc, f"--smtp-addr or ${ENV_ADDR}")
        # Say it in SMTP too, so the client on stdin sees a reply and not just EOF.
        stdout.write(f"421 4.3.0 {msg}\r\n".encode())
        stdout.flush()
        raise CommandError(msg, EX_TEMPFAIL) from None
    sock.settimeout(None)

    def upstream() -> None:
        # Client lines may end in a bare LF (a human at a terminal); SMTP wants CRLF. At the
        # end of input the socket is not half-closed: a server may drop a session whose peer
        # closed while a message is still being stored. Finish politely with QUIT instead.
        in_data = quit_sent = False
        try:
            for line in iter(stdin.readline, b""):
                if line.endswith(b"\n") and not line.endswith(b"\r\n"):
                    line = line[:-1] + b"\r\n"
                word = line.strip().upper()
                if in_data:
                    in_data = word != b"."
                elif word == b"DATA":
                    in_data = True
                elif word == b"QUIT":
                    quit_sent = True
                sock.sendall(line)
            if in_data:
                sock.shutdown(socket.SHUT_RDWR)  # the message was cut short: abandon it
            elif not quit_sent:
                sock.sendall(b"QUIT\r\n")
        except OSError:
            pass

    threading.Thread(target=upstream, name="sendmail-bs", daemon=True).start()
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            stdout.write(chunk)
            stdout.flush()
    except OSError:
        pass
    finally:
        sock.close()
    return EX_OK


def main(argv: Sequence[str]) -> int:
    try:
        opts = parse_args(argv)
        if opts.help:
            sys.stdout.write(HELP)
            return EX_OK
        addr_text = opts.smtp_addr or os.environ.get(ENV_ADDR) or DEFAULT_SMTP_ADDR
        flag = (
            "--smtp-addr"
            if opts.smtp_addr
            else ENV_ADDR
            if os.environ.get(ENV_ADDR)
            else "--smtp-addr"
        )
        address = smtp_target(addr_text, flag)
        if opts.smtp_mode:
            return proxy_smtp(address, addr_text, sys.stdin.buffer, sys.stdout.buffer)
        try:
            raw = read_message(sys.stdin.buffer, opts.ignore_dots)
        except OSError as exc:
            raise CommandError(
                f"cannot read the message on standard input: {exc}", EX_DATAERR
            ) from None
        sender, rcpts = envelope(opts, raw)
        send(address, addr_text, sender, rcpts, raw)
        return EX_OK
    except CommandError as exc:
        error(PROG, str(exc))
        return exc.code
