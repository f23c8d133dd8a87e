"""The settings table's remaining Mailpit flags: their meaning here, or accepted with a warning."""

from __future__ import annotations

from dataclasses import dataclass

from mailpit_py.config.option import setting
from mailpit_py.config.values import parse_duration, parse_int


@dataclass(frozen=True)
class MailpitCompatSettings:
    """Mailpit's remaining flags: its meaning, or accepted with a warning (config/notices.py)."""

    disable_wal: bool = setting(
        False,
        flags=("--disable-wal",),
        env="MP_DISABLE_WAL",
        help="do not use SQLite's write-ahead log for --database (allows NFS-mounted databases)",
    )
    disable_version_check: bool = setting(
        False,
        flags=("--disable-version-check",),
        env="MP_DISABLE_VERSION_CHECK",
        help="accepted as in Mailpit; mailpit_py never checks for new versions",
    )
    disable_auto_vacuum: bool = setting(
        False,
        flags=("--disable-auto-vacuum",),
        env="MP_DISABLE_AUTO_VACUUM",
        help="accepted as in Mailpit; mailpit_py runs no scheduled VACUUM",
    )
    # None: not given, which is 0 here (Mailpit's own default is 1)
    compression: int | None = setting(
        None,
        flags=("--compression",),
        env="MP_COMPRESSION",
        help="store raw messages compressed: 1 fastest, 2 standard, 3 smallest, 0 off (the "
        "default here; Mailpit's is 1)",
        convert=parse_int,
        metavar="0-3",
    )
    tenant_id: str = setting(
        "",
        flags=("--tenant-id",),
        env="MP_TENANT_ID",
        help="keep this tenant's data apart in a shared --database: a PostgreSQL schema of its "
        "own, or a SQLite file beside the one named (mail.db -> mail.ID.db)",
        metavar="ID",
    )
    use_message_dates: bool = setting(
        False,
        flags=("--use-message-dates",),
        env="MP_USE_MESSAGE_DATES",
        help="use each message's Date header as its received date",
    )
    ignore_duplicate_ids: bool = setting(
        False,
        flags=("--ignore-duplicate-ids",),
        env="MP_IGNORE_DUPLICATE_IDS",
        help="accept (250) but do not store a message whose Message-ID is already stored",
    )
    block_remote_css_and_fonts: bool = setting(
        False,
        flags=("--block-remote-css-and-fonts",),
        env="MP_BLOCK_REMOTE_CSS_AND_FONTS",
        help="the HTML view and the UI's preview load no remote CSS or fonts, as in Mailpit",
    )
    disable_link_check_rate_limit: bool = setting(
        False,
        flags=("--disable-link-check-rate-limit",),
        env="MP_DISABLE_LINK_CHECK_RATE_LIMIT",
        help="no per-domain rate limit or result cache in the link check (Mailpit's switch)",
    )
    allow_untrusted_tls: bool = setting(
        False,
        flags=("--allow-untrusted-tls",),
        env="MP_ALLOW_UNTRUSTED_TLS",
        help="the link check accepts HTTPS certificates it cannot verify, as in Mailpit",
    )
    disable_http_compression: bool = setting(
        False,
        flags=("--disable-http-compression",),
        env="MP_DISABLE_HTTP_COMPRESSION",
        help="do not gzip HTTP answers (by default they are, for clients that accept gzip)",
    )
    hide_delete_all_button: bool = setting(
        False,
        flags=("--hide-delete-all-button",),
        env="MP_HIDE_DELETE_ALL_BUTTON",
        help='hide the "Delete all" button in the web UI',
    )
    smtp_strict_rfc_headers: bool = setting(
        False,
        flags=("--smtp-strict-rfc-headers",),
        env="MP_SMTP_STRICT_RFC_HEADERS",
        help="refuse a message whose headers have a line ending <CR><CR><LF> (550 5.6.0), "
        "as Mailpit does",
    )
    smtp_disable_rdns: bool = setting(
        False,
        flags=("--smtp-disable-rdns",),
        env="MP_SMTP_DISABLE_RDNS",
        help="no reverse DNS lookup of SMTP clients (mailpit_py's default; wins over "
        "--smtp-reverse-dns)",
    )
    tag: str = setting(
        "",
        flags=("-t", "--tag"),
        env="MP_TAG",
        help="tag new messages matching search filters, e.g. 'tag1=from:a@example.com'",
        metavar="RULES",
    )
    tags_config: str = setting(
        "",
        flags=("--tags-config",),
        env="MP_TAGS_CONFIG",
        help="YAML file of tag filters, as Mailpit's",
        metavar="FILE",
    )
    tags_title_case: bool = setting(
        False,
        flags=("--tags-title-case",),
        env="MP_TAGS_TITLE_CASE",
        help="Title Case the tags made from plus-addresses and X-Tags",
    )
    tags_disable: str = setting(
        "",
        flags=("--tags-disable",),
        env="MP_TAGS_DISABLE",
        help="turn off auto-tagging, comma-separated: plus-addresses, x-tags",
        metavar="LIST",
    )
    tags_username: bool = setting(
        False,
        flags=("--tags-username",),
        env="MP_TAGS_USERNAME",
        help="tag each message with the SMTP AUTH user name that sent it",
    )
    # seconds
    webhook_delay: float = setting(
        0.0,
        flags=("--webhook-delay",),
        env="MP_WEBHOOK_DELAY",
        help="wait this long after a message arrives before its webhook request, e.g. 2 or 2s",
        convert=parse_duration,
        metavar="SECONDS",
    )
