"""The AUTH command in a session: which mechanisms and when (TLS, chaos), PLAIN, LOGIN and
CRAM-MD5 checked off the event loop, the credentials never recorded, too many failures."""

from __future__ import annotations

from base64 import b64decode
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, syntax

from mailpit_py.smtp.auth import (
    MAX_FAILURES,
    PLAIN_TEXT_MECHANISMS,
    cram_md5_challenge,
    split_cram_md5,
    split_plain,
)
from mailpit_py.smtp.policy import Refusal
from mailpit_py.smtp.session_base import SessionBase

if TYPE_CHECKING:
    from mailpit_py.smtp.protocol import AuthResult


class AuthCommand(SessionBase):
    """AUTH: aiosmtpd's command, with our mechanisms and checks around it."""

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        self._in_auth = True
        self._context_rule = "auth"
        try:
            await self._auth(arg)
        finally:
            self._in_auth = False
            self._context_rule = ""

    async def _auth(self, arg: str) -> None:
        auth = self._server.auth
        assert self.session is not None
        if not auth.enabled:
            await self.push("502 5.5.1 Error: authentication is not enabled on this server")
            return
        if await self.check_helo_needed("EHLO"):
            return
        args = (arg or "").split()
        if args:
            args[0] = args[0].upper()  # mechanism names are case-insensitive (RFC 4954)
        mech = args[0] if args else ""
        ready = self.session.extended_smtp and not self.session.authenticated
        if ready and mech and mech not in auth.mechanisms:
            # Not offered (--smtp-auth-mechanisms, or CRAM-MD5 with hashed passwords only):
            # refused as unknown, as RFC 4954 section 4 says, and no failed login.
            await self.push("504 5.5.4 Unrecognized authentication type")
            return
        if ready and self._offers(mech):
            if mech in PLAIN_TEXT_MECHANISMS and not self._encrypted() and not auth.allow_insecure:
                await self.refuse(
                    Refusal(
                        "538 5.7.11 Encryption required for requested authentication mechanism",
                        "auth-encryption",
                        f"{mech} over a plain connection: STARTTLS first "
                        "(or start with --smtp-auth-allow-insecure)",
                    )
                )
                return
            if await self._chaos_refused("Authentication"):
                return
        self._last_code = ""
        await super().smtp_AUTH(" ".join(args))
        if self._last_code == "535":
            self._auth_failures += 1
            if self._auth_failures >= MAX_FAILURES:
                await self.refuse(
                    Refusal(
                        "421 4.7.0 Error: too many failed authentication attempts, closing",
                        "auth-failures",
                        f"{self._auth_failures} failed AUTH attempts in this session",
                    )
                )

    # AUTH mechanisms (aiosmtpd finds auth_* methods; auth_CRAM__MD5 is "CRAM-MD5"). Ours check
    # passwords off the event loop and leave the password out of the session.

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        blob = await self._initial_or_challenge(args, b"")
        pair = split_plain(blob) if blob is not None else None
        if blob is not None and pair is None:
            await self.push("501 5.5.2 Error: cannot split the PLAIN credentials")
        if pair is None:
            return self._auth_outcome(None)
        return await self._login("PLAIN", *pair)

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        user = await self._initial_or_challenge(args, b"Username:")
        password = await self._challenge(b"Password:") if user is not None else None
        if user is None or password is None:
            return self._auth_outcome(None)
        return await self._login(
            "LOGIN", user.decode("utf-8", "replace"), password.decode("utf-8", "replace")
        )

    async def auth_CRAM__MD5(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) > 1:
            await self.push("501 5.5.4 Error: CRAM-MD5 takes no initial response")
            return self._auth_outcome(None)
        challenge = cram_md5_challenge(self.hostname)
        blob = await self._challenge(challenge)
        if blob is None:
            return self._auth_outcome(None)
        pair = split_cram_md5(blob)
        if pair is not None and self._server.auth.hashed(pair[0]):
            # The stored hash cannot check an HMAC, so whether the digest is right is unknown:
            # RFC 4954's 534 ("mechanism too weak" for that user) says to try another, and it
            # is not counted as a wrong password (smtplib then goes on to PLAIN).
            await self.refuse(
                Refusal(
                    "534 5.7.9 Error: CRAM-MD5 cannot be checked for this user (the password "
                    "is stored as a hash): use PLAIN or LOGIN",
                    "auth-mechanism",
                    f"CRAM-MD5 for {pair[0]!r}, whose password is a hash",
                )
            )
            return self._auth_outcome(None)
        ok = pair is not None and self._server.auth.check_cram_md5(pair[0], challenge, pair[1])
        return self._auth_result("CRAM-MD5", pair[0] if pair else "", ok)

    async def _challenge(self, challenge: bytes) -> bytes | None:
        try:
            blob = await self.challenge_auth(challenge)
        except ValueError:
            # The response line is longer than the reader's limit (asyncio drops it). Let out,
            # it ended the exchange as a server error and a 451.
            await self.push("500 5.5.6 Error: authentication exchange line is too long")
            return None
        return None if blob is MISSING else blob

    async def _initial_or_challenge(self, args: list[str], challenge: bytes) -> bytes | None:
        if len(args) == 1:
            return await self._challenge(challenge)
        if args[1] == "=":
            return b""  # an initial response of zero length (RFC 4954 section 4)
        try:
            return b64decode(args[1].encode(), validate=True)
        except ValueError:
            await self.push("501 5.5.2 Error: cannot decode base64")
            return None

    async def _login(self, mech: str, user: str, password: str) -> AuthResult:
        return self._auth_result(mech, user, await self._server.auth.check(user, password))

    def _auth_result(self, mech: str, user: str, ok: bool) -> AuthResult:
        if ok:
            self.transcript.add("I", f"authenticated as {user!r} with {mech}")
            return self._auth_outcome(user)
        self._rule = ("auth-failed", f"{mech} credentials for {user!r} rejected")
        return self._auth_outcome(None, handled=False)  # aiosmtpd answers 535 5.7.8
