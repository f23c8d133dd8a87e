"""SMTP AUTH (RFC 4954): who may log in, and the PLAIN, LOGIN and CRAM-MD5 exchanges' pieces."""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from dataclasses import dataclass

from mailpit_py.config.credentials import Credentials
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.values import AUTH_MECHANISMS, parse_auth_mechanisms

MECHANISMS = AUTH_MECHANISMS
# These send the password itself, so they need TLS unless --smtp-auth-allow-insecure.
PLAIN_TEXT_MECHANISMS = frozenset({"LOGIN", "PLAIN"})
MAX_FAILURES = 3  # failed AUTH attempts before the session ends with 421 4.7.0


@dataclass(frozen=True)
class SmtpAuth:
    """The AUTH settings of a server: off, accept anyone, or a list of users."""

    enabled: bool = False
    accept_any: bool = False
    allow_insecure: bool = False
    credentials: Credentials | None = None
    # What is offered and accepted (--smtp-auth-mechanisms, less what cannot work).
    mechanisms: tuple[str, ...] = MECHANISMS
    # --smtp-local-domains: AUTH is what lets a client relay, so it stays optional (anyone may
    # still send to the local domains), as on a Postfix MX that also takes submissions.
    optional: bool = False

    @property
    def required(self) -> bool:
        """With a user list, MAIL needs AUTH first (530); accept-any keeps AUTH optional, and
        so does --smtp-local-domains (its relay check asks for AUTH per recipient instead)."""
        return self.credentials is not None and not self.optional

    @classmethod
    def from_config(cls, config: Config) -> SmtpAuth:
        """Load the user list; a bad file or MP_SMTP_AUTH is a ConfigError naming it."""
        creds = None
        if config.smtp_auth_file or config.smtp_auth:
            entries: dict[str, str] = {}
            if config.smtp_auth_file:
                entries |= Credentials.load(config.smtp_auth_file, "--smtp-auth-file").entries
            if config.smtp_auth:
                entries |= Credentials.parse(config.smtp_auth, "MP_SMTP_AUTH").entries
            creds = Credentials(entries)
        flag = "--smtp-auth-mechanisms"
        chosen = tuple(parse_auth_mechanisms(config.smtp_auth_mechanisms, flag).split())
        mechanisms = chosen or MECHANISMS
        if (
            creds is not None
            and not config.smtp_auth_accept_any
            and not any(creds.plain_password(user) for user in creds.entries)
        ):
            # CRAM-MD5 needs the clear-text password to compute the HMAC (RFC 2195): with only
            # hashes, not one login could succeed, and a client that tried it first (as
            # smtplib does) would burn one of its allowed failures with the right password.
            if "CRAM-MD5" in chosen:
                raise ConfigError(
                    f"{flag}: CRAM-MD5 needs clear-text passwords, and every password of "
                    "--smtp-auth-file / MP_SMTP_AUTH is a hash: leave CRAM-MD5 out, or list "
                    "a user with a clear-text password"
                )
            mechanisms = tuple(m for m in mechanisms if m != "CRAM-MD5")
        return cls(
            enabled=bool(creds or config.smtp_auth_accept_any),
            accept_any=config.smtp_auth_accept_any,
            allow_insecure=config.smtp_auth_allow_insecure,
            credentials=creds,
            mechanisms=mechanisms,
            optional=bool(config.smtp_local_domains.strip()),
        )

    def offered(self, encrypted: bool) -> list[str]:
        """Mechanisms to advertise in EHLO: the plain-text ones only where they may be used."""
        if not self.enabled:
            return []
        if encrypted or self.allow_insecure:
            return list(self.mechanisms)
        return [m for m in self.mechanisms if m not in PLAIN_TEXT_MECHANISMS]

    def hashed(self, user: str) -> bool:
        """True for a listed user whose password is a hash, which CRAM-MD5 cannot check."""
        creds = self.credentials
        return (
            not self.accept_any
            and creds is not None
            and user in creds.entries
            and creds.plain_password(user) is None
        )

    async def check(self, user: str, password: str) -> bool:
        """True when the pair may log in; bcrypt runs off the event loop (it takes ~0.1 s)."""
        if self.accept_any:
            return True
        if self.credentials is None:
            return False
        return await asyncio.get_running_loop().run_in_executor(
            None, self.credentials.check, user, password
        )

    def check_cram_md5(self, user: str, challenge: bytes, digest: str) -> bool:
        """RFC 2195: the client proves it knows the password by an HMAC-MD5 of the challenge."""
        if self.accept_any:
            return True
        password = self.credentials.plain_password(user) if self.credentials else None
        # A bcrypt entry cannot answer CRAM-MD5; compare anyway so timing says nothing.
        expected = hmac.new((password or "\0").encode(), challenge, "md5").hexdigest()
        return hmac.compare_digest(expected, digest.lower()) and password is not None


def split_plain(blob: bytes) -> tuple[str, str] | None:
    """RFC 4616 `authzid NUL authcid NUL password` -> (user, password), or None."""
    parts = blob.split(b"\0")
    if len(parts) != 3 or not parts[1]:
        return None
    return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")


def split_cram_md5(blob: bytes) -> tuple[str, str] | None:
    """`user SP hex-digest` -> (user, digest), or None."""
    user, sep, digest = blob.decode("utf-8", "replace").rpartition(" ")
    if not sep or not user or len(digest) != 32:
        return None
    return user, digest


def cram_md5_challenge(hostname: str) -> bytes:
    """A fresh `<random.timestamp@host>` challenge (RFC 2195 section 2)."""
    return f"<{int.from_bytes(os.urandom(8), 'big')}.{int(time.time())}@{hostname}>".encode()
