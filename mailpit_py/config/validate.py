"""validate(config): refuse settings that cannot work, with the checks of the features owning them.

The one module of config/ that imports the features (relay config files, mail-access logins,
SMTP chaos triggers, DNS overrides, the web guard's origin and host lists): it sits above them
in the layers, so the settings themselves import nothing of the features and no import circles
back. Callers (the CLI, Server, the commands, the pytest plugin) validate through here.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path

from mailpit_py.config.credentials import Credentials
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.listeners import parse_listener
from mailpit_py.config.settings import OPTIONS, Config
from mailpit_py.config.sources import ALIAS_ENV, ALIAS_FLAGS, settings_from
from mailpit_py.config.values import parse_networks, split_hostport
from mailpit_py.dkimsign.signer import Signer
from mailpit_py.mailaccess.access import validate_mail_access
from mailpit_py.mailbox.routing import Router
from mailpit_py.mailbox.tags import AutoTags
from mailpit_py.net.dns import OverrideError, load_overrides
from mailpit_py.net.listen import check_address
from mailpit_py.receiver.profile import ProfileError
from mailpit_py.receiver.profile import load as load_profile
from mailpit_py.relay import config as relay_config
from mailpit_py.smtp.chaos import parse_triggers
from mailpit_py.smtp.policy import parse_domains
from mailpit_py.webapp.guard import parse_allowed_hosts, parse_cors


def load(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The validated Config of parsed server flags and MP_* variables (the CLI's, `config`'s)."""
    values = settings_from(args, environ)
    # The relay's MP_SMTP_RELAY_*/MP_SMTP_FORWARD_* variables have no flags: read as a whole.
    values["smtp_relay_env"] = relay_config.env_pairs(environ)
    if values.get("smtp_disable_rdns"):  # Mailpit's switch off wins over ours on
        values["smtp_reverse_dns"] = False
    return validate(Config(**values))


# Mailpit's settings that change nothing here, each with what mailpit_py does instead. Given,
# they are accepted (a Mailpit compose file or CI job must start) and named at start.
NO_EFFECT: dict[str, str] = {}

# MP_* variables read outside the settings table (sub-commands, the pytest plugin).
_OTHER_VARIABLES = {"MP_SENDMAIL_SMTP_ADDR", "MP_SENDMAIL_FROM"}

# Mailpit's variables that mailpit_py does not implement: named at start with what they did,
# then ignored, so a Mailpit environment still starts.
UNSUPPORTED_ENV = {
    "MP_DEMO_MODE": "Mailpit's public demo mode (no relay, link check or send API, --max 1000) "
    "is not supported",
}


def notices(config: Config, environ: Mapping[str, str], argv: list[str]) -> list[str]:
    """Warnings for start-up: Mailpit options without effect here, deprecated spellings and
    unknown MP_* variables (one rule for all: named, then ignored; never fatal)."""
    out: list[str] = []
    defaults = Config()
    for opt in OPTIONS:
        why = NO_EFFECT.get(opt.field)
        if why and getattr(config, opt.field) != getattr(defaults, opt.field):
            out.append(f"{opt.flags[-1]} ({opt.env}) has no effect in mailpit_py: {why}")
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    for alias, (_name, current) in ALIAS_FLAGS.items():
        if alias in given:
            out.append(_deprecated(alias, current))
    for alias, (_name, current) in ALIAS_ENV.items():
        if alias in environ:
            out.append(_deprecated(alias, current))
    if config.smtp_relay_config:
        out.extend(relay_config.file_notices(config.smtp_relay_config))
    known = {opt.env for opt in OPTIONS} | set(ALIAS_ENV) | _OTHER_VARIABLES
    known |= relay_config.known_env()
    for var in sorted(environ):
        if var in UNSUPPORTED_ENV:
            out.append(f"{var}: {UNSUPPORTED_ENV[var]}: ignored")
        elif var.startswith("MP_") and var not in known:
            out.append(f"{var} is not a variable mailpit_py knows: ignored (see --help)")
    return out


def _deprecated(alias: str, current: str) -> str:
    if not current:
        return f"{alias} is deprecated in Mailpit and has no effect"
    return f"{alias} is deprecated, as in Mailpit: use {current}"


def validate(config: Config) -> Config:
    """Raise ConfigError for settings that cannot work; return the config for chaining."""
    _listeners_and_limits(config)
    relay_config.validate(config)
    _smtp_front_door(config)
    _listeners_and_receivers(config)
    _checks(config)
    validate_mail_access(config)
    _integrations(config)
    Signer.from_values(config.dkim_sign)  # every rule well-formed, every key file one that signs
    AutoTags.from_config(config)  # --tag, --tags-config, --tags-disable
    Router.from_config(config)  # --mailbox-config, --mailbox-route, listeners' mailbox=
    _web_access(config)
    parse_cors(config.api_cors)
    parse_allowed_hosts(config.allowed_hosts)
    return config


