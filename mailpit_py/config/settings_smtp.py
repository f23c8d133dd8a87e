"""The settings table's SMTP rows: TLS, AUTH, the access policy, receivers, listeners, chaos."""

from __future__ import annotations

from dataclasses import dataclass

from mailpit_py.config.listeners import parse_listener_list
from mailpit_py.config.option import setting
from mailpit_py.config.values import (
    parse_auth_mechanisms,
    parse_duration,
    parse_int,
    parse_semicolon_list,
)


@dataclass(frozen=True)
class SmtpSettings:
    """SMTP TLS, AUTH and access policy, receiver simulation and more SMTP listeners."""

    dkim_sign: tuple[str, ...] = setting(
        (),
        flags=("--dkim-sign",),
        env="MP_DKIM_SIGN",
        help=(
            "DKIM-sign relayed and forwarded copies and sent mail whose From domain matches "
            "DOMAIN (or * or *.example.com) with the PEM key (RSA or Ed25519); repeat the flag, "
            "or separate them with ; in the variable; `mailpit-py dkim-record KEYFILE` prints "
            "the DNS record"
        ),
        convert=parse_semicolon_list,
        metavar="DOMAIN:SELECTOR:KEYFILE",
        repeat=True,
    )
    smtp_tls_cert: str = setting(
        "",
        flags=("--smtp-tls-cert",),
        env="MP_SMTP_TLS_CERT",
        help="PEM certificate for STARTTLS, or sans:HOST1,HOST2 for a self-signed one",
        metavar="FILE",
    )
    smtp_tls_key: str = setting(
        "",
        flags=("--smtp-tls-key",),
        env="MP_SMTP_TLS_KEY",
        help="PEM key",
        metavar="FILE",
    )
    smtp_require_starttls: bool = setting(
        False,
        flags=("--smtp-require-starttls",),
        env="MP_SMTP_REQUIRE_STARTTLS",
        help=(
            "refuse commands other than EHLO, HELO, NOOP, RSET, STARTTLS, QUIT before STARTTLS "
            "(530)"
        ),
    )
    smtp_require_tls: bool = setting(
        False,
        flags=("--smtp-require-tls",),
        env="MP_SMTP_REQUIRE_TLS",
        help="implicit TLS: the SMTP listener speaks TLS from the start (SMTPS, as on port 465)",
    )
    smtp_auth_file: str = setting(
        "",
        flags=("--smtp-auth-file",),
        env="MP_SMTP_AUTH_FILE",
        help="file of user:password lines (bcrypt hashes accepted); AUTH is then required",
        metavar="FILE",
    )
    smtp_auth: str = setting(
        "",
        flags=("--smtp-auth",),
        env="MP_SMTP_AUTH",
        help="user:password pairs separated by spaces; AUTH is then required",
        metavar="PAIRS",
    )
    smtp_auth_accept_any: bool = setting(
        False,
        flags=("--smtp-auth-accept-any",),
        env="MP_SMTP_AUTH_ACCEPT_ANY",
        help="accept any AUTH user and password (AUTH stays optional)",
    )
    smtp_auth_allow_insecure: bool = setting(
        False,
        flags=("--smtp-auth-allow-insecure",),
        env="MP_SMTP_AUTH_ALLOW_INSECURE",
        help="allow PLAIN and LOGIN over connections without TLS",
    )
    smtp_auth_mechanisms: str = setting(
        "",
        flags=("--smtp-auth-mechanisms",),
        env="MP_SMTP_AUTH_MECHANISMS",
        help=(
            "AUTH mechanisms to offer and accept, e.g. 'PLAIN LOGIN' (of CRAM-MD5, LOGIN, "
            "PLAIN); others get 504 5.5.4; default: every one the credentials can check"
        ),
        convert=parse_auth_mechanisms,
        metavar="LIST",
    )
    smtp_allowed_recipients: str = setting(
        "",
        flags=("--smtp-allowed-recipients",),
        env="MP_SMTP_ALLOWED_RECIPIENTS",
        help="regular expression; other recipients get 550 5.7.1 (postmaster is always accepted)",
        metavar="REGEX",
    )
    smtp_ignore_rejected_recipients: bool = setting(
        False,
        flags=("--smtp-ignore-rejected-recipients",),
        env="MP_SMTP_IGNORE_REJECTED_RECIPIENTS",
        help="accept recipients --smtp-allowed-recipients refuses with 250, and drop them",
    )
    smtp_allow_ips: str = setting(
        "",
        flags=("--smtp-allow-ips",),
        env="MP_SMTP_ALLOW_IPS",
        help="only these client addresses or CIDR networks may connect (others get 554 5.7.1)",
        metavar="CIDRS",
    )
    smtp_deny_ips: str = setting(
        "",
        flags=("--smtp-deny-ips",),
        env="MP_SMTP_DENY_IPS",
        help="client addresses or CIDR networks refused with 554 5.7.1",
        metavar="CIDRS",
    )
    smtp_local_domains: str = setting(
        "",
        flags=("--smtp-local-domains",),
        env="MP_SMTP_LOCAL_DOMAINS",
        help=(
            "domains taken from anyone (e.g. example.com, *.example.com); mail for others needs "
            "AUTH or --smtp-trusted-networks, else 554 5.7.1 Relay access denied (as Postfix)"
        ),
        metavar="DOMAINS",
    )
    smtp_trusted_networks: str = setting(
        "",
        flags=("--smtp-trusted-networks",),
        env="MP_SMTP_TRUSTED_NETWORKS",
        help=(
            "client addresses or CIDR networks that may send to any domain without AUTH under "
            "--smtp-local-domains (Postfix's mynetworks)"
        ),
        metavar="CIDRS",
    )
    smtp_max_connections: int = setting(
        0,
        flags=("--smtp-max-connections",),
        env="MP_SMTP_MAX_CONNECTIONS",
        help="most simultaneous SMTP connections; more get 421 4.7.0 (0 = unlimited)",
        convert=parse_int,
        metavar="N",
    )
    smtp_max_connections_per_ip: int = setting(
        0,
        flags=("--smtp-max-connections-per-ip",),
        env="MP_SMTP_MAX_CONNECTIONS_PER_IP",
        help="most simultaneous connections from one address; more get 421 4.7.0 (0 = unlimited)",
        convert=parse_int,
        metavar="N",
    )
    smtp_rate_limit: int = setting(
        0,
        flags=("--smtp-rate-limit",),
        env="MP_SMTP_RATE_LIMIT",
        help="messages per minute from one address; more get 451 4.7.1 (0 = unlimited)",
        convert=parse_int,
        metavar="N",
    )
    # seconds a new (client, sender, recipient) waits; 0 = off
    smtp_greylist: float = setting(
        0.0,
        flags=("--smtp-greylist",),
        env="MP_SMTP_GREYLIST",
        help="defer the first try of each (client, sender, recipient) with 451 4.7.1 for this long",
        convert=parse_duration,
        metavar="DURATION",
    )
    smtp_reverse_dns: bool = setting(
        False,
        flags=("--smtp-reverse-dns",),
        env="MP_SMTP_REVERSE_DNS",
        help="look up the client's name (short timeout) for the log and a Received: header",
    )
    # --- receiver simulation and more SMTP listeners (docs/receivers.md) ---
    receiver: str = setting(
        "permissive",
        flags=("--receiver",),
        env="MP_RECEIVER",
        help=(
            "answer SMTP as this receiver would: permissive (250 to everything), strict, gmail, "
            "outlook, yahoo, or a YAML profile file; refused messages are kept, marked refused"
        ),
        metavar="PROFILE",
    )
    smtp_listeners: tuple[str, ...] = setting(
        (),
        flags=("--smtp-listener",),
        env="MP_SMTP_LISTENERS",
        help=(
            "another SMTP listener into the same store, NAME=ADDR[,tls=implicit|starttls|"
            "optional|off][,auth=required|optional|off][,receiver=PROFILE][,mailbox=NAME]; "
            "repeat the flag, or separate listeners with ; in the variable"
        ),
        convert=parse_listener_list,
        metavar="SPEC",
        repeat=True,
    )


@dataclass(frozen=True)
class ChaosSettings:
    """Chaos: fault injection at the SMTP stages (declared after the mailboxes' rows)."""

    enable_chaos: bool = setting(
        False,
        flags=("--enable-chaos",),
        env="MP_ENABLE_CHAOS",
        help="enable chaos (fault injection) and its API, /api/v1/chaos",
    )
    chaos_triggers: str = setting(
        "",
        flags=("--chaos-triggers",),
        env="MP_CHAOS_TRIGGERS",
        help=(
            "e.g. Sender:451:10,Recipient:451:5,Authentication:535:5 (STAGE:CODE:PERCENT; also "
            "Connect, Helo, Data, Drop:PERCENT, Delay:250ms[:PERCENT]); enables chaos"
        ),
        metavar="TRIGGERS",
    )
    chaos_seed: int | None = setting(
        None,
        flags=("--chaos-seed",),
        env="MP_CHAOS_SEED",
        help="seed the chaos dice so a run repeats exactly",
        convert=parse_int,
        metavar="N",
    )
