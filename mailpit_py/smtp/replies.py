"""SMTP replies: the enhanced status codes (RFC 3463) and the refusals of bad command input."""

from __future__ import annotations

import re

from mailpit_py.smtp.policy import Refusal

# RFC 3463 enhanced codes for replies that aiosmtpd sends without one, by basic code. The
# greeting and the EHLO lines never carry one (RFC 2034 section 3).
ENHANCED = {
    "214": "2.0.0",
    "220": "2.0.0",
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "252": "2.0.0",
    "421": "4.3.0",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.5.3",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "550": "5.1.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.7.0",
    "555": "5.5.4",
}
HAS_ENHANCED = re.compile(rb"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}(?: |$)")
# The enhanced code of a 250 to MAIL and to RCPT (RFC 3463: X.1.0 sender, X.1.5 recipient).
MAIL_RCPT_OK = {"MAIL": "2.1.0", "RCPT": "2.1.5"}
# The rule named for a 4xx/5xx reply that no policy marked (aiosmtpd's own checks and ours).
DEFAULT_RULES = {"552": "message-size", "452": "max-recipients", "451": "storage"}


# Control characters other than TAB (which is white space in an argument as in a header).
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def not_utf8(command: str) -> Refusal:
    """The answer to a command whose argument has bytes that are not UTF-8 (RFC 3463 codes:
    X.1.7 a bad sender address, X.1.3 a bad recipient address, X.5.4 a bad argument)."""
    detail = f"{command} with bytes that are not UTF-8"
    if command == "MAIL":
        reply = "553 5.1.7 Error: the sender address is not valid UTF-8"
    elif command == "RCPT":
        reply = "553 5.1.3 Error: the recipient address is not valid UTF-8"
    else:
        reply = f"501 5.5.4 Error: the {command} argument is not valid UTF-8"
    return Refusal(reply, "not-utf8", detail)


def control_character(command: str) -> Refusal:
    """The answer to a command whose argument has a control character (a bare CR, a NUL)."""
    return Refusal(
        f"501 5.5.4 Error: the {command} argument contains a control character",
        "syntax",
        f"{command} with a control character",
    )


def non_ascii(what: str, address: str) -> Refusal:
    """A non-ASCII address needs SMTPUTF8 on MAIL: 553 with X.6.7, "non-ASCII addresses not
    permitted for that sender/recipient" (RFC 6531, RFC 5248)."""
    return Refusal(
        f"553 5.6.7 Error: non-ASCII {what} address without SMTPUTF8 (add SMTPUTF8 to MAIL FROM)",
        "smtputf8",
        f"non-ASCII {what} {address!r} in a transaction without SMTPUTF8",
    )


# --smtp-strict-rfc-headers (Mailpit's flag). Mailpit answers 451 4.3.5 (its parser fails);
# the same bytes would fail on every retry, so the refusal here is permanent and says why.
STRICT_HEADERS = Refusal(
    "550 5.6.0 Error: the message headers contain <CR><CR><LF> "
    "(refused under --smtp-strict-rfc-headers)",
    "strict-rfc-headers",
    "headers with <CR><CR><LF>",
)