def _listeners_and_limits(config: Config) -> None:
    check_address(config.smtp_addr, "--smtp")  # HOST:PORT, or Mailpit's unix:PATH:MODE
    check_address(config.http_addr, "--listen")
    if not re.fullmatch(r"/([A-Za-z0-9._~!$&'()*+,;=:@%-]+/)*", config.webroot):
        raise ConfigError(f"--webroot: {config.webroot!r} is not a URL path: use e.g. / or /mail/")
    if config.max_messages < 0:
        raise ConfigError("--max must be 0 (unlimited) or a positive number of messages")
    if config.max_age is not None and config.max_age <= 0:
        raise ConfigError("--max-age must be a positive duration such as 12h or 3d")
    if config.max_message_size < 0:
        raise ConfigError("--max-message-size must be 0 (unlimited) or a size such as 50 or 50MB")
    if config.smtp_max_recipients <= 0:
        raise ConfigError("--smtp-max-recipients must be a positive number")
    if config.smtp_timeout <= 0:
        raise ConfigError("--smtp-timeout must be a positive duration such as 300s or 5m")
    if config.session_history < 0:
        raise ConfigError("--smtp-session-history must be 0 or a positive number")
    if config.compression is not None and not 0 <= config.compression <= 3:
        raise ConfigError(  # Mailpit's range
            "--compression must be 0 (off), 1 (fastest), 2 (standard) or 3 (smallest)"
        )


def _smtp_front_door(config: Config) -> None:
    """TLS, AUTH, access policy and chaos: refuse what could never work, saying how to fix it."""
    fix_cert = (
        "add --smtp-tls-cert FILE --smtp-tls-key FILE (PEM), or --smtp-tls-cert "
        "sans:localhost for a self-signed certificate"
    )
    if config.smtp_tls_key and not config.smtp_tls_cert:
        raise ConfigError(f"--smtp-tls-key is set without a certificate: {fix_cert}")
    sans = config.smtp_tls_cert.startswith("sans:")
    if config.smtp_tls_cert and not sans and not config.smtp_tls_key:
        raise ConfigError(
            "--smtp-tls-cert needs --smtp-tls-key (or use --smtp-tls-cert sans:HOST "
            "for a self-signed certificate)"
        )
    for flag, on in (
        ("--smtp-require-starttls", config.smtp_require_starttls),
        ("--smtp-require-tls", config.smtp_require_tls),
    ):
        if on and not config.smtp_tls_cert:
            raise ConfigError(f"{flag} needs a certificate: {fix_cert}")
    if config.smtp_require_starttls and config.smtp_require_tls:
        raise ConfigError(
            "--smtp-require-starttls and --smtp-require-tls exclude each other: "
            "--smtp-require-tls makes the whole connection TLS (port 465 style)"
        )
    if config.smtp_auth_accept_any and (config.smtp_auth_file or config.smtp_auth):
        raise ConfigError(
            "--smtp-auth-accept-any accepts everyone: drop it, or drop --smtp-auth-file "
            "and MP_SMTP_AUTH"
        )
    auth_on = bool(config.smtp_auth_accept_any or config.smtp_auth_file or config.smtp_auth)
    if auth_on and not config.smtp_tls_cert and not config.smtp_auth_allow_insecure:
        raise ConfigError(
            "SMTP AUTH sends passwords, which needs TLS: add --smtp-tls-cert FILE "
            "--smtp-tls-key FILE (or --smtp-tls-cert sans:localhost), or allow logins "
            "over plain connections with --smtp-auth-allow-insecure"
        )
    if config.smtp_allowed_recipients:
        try:
            re.compile(config.smtp_allowed_recipients)
        except re.error as exc:
            raise ConfigError(
                f"--smtp-allowed-recipients: {config.smtp_allowed_recipients!r} is not a "
                f"regular expression: {exc}"
            ) from None
    parse_networks(config.smtp_allow_ips, "--smtp-allow-ips")
    parse_networks(config.smtp_deny_ips, "--smtp-deny-ips")
    parse_domains(config.smtp_local_domains, "--smtp-local-domains")
    parse_networks(config.smtp_trusted_networks, "--smtp-trusted-networks")
    if config.smtp_trusted_networks.strip() and not config.smtp_local_domains.strip():
        raise ConfigError(
            "--smtp-trusted-networks only lifts the --smtp-local-domains restriction: add "
            "--smtp-local-domains DOMAINS (without it every recipient is accepted anyway)"
        )
    for flag, value in (
        ("--smtp-max-connections", config.smtp_max_connections),
        ("--smtp-max-connections-per-ip", config.smtp_max_connections_per_ip),
        ("--smtp-rate-limit", config.smtp_rate_limit),
    ):
        if value < 0:
            raise ConfigError(f"{flag} must be 0 (unlimited) or a positive number")
    if config.smtp_greylist < 0:
        raise ConfigError("--smtp-greylist must be 0 (off) or a duration such as 60s")
    parse_triggers(config.chaos_triggers, "--chaos-triggers")


