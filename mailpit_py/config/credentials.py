"""User:password lists for SMTP AUTH, POP3/IMAP logins and HTTP basic auth (htpasswd style)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.htpasswd import is_bcrypt, is_hashed, matches


@dataclass(frozen=True)
class Credentials:
    """Known users and their password (clear text or an htpasswd hash: bcrypt, MD5-crypt,
    SHA-crypt, {SHA}, {SSHA}, as Mailpit reads them); checks run in constant time."""

    entries: dict[str, str]

    @classmethod
    def parse(cls, text: str, source: str) -> Credentials:
        """Parse `user:password` entries, one per line or whitespace-separated (MP_* variables)."""
        entries: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            # Mailpit's variables put several pairs on one line, separated by white space (a
            # bcrypt hash has none); a line of a file whose other words are not pairs is one
            # entry whose clear-text password holds spaces.
            words = line.split()
            items = words if all(_is_pair(word) for word in words) else [line]
            for item in items:
                user, sep, password = item.partition(":")
                if not sep or not user or not password:
                    raise ConfigError(
                        f"{source}: line {number}: {item!r} is not user:password "
                        "(a hash from htpasswd is accepted as the password)"
                    )
                entries[user] = password
        if not entries:
            raise ConfigError(f"{source}: no user:password entries found")
        return cls(entries)

    @classmethod
    def load(cls, path: str, source: str) -> Credentials:
        """Read an auth file; a missing or unreadable file is a ConfigError naming it."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: {path} is not UTF-8 text") from None
        return cls.parse(text, f"{source} {path}")

    def check(self, user: str, password: str) -> bool:
        """True when the user exists and the password matches; timing does not reveal which."""
        stored = self.entries.get(user)
        if stored is None:
            # Do the same work as for a wrong password so an unknown user is not faster: a bcrypt
            # check against a known hash (always false here) when the list holds hashes.
            decoy = next((value for value in self.entries.values() if is_bcrypt(value)), None)
            if decoy is not None:
                matches(password, decoy)
            hmac.compare_digest(password.encode(), password.encode()[::-1])
            return False
        return matches(password, stored)

    def plain_password(self, user: str) -> str | None:
        """The clear-text password, for CRAM-MD5 (which cannot work with a hash), or None."""
        stored = self.entries.get(user)
        return None if stored is None or is_hashed(stored) else stored


def _is_pair(word: str) -> bool:
    user, sep, password = word.partition(":")
    return bool(user and sep and password)
