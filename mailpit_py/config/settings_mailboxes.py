"""The settings table's mailbox rows: mailboxes per project and how mail is routed to them."""

from __future__ import annotations

from dataclasses import dataclass

from mailpit_py.config.mailboxes import parse_route_list, parse_unrouted
from mailpit_py.config.option import setting


@dataclass(frozen=True)
class MailboxSettings:
    """Mailboxes per project (docs/mailboxes.md)."""

    mailbox_config: str = setting(
        "",
        flags=("--mailbox-config",),
        env="MP_MAILBOX_CONFIG",
        help="YAML file of mailboxes (one per project): their routes, max and who may see them",
        metavar="FILE",
    )
    mailbox_auto: bool = setting(
        False,
        flags=("--mailbox-auto",),
        env="MP_MAILBOX_AUTO",
        help="a mailbox per SMTP AUTH username, made on its first message (after the routes)",
    )
    mailbox_routes: tuple[str, ...] = setting(
        (),
        flags=("--mailbox-route",),
        env="MP_MAILBOX_ROUTES",
        help=(
            "route mail to a mailbox, NAME=auth:GLOB, rcpt:GLOB, listener:NAME or header:VALUE "
            "(e.g. shop=rcpt:*@shop.test; {mailbox}=rcpt:*@{mailbox}.test makes one per "
            "domain); repeat the flag, or separate routes with ; in the variable"
        ),
        convert=parse_route_list,
        metavar="NAME=RULE",
        repeat=True,
    )
    mailbox_header: str = setting(
        "",
        flags=("--mailbox-header",),
        env="MP_MAILBOX_HEADER",
        help=(
            "a message header naming its mailbox, e.g. X-Mailbox (only mailboxes that exist; "
            "header: routes match it); default: header routing off"
        ),
        metavar="NAME",
    )
    mailbox_unrouted: str = setting(
        "",
        flags=("--mailbox-unrouted",),
        env="MP_MAILBOX_UNROUTED",
        help=(
            "mail no route matches: default (keep it in the default mailbox) or refuse "
            "(550 5.1.1); default: the config file's unrouted:, else default"
        ),
        convert=parse_unrouted,
        metavar="default|refuse",
    )
