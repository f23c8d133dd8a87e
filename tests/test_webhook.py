"""Webhook: a real HTTP receiver (http.server on port 0) gets every new message, in order,
with Mailpit's body and headers, through failures, and never slows SMTP down."""

from __future__ import annotations

import json
import smtplib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from helpers import wait_until
from mailpit_py import events
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.observability.telemetry import Telemetry
from mailpit_py.observability.webhook import Webhook
from mailpit_py.server import Server


class Receiver:
    """An HTTP server recording each POST; it can fail the first N and hold requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts: list[dict[str, Any]] = []  # every request, failed ones too
        self.received: list[dict[str, Any]] = []  # the bodies it answered 200 to
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()
        self.release.set()
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.release.wait(30)
                with owner.lock:
                    owner.attempts.append(body)
                    failing = len(owner.attempts) <= owner.fail_first
                    if not failing:
                        owner.received.append(body)
                        owner.headers.append(dict(self.headers))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        r = Receiver(**kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def message(subject: str) -> bytes:
    return (
        f"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nSubject: {subject}\r\n\r\nHi.\r\n"
    ).encode()


def send(mp: Server, *subjects: str) -> None:
    with smtplib.SMTP(*mp.smtp_address) as client:
        for subject in subjects:
            client.sendmail("ann@example.com", ["bob@example.com"], message(subject))


def test_receiver_gets_every_message_in_order_after_failing_twice(
    server_factory: Callable[..., Server], receiver_factory: Callable[..., Receiver]
) -> None:
    receiver = receiver_factory(fail_first=2)
    mp = server_factory(webhook_url=receiver.url, webhook_limit=0, label="CI box")
    send(mp, "one", "two", "three")
    wait_until(lambda: len(receiver.received) == 3, timeout=20, what="three webhook deliveries")
    assert [b["Subject"] for b in receiver.received] == ["one", "two", "three"]
    # The two failures were both tries of the first message: nothing overtook it.
    assert [b["Subject"] for b in receiver.attempts] == ["one", "one", "one", "two", "three"]
    # Mailpit's body: the message summary, as the API lists it.
    assert mp.mailbox is not None
    stored = {m["ID"]: m for m in mp.mailbox.list_messages()}
    for body in receiver.received:
        assert body == stored[body["ID"]]
    headers = receiver.headers[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("mailpit-py/")
    assert headers["Mailpit-Label"] == "CI box"
    assert headers["Mailpit-Mailbox"] == "default"
    tel = mp.mailbox.telemetry
    # Counted once the receiver's answer is read, which may be just after it recorded the body.
    wait_until(lambda: tel.counter("webhook_deliveries").get(("delivered",)) == 3, what="count")
    assert tel.counter("webhook_deliveries")[("retried",)] == 2


def test_each_request_names_the_messages_mailbox_in_a_header(
    server_factory: Callable[..., Server], receiver_factory: Callable[..., Receiver]
) -> None:
    # The body is Mailpit's summary, which names no mailbox: a receiver serving several
    # projects tells them apart by the header.
    receiver = receiver_factory()
    mp = server_factory(
        webhook_url=receiver.url, webhook_limit=0, mailbox_routes=("shop=rcpt:*@shop.test",)
    )
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@shop.test"], message("for shop"))
        client.sendmail("ann@example.com", ["bob@example.com"], message("for default"))
    wait_until(lambda: len(receiver.received) == 2, timeout=20, what="two webhook deliveries")
    by_subject = {
        body["Subject"]: head["Mailpit-Mailbox"]
        for body, head in zip(receiver.received, receiver.headers, strict=True)
    }
    assert by_subject == {"for shop": "shop", "for default": "default"}


def test_a_stuck_receiver_never_slows_smtp(
    server_factory: Callable[..., Server], receiver_factory: Callable[..., Receiver]
) -> None:
    receiver = receiver_factory()
    receiver.release.clear()  # every request hangs until released
    mp = server_factory(webhook_url=receiver.url, webhook_limit=0)
    send(mp, *(f"m{i}" for i in range(10)))  # each got its 250 while the receiver hangs
    assert not receiver.release.is_set()
    assert mp.mailbox is not None and mp.mailbox.counts()[0] == 10
    assert receiver.received == []
    receiver.release.set()
    wait_until(lambda: len(receiver.received) == 10, timeout=20, what="ten deliveries")
    assert [b["Subject"] for b in receiver.received] == [f"m{i}" for i in range(10)]


def test_events_over_the_queue_bound_are_dropped_and_counted(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory()
    receiver.release.clear()
    bus = events.Bus()
    tel = Telemetry()
    hook = Webhook(receiver.url, bus, tel, limit=0, queue_size=2).start()
    try:
        for i in range(5):
            bus.publish(events.NewMessage({"ID": str(i), "Subject": f"s{i}"}))
        wait_until(lambda: hook.dropped == 3, what="three dropped")
        assert tel.counter("webhook_deliveries")[("dropped",)] == 3
        receiver.release.set()
        wait_until(lambda: len(receiver.received) == 2, what="the two queued delivered")
        assert [b["ID"] for b in receiver.received] == ["0", "1"]
        wait_until(lambda: hook.pending == 0, what="an empty queue")
    finally:
        hook.stop()


def test_webhook_rate_spaces_requests_but_delivers_all(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory()
    bus = events.Bus()
    tel = Telemetry()
    hook = Webhook(receiver.url, bus, tel, limit=0, rate=50).start()
    try:
        for i in range(5):
            bus.publish(events.NewMessage({"ID": str(i)}))
        wait_until(lambda: len(receiver.received) == 5, what="all five, over the limit too")
        assert [b["ID"] for b in receiver.received] == ["0", "1", "2", "3", "4"]
        assert hook.dropped == 0
    finally:
        hook.stop()


def test_a_receiver_that_always_fails_is_given_up_and_the_next_is_sent(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(fail_first=3)
    bus = events.Bus()
    tel = Telemetry()
    hook = Webhook(receiver.url, bus, tel, limit=0, attempts=3, backoff=0.01).start()
    try:
        bus.publish(events.NewMessage({"ID": "lost"}))
        bus.publish(events.NewMessage({"ID": "kept"}))
        wait_until(lambda: len(receiver.received) == 1, what="the second event delivered")
        assert receiver.received == [{"ID": "kept"}]
        assert tel.counter("webhook_deliveries")[("failed",)] == 1
    finally:
        hook.stop()


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com/hook", "http://"])
def test_bad_webhook_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="--webhook-url"):
        validate(Config(webhook_url=url))


def test_webhook_limit_sends_the_first_message_of_each_window_as_mailpit(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory()
    bus = events.Bus()
    tel = Telemetry()
    hook = Webhook(receiver.url, bus, tel, limit=3600).start()  # one an hour: only the first
    try:
        for i in range(5):
            bus.publish(events.NewMessage({"ID": str(i)}))
        wait_until(lambda: hook.limited == 4 and len(receiver.received) == 1, what="1 sent")
        assert receiver.received == [{"ID": "0"}]
        assert tel.counter("webhook_deliveries")[("limited",)] == 4
        assert hook.dropped == 0
    finally:
        hook.stop()


def test_webhook_limit_opens_again_once_its_window_has_passed(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory()
    bus = events.Bus()
    hook = Webhook(receiver.url, bus, Telemetry(), limit=1).start()
    published = 0

    def publish_until_a_second_is_sent() -> bool:
        nonlocal published
        bus.publish(events.NewMessage({"ID": str(published)}))
        published += 1
        return len(receiver.received) >= 2

    try:
        wait_until(publish_until_a_second_is_sent, what="a request in the next window")
        wait_until(lambda: hook.limited + 2 == published, what="every message accounted for")
        first, second = (int(b["ID"]) for b in receiver.received[:2])
        assert first == 0 and second > 1  # the messages in between were not sent
        assert hook.limited == published - 2
    finally:
        hook.stop()


def test_webhook_limit_and_rate_from_mailpits_variable_and_ours() -> None:
    from mailpit_py.cli import config_from

    cfg = config_from([], {"MP_WEBHOOK_LIMIT": "5", "MP_WEBHOOK_RATE": "3"})
    assert (cfg.webhook_limit, cfg.webhook_rate) == (5, 3)
    with pytest.raises(ConfigError, match="--webhook-rate"):
        validate(Config(webhook_rate=-1))


def test_a_label_with_line_breaks_is_one_line_in_the_header_as_mailpits(
    receiver_factory: Callable[..., Receiver], server_factory: Callable[..., Server]
) -> None:
    # Read raw, a label with a line break made every request fail: no header may hold one.
    from mailpit_py.cli import config_from

    label = config_from([], {"MP_LABEL": "  CI\n  box\r\n"}).label
    receiver = receiver_factory()
    mp = server_factory(webhook_url=receiver.url, webhook_limit=0, label=label)
    send(mp, "labelled")
    wait_until(lambda: len(receiver.received) == 1, timeout=20, what="the webhook delivery")
    assert receiver.headers[0]["Mailpit-Label"] == "CI box"
