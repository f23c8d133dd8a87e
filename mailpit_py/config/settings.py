"""Config, the one frozen settings object, declared as the table of settings.

Each field is declared with setting(): its name, type and default, its flags, its MP_* variable
and its help, in one place, so `--help`, `mailpit-py config` and the docs test all read the same
table (OPTIONS). The rows are declared by area in the settings_*.py modules beside this one
(settings_general.py, settings_smtp.py, ...); Config joins them in the table's order. The
checks that a combination of settings can work live in config/validate.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from mailpit_py.config.mailboxes import mailbox_config
from mailpit_py.config.option import Option, options_of
from mailpit_py.config.settings_checks import CheckSettings
from mailpit_py.config.settings_compat import MailpitCompatSettings
from mailpit_py.config.settings_general import GeneralSettings
from mailpit_py.config.settings_mailaccess import MailAccessSettings
from mailpit_py.config.settings_mailboxes import MailboxSettings
from mailpit_py.config.settings_observability import ObservabilitySettings
from mailpit_py.config.settings_relay import RelaySettings
from mailpit_py.config.settings_smtp import ChaosSettings, SmtpSettings
from mailpit_py.config.settings_web import WebSettings


# dataclasses takes the fields of the last base first, so the areas are listed from the table's
# last to its first: the table, `--help` and `mailpit-py config` keep the order they had.
@dataclass(frozen=True)
class Config(
    MailpitCompatSettings,
    WebSettings,
    ObservabilitySettings,
    MailAccessSettings,
    CheckSettings,
    ChaosSettings,
    MailboxSettings,
    SmtpSettings,
    RelaySettings,
    GeneralSettings,
):
    """Every setting of a mailpit_py instance; the CLI maps flags and MP_* variables onto it."""

    def allowed_boxes(self, username: str | None) -> set[str] | None:
        """The mailboxes a UI/API/POP3/IMAP user may see (--mailbox-config's access:); None
        means every mailbox: no login, a user not listed, or one given "*"."""
        return mailbox_config(self).allowed_boxes(username)

    def box_max(self, name: str) -> int | None:
        """The mailbox's own max: from --mailbox-config; None when it has none (--max)."""
        return mailbox_config(self).box_max(name)


# The settings table in declaration order: the CLI's parser and `mailpit-py config` read it.
OPTIONS: tuple[Option, ...] = options_of(Config)


def field_names() -> list[str]:
    """Every Config field, those without a flag included, in declaration order."""
    return [f.name for f in fields(Config)]
