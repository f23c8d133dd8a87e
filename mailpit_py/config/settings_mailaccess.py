"""The settings table's POP3 and IMAP rows: listen addresses, logins and TLS."""

from __future__ import annotations

from dataclasses import dataclass

from mailpit_py.config.option import setting


@dataclass(frozen=True)
class MailAccessSettings:
    """POP3 and IMAP."""

    pop3_addr: str = setting(
        "[::]:1110",
        flags=("--pop3",),
        env="MP_POP3_BIND_ADDR",
        help=(
            "POP3 listen address, HOST:PORT; POP3 runs there once it has logins (--pop3-auth, "
            "--pop3-auth-file), as in Mailpit; '' turns it off"
        ),
        metavar="ADDR",
    )
    pop3_auth_file: str = setting(
        "",
        flags=("--pop3-auth-file",),
        env="MP_POP3_AUTH_FILE",
        help=(
            "file of user:password lines (bcrypt hashes from htpasswd -B too) allowed to log in "
            "over POP3 (and IMAP, unless it has its own)"
        ),
        metavar="FILE",
    )
    pop3_auth: str = setting(
        "",
        flags=("--pop3-auth",),
        env="MP_POP3_AUTH",
        help="POP3 logins as space-separated user:password pairs",
        metavar="PAIRS",
    )
    pop3_tls_cert: str = setting(
        "",
        flags=("--pop3-tls-cert",),
        env="MP_POP3_TLS_CERT",
        help=(
            "PEM certificate: POP3 speaks TLS from the first byte (POP3S), as Mailpit's; "
            "sans:HOST,... makes a self-signed one"
        ),
        metavar="FILE",
    )
    pop3_tls_key: str = setting(
        "",
        flags=("--pop3-tls-key",),
        env="MP_POP3_TLS_KEY",
        help="PEM key",
        metavar="FILE",
    )
    pop3_tls_implicit: bool = setting(
        False,
        flags=("--pop3-tls-implicit",),
        env="MP_POP3_TLS_IMPLICIT",
        help="accepted: POP3 with a certificate speaks TLS from the first byte anyway",
    )
    pop3_starttls: bool = setting(
        False,
        flags=("--pop3-starttls",),
        env="MP_POP3_STARTTLS",
        help="with --pop3-tls-cert, POP3 starts in plain text and offers STLS instead",
    )
    imap_addr: str = setting(
        "",
        flags=("--imap",),
        env="MP_IMAP_BIND_ADDR",
        help="IMAP listen address, HOST:PORT, e.g. 127.0.0.1:1143 (default: off; needs logins)",
        metavar="ADDR",
    )
    imap_auth_file: str = setting(
        "",
        flags=("--imap-auth-file",),
        env="MP_IMAP_AUTH_FILE",
        help="file of user:password lines allowed to log in over IMAP (default: the POP3 logins)",
        metavar="FILE",
    )
    imap_auth: str = setting(
        "",
        flags=("--imap-auth",),
        env="MP_IMAP_AUTH",
        help="IMAP logins as space-separated user:password pairs (default: the POP3 logins)",
        metavar="PAIRS",
    )
    imap_tls_cert: str = setting(
        "",
        flags=("--imap-tls-cert",),
        env="MP_IMAP_TLS_CERT",
        help="PEM certificate for IMAP STARTTLS (or implicit TLS); sans:HOST,... self-signs one",
        metavar="FILE",
    )
    imap_tls_key: str = setting(
        "",
        flags=("--imap-tls-key",),
        env="MP_IMAP_TLS_KEY",
        help="PEM key",
        metavar="FILE",
    )
    imap_tls_implicit: bool = setting(
        False,
        flags=("--imap-tls-implicit",),
        env="MP_IMAP_TLS_IMPLICIT",
        help="IMAP speaks TLS from the first byte (IMAPS) instead of offering STARTTLS",
    )
