"""The SMTP client steps `send` and `sendmail` share: connecting and what a failure exits with."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterable
from typing import TypeVar

from mailpit_py.commands._common import EX_TEMPFAIL, EX_UNAVAILABLE, CommandError, refused_hint

Client = TypeVar("Client", bound=smtplib.SMTP)
Refused = dict[str, tuple[int, bytes]]  # recipient -> (code, reply), as smtplib reports them


def reply_exit_code(codes: Iterable[int]) -> int:
    """EX_TEMPFAIL when any reply was temporary (4xx), so a retry may work; else EX_UNAVAILABLE."""
    return EX_TEMPFAIL if any(400 <= code < 500 for code in codes) else EX_UNAVAILABLE


def smtp_connect(
    connect: Callable[[], Client], addr_text: str, where: str, tls_hint: str = ""
) -> Client:
    """The client `connect` opens to `addr_text`; a failure as a CommandError.

    A refused or failed connection is EX_TEMPFAIL, saying where to point the command (`where`:
    its flag and variable). With `tls_hint` (implicit TLS), a failed TLS handshake is
    EX_UNAVAILABLE with that hint.
    """
    try:
        return connect()
    except (OSError, smtplib.SMTPException) as exc:
        if tls_hint and isinstance(exc, ssl.SSLError):
            raise CommandError(
                f"TLS handshake with {addr_text} failed ({exc.reason or exc}): {tls_hint}",
                EX_UNAVAILABLE,
            ) from None
        raise CommandError(
            refused_hint("the SMTP server", addr_text, exc, where), EX_TEMPFAIL
        ) from None


def reply_text(exc: smtplib.SMTPResponseException) -> str:
    """The server's reply text: smtplib keeps the bytes it read, or the str it made up itself."""
    error = exc.smtp_error
    return error.decode(errors="replace") if isinstance(error, bytes) else str(error)


def send_failure(
    exc: OSError | smtplib.SMTPException, addr_text: str, all_refused: Callable[[Refused], str]
) -> CommandError:
    """The CommandError for an smtplib error while sending; `all_refused` words the case where
    every recipient was refused."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return CommandError(all_refused(exc.recipients), reply_exit_code(codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        return CommandError(
            f"{addr_text} refused the message: {exc.smtp_code} {reply_text(exc)}",
            reply_exit_code([exc.smtp_code]),
        )
    return CommandError(f"sending to {addr_text} failed: {exc}", EX_TEMPFAIL)
