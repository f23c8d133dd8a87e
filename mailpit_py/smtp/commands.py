"""The SMTP commands aiosmtpd answers that we answer otherwise: EHLO and HELO (the chaos
Helo trigger, no enhanced code on their 250), MAIL's AUTH= parameter, HELP's 214 and QUIT."""

from __future__ import annotations

import re

from aiosmtpd.smtp import syntax

from mailpit_py.smtp.policy import Refusal
from mailpit_py.smtp.session_base import SessionBase

# RFC 4954 section 5: AUTH=<> (the submitter is not known) or the submitter's address as xtext
# (RFC 3461 section 4: printable ASCII but "+" and "=", and "+" with two upper-case hex digits).
_AUTH_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+")


class EnvelopeCommands(SessionBase):
    """EHLO, HELO, MAIL, HELP and QUIT: aiosmtpd's, with our checks around them."""

    # Each override carries aiosmtpd's @syntax again (a method defined here does not inherit
    # it), or HELP, which lists only methods with one, left the command out.
    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if hostname and await self._chaos_refused("Helo"):
            return
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if hostname and await self._chaos_refused("Helo"):
            return
        self._in_ehlo = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._in_ehlo = False

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        # aiosmtpd knows no AUTH parameter (555). Ours checks it and hands the rest on; the
        # submitter it names is not trusted (RFC 4954 section 5 allows ignoring it), so it
        # changes nothing about the message. Only looked at when the line has one.
        if arg and "AUTH=" in arg.upper():
            assert self.session is not None
            if self.session.extended_smtp and not (
                self._login_required() and not self.session.authenticated
            ):
                arg, refusal = self._take_auth_parameter(arg)
                if refusal is not None:
                    await self.refuse(refusal)
                    return
        await super().smtp_MAIL(arg)

    def _take_auth_parameter(self, arg: str) -> tuple[str, Refusal | None]:
        """MAIL's argument without its valid AUTH= parameter, or the refusal of a bad one."""
        if arg[:5].upper() != "FROM:":
            return arg, None  # aiosmtpd answers the syntax error
        rest = arg[5:].strip()
        address, params = self._parse_path(rest)
        if address is None or not params or not rest.endswith(params):
            return arg, None
        tokens = params.split()
        auth = [t for t in tokens if t.upper().startswith("AUTH=")]
        if not auth:
            return arg, None
        value = auth[0][5:]
        if len(auth) > 1 or (value != "<>" and not _AUTH_XTEXT.fullmatch(value)):
            return arg, Refusal(
                "501 5.5.4 Error: malformed AUTH parameter: use AUTH=<> or AUTH=address "
                "(xtext, RFC 4954 section 5), once",
                "syntax",
                f"MAIL with {' '.join(auth)!r}",
            )
        others = [t for t in tokens if not t.upper().startswith("AUTH=")]
        return "FROM:" + rest[: len(rest) - len(params)].rstrip() + "".join(
            " " + t for t in others
        ), None

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:
        # RFC 5321 section 4.2.1 and 4.3.2: HELP is answered with 214, not aiosmtpd's 250.
        self._in_help = True
        try:
            await super().smtp_HELP(arg)
        finally:
            self._in_help = False

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: str) -> None:
        self._quit = True
        await super().smtp_QUIT(arg)
