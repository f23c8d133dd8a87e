"""aiosmtpd's private API that smtp/protocol.py depends on still exists, unchanged, and is used
nowhere else: a new aiosmtpd fails here, naming what to re-check, not in a live session."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import textwrap
import tomllib
from pathlib import Path

import aiosmtpd.smtp
from aiosmtpd.smtp import SMTP, Session

from mailpit_py.smtp import protocol
from mailpit_py.smtp.protocol import AIOSMTPD_PRIVATE, CatcherSMTP

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mailpit_py"

# The upstream code smtp/protocol.py copies, replaces or wraps, by aiosmtpd version: a hash of
# each one's source as reviewed. When aiosmtpd changes one, read the new source against ours
# (what to compare is in CHANGED_MEANS), adapt smtp/protocol.py, then record the new hashes
# (this file prints them when they differ) and widen the pin in pyproject.toml.
REVIEWED: dict[str, dict[str, str]] = {
    "1.4.6": {
        "SMTP.__init__": "8a9ca80f23ad9bf2",
        "SMTP._handle_client": "0e4d096403af6c74",
        "SMTP.smtp_DATA": "3a33f30d3fd6d02f",
        "SMTP.smtp_STARTTLS": "6565289f4131fa13",
        "SMTP.connection_made": "77a45df5065bba34",
        "SMTP.connection_lost": "d3bf6349bc3c25c1",
        "SMTP.eof_received": "baab5aaf93160933",
        "SMTP._timeout_cb": "10a7351f9bec2818",
        "SMTP._reset_timeout": "fef19b94d28dff31",
        "SMTP._cb_client_connected": "a73e95bb7f362ab9",
        "SMTP.push": "15f4f1de5e30c337",
        "SMTP._getaddr": "0aeb21c56ac1260e",
        "SMTP.smtp_AUTH": "79078b308377ac48",
        "SMTP._set_post_data_state": "1dc8a8abca2a8164",
        "Session.__init__": "8fc3f3270fb8763e",
    },
}
CHANGED_MEANS = {
    "SMTP.__init__": "CatcherSMTP._smtp_init must set what it sets (and find methods as it does)",
    "SMTP._handle_client": (
        "CatcherSMTP._command_loop is a copy: same checks and order, same replies but two (an "
        "unknown command with control characters is not echoed; too many end with 421, not 502)"
    ),
    "SMTP.smtp_DATA": "CatcherSMTP.smtp_DATA and smtp/data.py replace it: same checks, replies",
    "SMTP.smtp_STARTTLS": "CatcherSMTP._start_tls switches to TLS the same way",
    "SMTP.connection_made": "it swaps _transport on our recording reader and makes the session",
    "SMTP.connection_lost": "our connection_lost runs after it (timer, original transport)",
    "SMTP.eof_received": "our eof_received keeps a storing session open instead",
    "SMTP._timeout_cb": "our _timeout_cb sends a 421 first, then calls it",
    "SMTP._reset_timeout": "our _reset_timeout replaces it (lazy timer)",
    "SMTP._cb_client_connected": "ours wraps the reader, then calls it to set _reader/_writer",
    "SMTP.push": "our push replaces it (enhanced codes, one write per multi-line reply)",
    "SMTP._getaddr": "our fast path must parse what it parses (test_smtp.py compares them)",
    "SMTP.smtp_AUTH": "our smtp_AUTH wraps it: 535 on failure, auth_* called with (self, args)",
    "SMTP._set_post_data_state": "our smtp_DATA calls it for a fresh envelope",
    "Session.__init__": "our Session's login_data property reads _login_data",
}

# The parameters of what we override or call, as (name, kind) pairs: any version must match.
PARAMETERS: dict[str, list[tuple[str, str]]] = {
    "SMTP._handle_client": [("self", "POSITIONAL_OR_KEYWORD")],
    "SMTP._cb_client_connected": [
        ("self", "POSITIONAL_OR_KEYWORD"),
        ("reader", "POSITIONAL_OR_KEYWORD"),
        ("writer", "POSITIONAL_OR_KEYWORD"),
    ],
    "SMTP._reset_timeout": [
        ("self", "POSITIONAL_OR_KEYWORD"),
        ("duration", "POSITIONAL_OR_KEYWORD"),
    ],
    "SMTP._timeout_cb": [("self", "POSITIONAL_OR_KEYWORD")],
    "SMTP._set_post_data_state": [("self", "POSITIONAL_OR_KEYWORD")],
    "SMTP._create_session": [("self", "POSITIONAL_OR_KEYWORD")],
    "SMTP._create_envelope": [("self", "POSITIONAL_OR_KEYWORD")],
    "SMTP._getaddr": [("self", "POSITIONAL_OR_KEYWORD"), ("arg", "POSITIONAL_OR_KEYWORD")],
    "SMTP.push": [("self", "POSITIONAL_OR_KEYWORD"), ("status", "POSITIONAL_OR_KEYWORD")],
    "SMTP.smtp_DATA": [("self", "POSITIONAL_OR_KEYWORD"), ("arg", "POSITIONAL_OR_KEYWORD")],
    "SMTP.smtp_AUTH": [("self", "POSITIONAL_OR_KEYWORD"), ("arg", "POSITIONAL_OR_KEYWORD")],
    "SMTP.smtp_QUIT": [("self", "POSITIONAL_OR_KEYWORD"), ("arg", "POSITIONAL_OR_KEYWORD")],
    "SMTP.smtp_EHLO": [("self", "POSITIONAL_OR_KEYWORD"), ("hostname", "POSITIONAL_OR_KEYWORD")],
    "SMTP.smtp_HELO": [("self", "POSITIONAL_OR_KEYWORD"), ("hostname", "POSITIONAL_OR_KEYWORD")],
    "SMTP.check_helo_needed": [
        ("self", "POSITIONAL_OR_KEYWORD"),
        ("helo", "POSITIONAL_OR_KEYWORD"),
    ],
    "SMTP.check_auth_needed": [
        ("self", "POSITIONAL_OR_KEYWORD"),
        ("caller_method", "POSITIONAL_OR_KEYWORD"),
    ],
    "SMTP.challenge_auth": [
        ("self", "POSITIONAL_OR_KEYWORD"),
        ("challenge", "POSITIONAL_OR_KEYWORD"),
        ("encode_to_b64", "POSITIONAL_OR_KEYWORD"),
        ("log_client_response", "POSITIONAL_OR_KEYWORD"),
    ],
    "SMTP.connection_made": [
        ("self", "POSITIONAL_OR_KEYWORD"),
        ("transport", "POSITIONAL_OR_KEYWORD"),
    ],
    "SMTP.connection_lost": [("self", "POSITIONAL_OR_KEYWORD"), ("error", "POSITIONAL_OR_KEYWORD")],
    "SMTP.eof_received": [("self", "POSITIONAL_OR_KEYWORD")],
}

OWNERS = {"SMTP": SMTP, "Session": Session}


def lookup(name: str) -> object:
    owner, _, attr = name.rpartition(".")
    return getattr(OWNERS[owner], attr) if owner else getattr(aiosmtpd.smtp, attr)


def self_assignments(func: object) -> set[str]:
    """The attributes a method assigns on self (self.x = ..., self.x: T = ...)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))  # type: ignore[arg-type]
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            value = target.value if isinstance(target, ast.Attribute) else None
            if isinstance(value, ast.Name) and value.id == "self":
                names.add(target.attr)  # type: ignore[union-attr]
    return names


