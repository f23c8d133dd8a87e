"""Mailbox routing over real SMTP: each route (AUTH username, recipient glob and capture,
listener, header), --mailbox-auto, unrouted default or refused with its exact reply, mailboxes
named in the settings made at start-up, and a message for two mailboxes stored once in each."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from pathlib import Path

from helpers import RawClient, wait_until
from mailpit_py.server import Server

AUTH = {"smtp_auth_accept_any": True, "smtp_auth_allow_insecure": True}

Start = Callable[..., Server]


def send(
    mp: Server,
    rcpts: Sequence[str],
    *,
    user: str = "",
    headers: str = "",
    listener: str = "default",
) -> str:
    """One message over SMTP; the server's DATA reply text (it names the stored ID)."""
    body = f"From: app@sender.test\r\nSubject: routing\r\n{headers}\r\nhello\r\n"
    with smtplib.SMTP(*mp.listener_address(listener), timeout=10) as client:
        client.ehlo()
        if user:
            client.login(user, "secret")
        client.mail("app@sender.test")
        for rcpt in rcpts:
            code, reply = client.rcpt(rcpt)
            assert code == 250, reply
        code, reply = client.data(body.encode())
        assert code == 250, reply
        return reply.decode()


def boxes(mp: Server) -> dict[str, int]:
    assert mp.mailbox is not None
    return {info.name: info.total for info in mp.mailbox.boxes()}


def ids(mp: Server, box: str) -> list[str]:
    assert mp.mailbox is not None
    return [m["ID"] for m in mp.mailbox.list_messages(box=box)]


def envelope_to(mp: Server, box: str) -> list[str]:
    assert mp.mailbox is not None
    (uid,) = ids(mp, box)
    return list(mp.mailbox.get(uid, box=box).detail["Envelope"]["To"])


def test_auth_username_route(server_factory: Start) -> None:
    mp = server_factory(mailbox_routes=("ci=auth:ci-*",), **AUTH)
    send(mp, ["a@x.test"], user="CI-Runner")
    send(mp, ["a@x.test"], user="someone")
    send(mp, ["a@x.test"])
    assert boxes(mp) == {"ci": 1, "default": 2}


def test_rcpt_glob_route_is_case_insensitive(server_factory: Start) -> None:
    mp = server_factory(mailbox_routes=("shop=rcpt:*@shop.test",))
    send(mp, ["Orders@SHOP.test"])
    send(mp, ["orders@blog.test"])
    assert boxes(mp) == {"shop": 1, "default": 1}
    assert envelope_to(mp, "shop") == ["Orders@SHOP.test"]


def test_rcpt_capture_makes_the_mailbox_on_first_use(server_factory: Start) -> None:
    mp = server_factory(mailbox_routes=("{mailbox}=rcpt:*@{mailbox}.review.test",))
    assert set(boxes(mp)) == {"default"}
    send(mp, ["qa@PR-41.review.test"])
    send(mp, ["dev@pr-41.review.test"])
    send(mp, ["qa@pr-42.review.test"])
    assert boxes(mp) == {"default": 0, "pr-41": 2, "pr-42": 1}


def test_listener_route(server_factory: Start) -> None:
    mp = server_factory(smtp_listeners=("billing=127.0.0.1:0,mailbox=billing",))
    assert boxes(mp) == {"billing": 0, "default": 0}  # named in the settings: made at start
    send(mp, ["a@x.test"], listener="billing")
    send(mp, ["a@x.test"])
    assert boxes(mp) == {"billing": 1, "default": 1}


def test_header_routes_to_existing_mailboxes_only(server_factory: Start, tmp_path: Path) -> None:
    path = tmp_path / "boxes.yml"
    path.write_text("mailboxes:\n  - name: archive\nheader: X-Mailbox\n")
    mp = server_factory(mailbox_config=str(path))
    assert boxes(mp) == {"archive": 0, "default": 0}
    send(mp, ["a@x.test"], headers="X-Mailbox: Archive\r\n")
    send(mp, ["a@x.test"], headers="X-Mailbox:\r\n =?utf-8?q?archive?=\r\n")  # folded, encoded
    # A name that is no mailbox is ignored: a sender cannot make mailboxes by header.
    send(mp, ["a@x.test"], headers="X-Mailbox: sneaky\r\n")
    assert boxes(mp) == {"archive": 2, "default": 1}
    # A mailbox made since (here by the API's facade) may be named.
    assert mp.mailbox is not None
    mp.mailbox.create_box("later")
    send(mp, ["a@x.test"], headers="X-Mailbox: later\r\n")
    assert boxes(mp)["later"] == 1


def test_header_rule_matches_the_header_value(server_factory: Start) -> None:
    mp = server_factory(
        mailbox_routes=("billing=header:invoice-*", "shop=rcpt:*@shop.test"),
        mailbox_header="X-Route",
    )
    send(mp, ["a@shop.test"], headers="X-Route: Invoice-2041\r\n")  # the first route wins
    send(mp, ["a@shop.test"], headers="X-Route: receipt\r\n")
    assert boxes(mp) == {"billing": 1, "default": 0, "shop": 1}


def test_header_is_ignored_when_header_routing_is_off(server_factory: Start) -> None:
    mp = server_factory(mailbox_routes=("archive=rcpt:*@archive.test",))
    send(mp, ["a@x.test"], headers="X-Mailbox: archive\r\n")
    assert boxes(mp) == {"archive": 0, "default": 1}


