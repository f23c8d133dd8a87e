"""`mailpit-py dkim-record KEYFILE`: the DNS TXT record that publishes a DKIM signing key."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mailpit_py.commands._common import EX_DATAERR, EX_OK, EX_USAGE, error
from mailpit_py.config.errors import ConfigError
from mailpit_py.dkimsign.keys import KeyFileError, load_key
from mailpit_py.dkimsign.signer import parse_rule

PROG = "mailpit-py dkim-record"
TXT_STRING_MAX = 255  # one character-string of a TXT record (RFC 1035 section 3.3)

EXAMPLES = f"""\
The value goes in a TXT record at SELECTOR._domainkey.DOMAIN. With --domain and --selector the
whole record is printed as a --dns-override line (also valid in a BIND zone file), so a second
mailpit-py instance checking the signed mail can be given the key without real DNS.

examples:
  openssl genrsa -out dkim.pem 2048
  {PROG} dkim.pem
  {PROG} dkim.pem --domain example.com --selector mail >> dns-override.txt
  {PROG} example.com:mail:dkim.pem >> dns-override.txt   (a --dkim-sign value)
  mailpit-py --dkim-sign example.com:mail:dkim.pem ...   (the instance that signs)
  mailpit-py --dns-override dns-override.txt ...          (an instance that verifies)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Print the DKIM TXT record (v=DKIM1; k=...; p=...) of a private key file "
        "(PEM, RSA or Ed25519), as --dkim-sign uses it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "key",
        metavar="KEYFILE",
        help="the private key file, or a --dkim-sign value DOMAIN:SELECTOR:KEYFILE",
    )
    parser.add_argument("--domain", help="the signing domain (d=): print a whole record")
    parser.add_argument("--selector", help="the selector (s=): print a whole record")
    return parser


def zone_line(domain: str, selector: str, value: str) -> str:
    """`SELECTOR._domainkey.DOMAIN TXT "..." "..."`: a 2048-bit RSA key is longer than one
    TXT string may be, so the value is cut into strings that resolvers join again."""
    chunks = [value[i : i + TXT_STRING_MAX] for i in range(0, len(value), TXT_STRING_MAX)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    return f"{selector}._domainkey.{domain.rstrip('.')} TXT {quoted}"


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    path, domain, selector = args.key, args.domain, args.selector
    if args.key.count(":") >= 2 and not (domain or selector):
        try:
            domain, selector, path = parse_rule(args.key, "KEYFILE")
        except ConfigError as exc:
            error(PROG, str(exc))
            return EX_USAGE
    if bool(domain) != bool(selector):
        error(PROG, "give both --domain and --selector (or neither, for the value alone)")
        return EX_USAGE
    if domain and "*" in domain:
        error(PROG, f"{domain!r} is a pattern: give the domain the record is for, e.g. example.com")
        return EX_USAGE
    try:
        key = load_key(path)
    except KeyFileError as exc:
        error(PROG, str(exc))
        return EX_DATAERR
    print(zone_line(domain, selector, key.record()) if domain else key.record())
    return EX_OK
