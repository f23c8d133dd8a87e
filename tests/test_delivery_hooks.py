"""The delivery hooks: what relay and checks add to a delivery is handed to Mailbox when it is
built, runs around the commit as before, and nothing outside the mailbox patches a Mailbox."""

from __future__ import annotations

import ast
import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.mailbox.hooks import DeliveryHooks, OutboxItem, combine
from mailpit_py.models import Envelope
from mailpit_py.relay.service import Relay

PACKAGE = Path(__file__).resolve().parent.parent / "mailpit_py"
ENV = Envelope("a@example.com", ("b@example.com",))
RAW = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hooked\r\n\r\nHello.\r\n"


def test_hooks_given_at_construction_run_around_the_commit() -> None:
    planned: list[tuple[Envelope, dict[str, Any]]] = []
    ready = threading.Event()
    seen: list[tuple[str, str]] = []

    def plan(envelope: Envelope, origin: dict[str, Any]) -> list[OutboxItem]:
        planned.append((envelope, origin))
        return [("forward", "bounce@example.com", ["copy@example.net"])]

    mb: Mailbox

    def after(uid: str) -> None:
        # After the commit: the message is there to read.
        seen.append((uid, mb.summary(uid)["Subject"]))

    hooks = DeliveryHooks(plan_outbox=plan, outbox_ready=ready.set, after_commit=(after,))
    mb = Mailbox(Config(database=":memory:"), hooks=hooks)
    try:
        uid = mb.deliver(ENV, RAW, origin={"Protocol": "ESMTP"}).result(timeout=10)
        assert planned == [(ENV, {"Protocol": "ESMTP"})]
        assert seen == [(uid, "hooked")]
        assert ready.is_set()  # the outbox item was committed with the message
        queue = mb.relay_history(uid)["Queue"]
        assert [(q["Kind"], q["From"], q["To"]) for q in queue] == [
            ("forward", "bounce@example.com", ["copy@example.net"])
        ]
        assert mb.hooks is hooks
        with pytest.raises(dataclasses.FrozenInstanceError):
            mb.hooks.after_commit = ()  # type: ignore[misc]
    finally:
        mb.close()


def test_a_failing_hook_costs_the_message_nothing() -> None:
    def plan(envelope: Envelope, origin: dict[str, Any]) -> list[OutboxItem]:
        raise RuntimeError("planning bug")

    def after(uid: str) -> None:
        raise RuntimeError("hook bug")

    calls: list[str] = []
    hooks = DeliveryHooks(plan_outbox=plan, after_commit=(after, calls.append))
    mb = Mailbox(Config(database=":memory:"), hooks=hooks)
    try:
        uid = mb.deliver(ENV, RAW).result(timeout=10)
        assert mb.summary(uid)["Subject"] == "hooked"
        assert mb.relay_history(uid)["Queue"] == []
        assert calls == [uid]  # a hook that raised does not stop the next one
    finally:
        mb.close()


def test_combine_joins_the_services_hooks_and_refuses_two_of_a_single_hook() -> None:
    a, b = DeliveryHooks(after_commit=(print,)), DeliveryHooks(outbox_ready=print)
    both = combine(a, b, DeliveryHooks(after_commit=(repr,)))
    assert both.after_commit == (print, repr)
    assert both.outbox_ready is print
    with pytest.raises(ValueError, match="outbox_ready"):
        combine(b, b)


def test_relay_plans_a_message_stored_before_its_worker_starts(tmp_path: Path) -> None:
    # No start-order rule: the hooks exist from the mailbox's birth, so a message stored before
    # the relay worker runs still has its copy queued with it (the worker sends it later).
    yaml = tmp_path / "forward.yaml"
    yaml.write_text('to: "copy@example.net"\nhost: "127.0.0.1"\nport: 9\n')
    config = Config(database=":memory:", smtp_forward_config=str(yaml))
    relay = Relay(config)
    mb = Mailbox(config, hooks=relay.hooks())
    try:
        uid = mb.deliver(ENV, RAW, origin={"Protocol": "ESMTP"}).result(timeout=10)
        queue = mb.relay_history(uid)["Queue"]
        assert [(q["Kind"], q["To"], q["State"]) for q in queue] == [
            ("forward", ["copy@example.net"], "pending")
        ]
    finally:
        relay.stop()
        mb.close()


def _patched_mailbox_attributes(path: Path) -> list[str]:
    """Assignments like `x.mailbox.name = ...` or `mailbox.name.append(...)` outside mailbox/."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[ast.expr] = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "remove", "extend", "insert", "clear")
        ):
            targets = [node.func.value]
        for t in targets:
            if not isinstance(t, ast.Attribute):
                continue
            owner = t.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name in ("mailbox", "mb", "_mailbox") and t.attr != "config":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(t)}")
    return found


def test_nothing_outside_the_mailbox_patches_a_mailbox() -> None:
    # Relay and checks plug in through DeliveryHooks at construction; setting a Mailbox's
    # attributes (or appending to its lists) from outside hid the wiring and its start order.
    patched = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if "mailbox" not in path.relative_to(PACKAGE).parts[:1]
        for hit in _patched_mailbox_attributes(path)
    ]
    assert patched == []