def test_mailbox_auto_makes_one_per_username(server_factory: Start) -> None:
    mp = server_factory(mailbox_auto=True, **AUTH)
    send(mp, ["a@x.test"], user="CI@Shop.Example")
    send(mp, ["b@x.test"], user="ci@shop.example")
    send(mp, ["c@x.test"])  # not authenticated: unrouted, kept in default
    assert boxes(mp) == {"ci@shop.example": 2, "default": 1}


def test_unrouted_default_keeps_the_mail(server_factory: Start) -> None:
    mp = server_factory(mailbox_routes=("shop=rcpt:*@shop.test",), mailbox_unrouted="default")
    send(mp, ["nobody@else.test"])
    assert boxes(mp) == {"default": 1, "shop": 0}


def test_unrouted_refuse_at_rcpt_with_the_exact_reply(server_factory: Start) -> None:
    mp = server_factory(mailbox_routes=("shop=rcpt:*@shop.test",), mailbox_unrouted="refuse")
    client = RawClient(mp.smtp_address)
    try:
        client.cmd("EHLO client.test")
        assert client.cmd("MAIL FROM:<app@sender.test>").startswith("250")
        assert client.cmd("RCPT TO:<nobody@else.test>") == (
            "550 5.1.1 <nobody@else.test>: no mailbox for this recipient"
        )
        assert client.cmd("RCPT TO:<orders@shop.test>").startswith("250")
        assert client.cmd("DATA").startswith("354")
        client.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
        assert client.reply().startswith("250 2.0.0")
    finally:
        client.close()
    assert boxes(mp) == {"default": 0, "shop": 1}
    assert envelope_to(mp, "shop") == ["orders@shop.test"]


def test_unrouted_refuse_at_data_when_the_header_could_route(
    server_factory: Start, tmp_path: Path
) -> None:
    path = tmp_path / "boxes.yml"
    path.write_text("mailboxes:\n  - name: archive\nheader: X-Mailbox\nunrouted: refuse\n")
    mp = server_factory(mailbox_config=str(path))
    client = RawClient(mp.smtp_address)
    try:
        client.cmd("EHLO client.test")
        for header, reply in (
            (b"X-Mailbox: nothing-here", "550 5.1.1 <a@x.test>: no mailbox for this recipient"),
            (b"X-Mailbox: archive", "250 2.0.0 Ok: queued as "),
        ):
            assert client.cmd("MAIL FROM:<app@sender.test>").startswith("250")
            assert client.cmd("RCPT TO:<a@x.test>").startswith("250")  # the header may route
            assert client.cmd("DATA").startswith("354")
            client.send(header + b"\r\nSubject: x\r\n\r\nhi\r\n.\r\n")
            assert client.reply().startswith(reply)
    finally:
        client.close()
    assert boxes(mp) == {"archive": 1, "default": 0}


def test_two_mailboxes_get_one_copy_each_with_their_own_recipients(
    server_factory: Start, database: str
) -> None:
    mp = server_factory(
        mailbox_routes=("shop=rcpt:*@shop.test", "blog=rcpt:*@blog.test"), database=database
    )
    reply = send(mp, ["a@shop.test", "b@blog.test", "c@shop.test", "d@else.test"])
    assert boxes(mp) == {"blog": 1, "default": 1, "shop": 1}
    assert envelope_to(mp, "shop") == ["a@shop.test", "c@shop.test"]
    assert envelope_to(mp, "blog") == ["b@blog.test"]
    assert envelope_to(mp, "default") == ["d@else.test"]
    (shop,), (blog,), (default,) = ids(mp, "shop"), ids(mp, "blog"), ids(mp, "default")
    assert len({shop, blog, default}) == 3
    assert reply.endswith(shop)  # the 250 names the first mailbox's copy
    # Each copy's session log says where each recipient went and why.
    assert mp.mailbox is not None
    lines = [entry[2] for entry in mp.mailbox.get(shop, box="shop").transcript]
    assert "mailbox shop for a@shop.test (route --mailbox-route shop=rcpt:*@shop.test)" in lines
    assert "mailbox blog for b@blog.test (route --mailbox-route blog=rcpt:*@blog.test)" in lines
    assert "mailbox default for d@else.test (no route: unrouted default)" in lines


def test_session_log_is_in_the_mailbox_of_its_message(server_factory: Start) -> None:
    mp = server_factory(mailbox_routes=("shop=rcpt:*@shop.test",))
    send(mp, ["a@shop.test"])
    assert mp.mailbox is not None
    # The session is recorded when the client has gone.
    wait_until(lambda: mp.mailbox.session_count(box="shop") == 1, what="the shop session")  # type: ignore[union-attr]
    assert mp.mailbox.session_count(box="default") == 0


def test_no_mailbox_settings_keep_one_mailbox_as_before(server_factory: Start) -> None:
    mp = server_factory()
    send(mp, ["a@x.test", "b@y.test"], headers="X-Mailbox: other\r\n")
    assert boxes(mp) == {"default": 1}
    assert envelope_to(mp, "default") == ["a@x.test", "b@y.test"]


def test_named_mailboxes_made_at_start_survive_a_restart(
    server_factory: Start, database: str
) -> None:
    settings = {"mailbox_routes": ("shop=rcpt:*@shop.test",), "database": database}
    first = server_factory(**settings)
    send(first, ["a@shop.test"])
    first.stop()
    again = server_factory(**settings)  # the mailbox exists already: start-up goes on
    assert boxes(again) == {"default": 0, "shop": 1}
