"""The layering rules of docs/design.md, checked on the source: imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mailpit_py"

# Each unit (a package of mailpit_py, or a top-level module) and its layer: a unit may import
# units of lower layers only, so data flows one way (SMTP -> parse -> store -> bus -> web) and
# the folder tree reads as the architecture. Units of one layer do not import each other.
LAYERS: list[set[str]] = [
    # The REST API client imports nothing of the package (a test suite uses it without the
    # server), so the package's `mailpit_py.Client` shortcut may point down to it.
    {"client"},
    {"__init__", "models", "ids", "timefmt", "jsontext"},  # plain values and helpers
    {"events", "config"},  # the bus; settings and their value types
    # sockets and TLS; raw mail -> record; the database; DKIM signing (keys and dkimpy only,
    # so the send API below the web, the relay and the send command share one signer)
    {"net", "parse", "store", "dkimsign"},
    {"observability"},  # telemetry, statistics, session logs, the webhook
    {"mailbox"},  # the facade every front end goes through
    {"checks"},  # the message checks (DKIM, SPF, DMARC, blocklists...), on the mailbox
    # Receiver simulation: turns the checks' verdicts into SMTP refusals, for smtp to give.
    {"receiver"},
    {"relay", "smtp", "mailaccess"},  # what works on the mailbox
    {"webapp"},  # the REST API, websocket, UI and metrics (Flask)
    # config/validate.py checks settings with the parsers of the features that own them (relay
    # config files, mail-access logins, chaos triggers, DNS overrides, the web guard's lists),
    # so it is a unit of its own above them; the rest of config/ stays below every feature.
    {"config.validate"},
    {"server"},  # the composition root
    {"pytest_mailboxes"},  # the pytest plugin's per-test mailboxes (names, routing, hints)
    {"pytest_plugin", "commands"},
    {"cli"},
    {"__main__"},
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


# What the lower layers must never import, whatever the layers say: the web framework, the
# SMTP library and SQLite stay in the units that own them.
FORBIDDEN = {
    "parse": {"flask", "flask_sock", "aiosmtpd", "sqlite3"},
    "store": {"flask", "flask_sock", "aiosmtpd"},
    "models": {"flask", "flask_sock", "aiosmtpd", "sqlite3"},
    "mailbox": {"flask", "flask_sock", "aiosmtpd"},
    "events": {"flask", "flask_sock", "aiosmtpd", "sqlite3"},
}


# Modules that form a unit of their own rather than their package's (see LAYERS).
OWN_UNITS = {"config.validate"}


def unit_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    dotted = ".".join(parts[:2])
    return dotted if dotted in OWN_UNITS else parts[0]


def files_of(unit: str) -> list[Path]:
    folder = PACKAGE / unit
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{unit}.py"]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "mailpit_py":  # from mailpit_py import events
                names |= {f"mailpit_py.{alias.name}" for alias in node.names}
    return names


def imported_units(path: Path) -> set[str]:
    units = set()
    for name in imported_modules(path):
        parts = name.split(".")
        if parts[0] == "mailpit_py" and len(parts) > 1:
            own = ".".join(parts[1:3])
            units.add(
                "__init__" if parts[1] == "__version__" else own if own in OWN_UNITS else parts[1]
            )
    return units - {unit_of(path)}


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(p) for p in PACKAGE.rglob("*.py")} - {"web"}
    assert units - set(LAYER) == set(), "add the new unit to LAYERS"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of(path)
        if unit not in LAYER:
            continue
        for other in imported_units(path):
            if LAYER.get(other, -1) >= LAYER[unit]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {other}")
    assert not upward, "imports that point up or across a layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_frameworks(unit: str) -> None:
    for path in files_of(unit):
        bad = {
            name
            for name in imported_modules(path)
            for banned in FORBIDDEN[unit]
            if name == banned or name.startswith(banned + ".")
        }
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_every_module_has_a_docstring() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has no docstring"


# The front ends and the services on the mailbox reach the store through Mailbox only: it is the
# one place that resolves IDs, checks a message's mailbox and publishes after a write, and the
# one interface a second store backend has to match for them. The maintenance commands
# (migrate, reindex, dump) open stores of their own on purpose and are not among these.
THROUGH_THE_FACADE = ("webapp", "smtp", "mailaccess", "relay", "checks", "receiver")


@pytest.mark.parametrize("unit", THROUGH_THE_FACADE)
def test_front_ends_do_not_reach_past_the_mailbox(unit: str) -> None:
    reached = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in files_of(unit)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "store"
    ]
    assert not reached, "use a Mailbox method instead of its store:\n" + "\n".join(reached)