def source_hash(func: object) -> str:
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def test_the_installed_aiosmtpd_is_a_reviewed_version_within_the_pin() -> None:
    version = importlib.metadata.version("aiosmtpd")
    assert version in REVIEWED, (
        f"aiosmtpd {version} was not reviewed against smtp/protocol.py: see REVIEWED in "
        "tests/test_smtp_drift.py for what to re-check"
    )
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if d.startswith("aiosmtpd")]
    assert pin == "aiosmtpd>=1.4.6,<1.5", f"the pin {pin!r} admits versions not reviewed here"


def test_the_upstream_code_we_copied_or_wrap_is_unchanged() -> None:
    version = importlib.metadata.version("aiosmtpd")
    reviewed = REVIEWED.get(version, {})
    changed = {
        name: source_hash(lookup(name))
        for name in CHANGED_MEANS
        if source_hash(lookup(name)) != reviewed.get(name)
    }
    assert not changed, "aiosmtpd changed code smtp/protocol.py depends on:\n" + "\n".join(
        f"  {name} (now {digest}): {CHANGED_MEANS[name]}" for name, digest in changed.items()
    )


def test_the_methods_we_override_or_call_keep_their_parameters() -> None:
    for name, expected in PARAMETERS.items():
        params = inspect.signature(lookup(name)).parameters.values()  # type: ignore[arg-type]
        assert [(p.name, p.kind.name) for p in params] == expected, (
            f"aiosmtpd's {name} takes other parameters now: check its use in smtp/protocol.py"
        )


def test_every_private_name_we_use_still_exists() -> None:
    # Instance attributes exist only once set: look for their assignment in the constructor,
    # or in the method that sets them.
    set_by = self_assignments(SMTP.__init__) | self_assignments(SMTP._cb_client_connected)
    missing = []
    for name in AIOSMTPD_PRIVATE:
        owner, _, attr = name.rpartition(".")
        if owner == "Session":
            found = hasattr(Session, attr) or attr in self_assignments(Session.__init__)
        elif owner == "SMTP":
            found = hasattr(SMTP, attr) or attr in set_by
        else:
            found = hasattr(aiosmtpd.smtp, attr)
        if not found:
            missing.append(f"{name} ({AIOSMTPD_PRIVATE[name]})")
    assert not missing, "aiosmtpd no longer has: " + "; ".join(missing)


def test_our_constructor_sets_every_attribute_aiosmtpds_does() -> None:
    # Attributes aiosmtpd sets only for options this server never passes (call limits).
    unused = {"_call_limit_base", "_call_limit_default"}
    ours = self_assignments(CatcherSMTP._smtp_init) | self_assignments(CatcherSMTP.__init__)
    theirs = self_assignments(SMTP.__init__) - unused
    assert theirs <= ours, f"SMTP.__init__ now also sets {sorted(theirs - ours)}"


def test_no_module_but_the_protocol_touches_aiosmtpd_internals() -> None:
    public = set(aiosmtpd.smtp.__all__)
    private_attrs = {n.rpartition(".")[2] for n in AIOSMTPD_PRIVATE if "." in n}
    private_attrs -= {"__init__"}
    fence = Path(inspect.getfile(protocol)).resolve()
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.resolve() == fence:
            continue
        text = path.read_text()
        tree = ast.parse(text)
        uses_aiosmtpd = "aiosmtpd" in text or path.parent.name == "smtp"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiosmtpd"):
                bad = [a.name for a in node.names if a.name not in public]
                if bad:
                    offenders.append(f"{path.relative_to(ROOT)} imports {bad} from aiosmtpd")
            elif uses_aiosmtpd and isinstance(node, ast.Attribute) and node.attr in private_attrs:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} uses .{node.attr}")
    assert not offenders, "aiosmtpd's internals belong in smtp/protocol.py:\n" + "\n".join(
        offenders
    )
