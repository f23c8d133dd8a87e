"""The SMTP commands aiosmtpd answers that we answer otherwise: EHLO and HELO (the chaos
Helo trigger, no enhanced code on their 250), MAIL's AUTH= and the DSN parameters of MAIL and
RCPT, HELP's 214 and QUIT (whatever follows it)."""

from __future__ import annotations

import re

from aiosmtpd.smtp import syntax

from mailpit_py.smtp.policy import Refusal
from mailpit_py.smtp.session_base import SessionBase

# RFC 4954 section 5: AUTH=<> (the submitter is not known) or the submitter's address as xtext
# (RFC 3461 section 4: printable ASCII but "+" and "=", and "+" with two upper-case hex digits).
_XTEXT = r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+"
_AUTH_HINT = "use AUTH=<> or AUTH=address (xtext, RFC 4954 section 5), once"
# RFC 3461 (DSN): checked, then ignored. A catcher sends no delivery notifications, so DSN is
# not advertised; but PHPMailer sends NOTIFY= whether or not it is, and Mailpit takes any
# parameter, so a 555 would fail mail that Mailpit takes. Name -> (value, what a good one is).
_MAIL_PARAMETERS = {
    "RET": (re.compile(r"FULL|HDRS", re.I), "RET=FULL or RET=HDRS (RFC 3461 section 4.3), once"),
    "ENVID": (re.compile(rf"{_XTEXT}"), "ENVID=xtext of at most 100 characters, once"),
}
_RCPT_PARAMETERS = {
    "NOTIFY": (
        re.compile(r"NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY))*", re.I),
        "NOTIFY=NEVER or a list of SUCCESS, FAILURE and DELAY (RFC 3461 section 4.1), once",
    ),
    # addr-type ";" xtext, or RFC 6533's UTF-8 forms: no white space or control characters.
    "ORCPT": (
        re.compile(r"[A-Za-z0-9-]+;[^\x00-\x20\x7f]+"),
        "ORCPT=addr-type;address (RFC 3461 section 4.2), once",
    ),
}
_LONGEST = {"ENVID": 100, "ORCPT": 500}  # RFC 3461 sections 4.4 and 4.2


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
        # aiosmtpd knows neither AUTH= nor the DSN parameters (555). Ours are checked and taken
        # out, the rest handed on; what they say changes nothing about the message (RFC 4954
        # section 5 allows ignoring the submitter). Only looked at when the line has a "=".
        if arg and "=" in arg and self._takes_parameters():
            known = dict(_MAIL_PARAMETERS)
            known["AUTH"] = (re.compile(rf"<>|{_XTEXT}"), _AUTH_HINT)
            arg, refusal = self._take_parameters("MAIL", "FROM:", arg, known)
            if refusal is not None:
                await self.refuse(refusal)
                return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg and "=" in arg and self._takes_parameters():
            arg, refusal = self._take_parameters("RCPT", "TO:", arg, _RCPT_PARAMETERS)
            if refusal is not None:
                await self.refuse(refusal)
                return
        await super().smtp_RCPT(arg)

    def _takes_parameters(self) -> bool:
        """Parameters are read after EHLO only (RFC 5321 section 4.1.1.2), and not before a
        required AUTH: then the command's answer is the 530."""
        assert self.session is not None
        return bool(self.session.extended_smtp) and not (
            self._login_required() and not self.session.authenticated
        )

    def _take_parameters(
        self, command: str, keyword: str, arg: str, known: dict[str, tuple[re.Pattern[str], str]]
    ) -> tuple[str, Refusal | None]:
        """The argument without its parameters named in `known` (name -> (the pattern of its
        value, what a good one is)), each checked; or the refusal of a bad or repeated one."""
        if arg[: len(keyword)].upper() != keyword:
            return arg, None  # aiosmtpd answers the syntax error
        rest = arg[len(keyword) :].strip()
        address, params = self._parse_path(rest)
        if address is None or not params or not rest.endswith(params):
            return arg, None
        tokens = params.split()
        taken: set[str] = set()
        for token in tokens:
            name, eq, value = token.partition("=")
            name = name.upper()
            if name not in known:
                continue
            pattern, hint = known[name]
            if (
                name in taken
                or not eq
                or not pattern.fullmatch(value)
                or len(value) > _LONGEST.get(name, len(value))
            ):
                return arg, Refusal(
                    f"501 5.5.4 Error: malformed {name} parameter: {hint}",
                    "syntax",
                    f"{command} with {token!r}",
                )
            taken.add(name)
        if not taken:
            return arg, None
        others = [t for t in tokens if t.partition("=")[0].upper() not in taken]
        return keyword + rest[: len(rest) - len(params)].rstrip() + "".join(
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
        # A client that says QUIT wants to leave, whatever follows (as Mailpit and Postfix
        # take it): aiosmtpd's 501 for an argument kept the session open.
        self._quit = True
        await super().smtp_QUIT("")