def _listeners_and_receivers(config: Config) -> None:
    """--receiver and --smtp-listener: every profile loads, every listener can work."""
    try:
        load_profile(config.receiver, "--receiver")
    except ProfileError as exc:
        raise ConfigError(str(exc)) from None
    names = set()
    fix_cert = (
        "add --smtp-tls-cert FILE --smtp-tls-key FILE (PEM), or --smtp-tls-cert "
        "sans:localhost for a self-signed certificate"
    )
    auth_on = bool(config.smtp_auth_accept_any or config.smtp_auth_file or config.smtp_auth)
    for spec in config.smtp_listeners:
        listener = parse_listener(spec)
        flag = f"--smtp-listener {listener.name}"
        if listener.name in names:
            raise ConfigError(f"{flag}: two listeners have this name: give each its own")
        names.add(listener.name)
        if listener.tls != "off" and not config.smtp_tls_cert:
            raise ConfigError(f"{flag}: tls={listener.tls} needs a certificate: {fix_cert}")
        if listener.auth == "required" and not auth_on:
            raise ConfigError(
                f"{flag}: auth=required needs logins: add --smtp-auth-file FILE or "
                "MP_SMTP_AUTH='user:password', or --smtp-auth-accept-any"
            )
        if listener.receiver:
            try:
                load_profile(listener.receiver, f"{flag} receiver=")
            except ProfileError as exc:
                raise ConfigError(str(exc)) from None


def _checks(config: Config) -> None:
    """The message checks: the client address they evaluate, their DNS and their blocklists."""
    if config.checks_client_ip:
        try:
            ipaddress.ip_address(config.checks_client_ip)
        except ValueError:
            raise ConfigError(
                f"--checks-client-ip: {config.checks_client_ip!r} is not an IP address: "
                "use the address your mail server sends from, e.g. 203.0.113.7"
            ) from None
    if config.dns_timeout <= 0:
        raise ConfigError("--dns-timeout must be a positive duration such as 2s")
    if config.dns_offline and not config.dns_override:
        raise ConfigError("--dns-offline needs --dns-override FILE to answer from")
    if config.dns_override:
        try:
            load_overrides(config.dns_override)
        except OverrideError as exc:
            raise ConfigError(str(exc)) from None
    for zone in config.checks_dnsbl:
        if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+\.?", zone):
            raise ConfigError(
                f"--checks-dnsbl: {zone!r} is not a DNS zone: use e.g. zen.spamhaus.org"
            )
    if config.enable_spamassassin.strip().lower() == "postmark":
        # Mailpit's other choice sends every message to Postmark's online service.
        raise ConfigError(
            "--enable-spamassassin postmark (Mailpit's use of Postmark's online spam check) is "
            "not supported: run SpamAssassin's spamd and give its HOST:PORT, e.g. "
            "--enable-spamassassin 127.0.0.1:783"
        )
    if config.enable_spamassassin:
        split_hostport(config.enable_spamassassin, "--enable-spamassassin")


def _integrations(config: Config) -> None:
    """Metrics, the webhook and the log."""
    if config.enable_prometheus not in ("", "true"):
        split_hostport(config.enable_prometheus, "--enable-prometheus (true, false or ADDR:PORT)")
    if config.webhook_url and not re.match(r"https?://[^/\s]+", config.webhook_url):
        raise ConfigError(
            f"--webhook-url: {config.webhook_url!r} is not an http:// or https:// URL"
        )
    if config.webhook_limit < 0:
        raise ConfigError("--webhook-limit must be 0 (every message) or seconds between requests")
    if config.webhook_rate < 0:
        raise ConfigError("--webhook-rate must be 0 (no pacing) or requests per second")
    if config.log_format not in ("text", "json"):
        raise ConfigError(f"--log-format: {config.log_format!r} is not text or json")


def _web_access(config: Config) -> None:
    """The web UI's and send API's credentials, and the web UI's certificate."""
    for path, flag in (
        (config.ui_auth_file, "--ui-auth-file"),
        (config.send_api_auth_file, "--send-api-auth-file"),
    ):
        if path:
            Credentials.load(path, flag)
    for inline, env in (
        (config.ui_auth, "MP_UI_AUTH"),
        (config.send_api_auth, "MP_SEND_API_AUTH"),
    ):
        if inline.strip():
            Credentials.parse(inline, env)
    if config.ui_tls_key and not config.ui_tls_cert:
        raise ConfigError("--ui-tls-key needs --ui-tls-cert (the certificate it belongs to)")
    if config.ui_tls_cert and not config.ui_tls_cert.startswith("sans:"):
        if not config.ui_tls_key:
            raise ConfigError(
                "--ui-tls-key is needed with --ui-tls-cert (or use --ui-tls-cert sans:HOST "
                "for a self-signed certificate)"
            )
        for path, flag in (
            (config.ui_tls_cert, "--ui-tls-cert"),
            (config.ui_tls_key, "--ui-tls-key"),
        ):
            if not Path(path).is_file():
                raise ConfigError(f"{flag}: {path} does not exist or is not a file")
