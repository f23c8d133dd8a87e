"""The relay as an MTA against a real upstream on loopback: its own Received hop and EHLO name,
bounces (RFC 3464 delivery status notifications) delivered into the catcher, partial results
under forward-smtp-errors, MX routing through --dns-override."""

from __future__ import annotations

import email
import email.message
import smtplib
from collections.abc import Callable
from pathlib import Path

from test_relay import MESSAGE, history, http, relay_server, relay_yaml, upstream  # noqa: F401
from upstream import UpstreamServer

from helpers import make_server, wait_until
from mailpit_py.server import Server

HOST = "mail.catcher.test"


def overrides(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "dns-override.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def send_from(mp: Server, sender: str, rcpts: list[str], helo: str = "app.client.test") -> dict:
    with smtplib.SMTP(*mp.smtp_address, local_hostname=helo) as client:
        return client.sendmail(sender, rcpts, MESSAGE)


def messages(mp: Server) -> list[dict]:
    return mp.mailbox.list_messages()


def original(mp: Server) -> str:
    """The newest message that is not a bounce (a bounce may be stored before the 250)."""
    return wait_until(
        lambda: [m["ID"] for m in messages(mp) if m["Subject"] == "relay me"], what="the message"
    )[0]


def bounce_of(mp: Server, uid: str) -> tuple[str, email.message.Message]:
    """The delivery status notification recorded in the original's relay history."""
    dsn = wait_until(
        lambda: [a for a in history(mp, uid)["Attempts"] if a["Kind"] == "dsn"], what="a DSN"
    )[0]
    return dsn["Reply"], email.message_from_bytes(mp.mailbox.raw(dsn["Reply"]))


def test_a_relayed_copy_carries_the_relays_received_hop_and_ehlo_name(
    relay_server: Callable[..., Server],  # noqa: F811
    upstream: UpstreamServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    mp = relay_server(
        smtp_relay_config=relay_yaml(tmp_path, upstream.port),
        smtp_relay_all=True,
        smtp_hostname=HOST,
        dns_override=overrides(tmp_path, "1.0.0.127.in-addr.arpa PTR app-host.test"),
    )
    send_from(mp, "app@app.test", ["bob@example.test"])
    got = wait_until(lambda: upstream.received, what="the relayed copy")[0]
    uid = messages(mp)[0]["ID"]
    assert got.helo == HOST  # not smtplib's guess of this machine's name
    first = email.message_from_bytes(got.data).get_all("Received")[0]
    assert " ".join(first.split()).startswith(
        "Received: from app.client.test (app-host.test [127.0.0.1]) "
        f"by {HOST} (mailpit_py) with ESMTP id {uid} for <bob@example.test>;"[len("Received: ") :]
    )


def test_a_permanent_refusal_bounces_into_the_catcher_linked_to_the_original(
    relay_server: Callable[..., Server],  # noqa: F811
    upstream: UpstreamServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    mp = relay_server(
        smtp_relay_config=relay_yaml(tmp_path, upstream.port),
        smtp_relay_all=True,
        smtp_hostname=HOST,
    )
    upstream.rcpt_replies["carol@example.test"] = ["550 5.1.1 carol is unknown upstream"]
    send_from(mp, "app@app.test", ["bob@example.test", "carol@example.test"])
    uid = wait_until(lambda: messages(mp), what="the message")[0]["ID"]
    dsn_id, dsn = bounce_of(mp, uid)

    assert [r.rcpts for r in upstream.received] == [["bob@example.test"]]  # the DSN stays here
    stored = mp.mailbox.get(dsn_id)
    assert stored.detail["Envelope"]["From"] == ""  # the null reverse-path
    assert stored.detail["Envelope"]["To"] == ["app@app.test"]
    assert dsn["From"] == f"Mail Delivery System <MAILER-DAEMON@{HOST}>"
    assert dsn["X-Mailpit-Original-ID"] == uid
    assert dsn["References"] == "<original-id@app.test>"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    human, status, headers = dsn.get_payload()
    assert human.get_content_type() == "text/plain"
    assert "carol is unknown upstream" in human.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_rcpt = status.get_payload()
    assert per_message["Reporting-MTA"] == f"dns; {HOST}"
    assert per_rcpt["Final-Recipient"] == "rfc822; carol@example.test"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 carol is unknown upstream"
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: relay me" in headers.get_payload()
    assert "Hello through the relay" not in headers.get_payload()  # headers only
    outcomes = [a["Outcome"] for a in history(mp, uid)["Attempts"] if a["Kind"] == "relay"]
    assert outcomes == ["partial"]


def test_a_bounce_goes_into_the_mailbox_of_its_original(
    relay_server: Callable[..., Server],  # noqa: F811
    upstream: UpstreamServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    # A project reads its own bounces: the notification is stored beside the message it is
    # about, not in the default mailbox that another project reads.
    mp = relay_server(
        smtp_relay_config=relay_yaml(tmp_path, upstream.port),
        smtp_relay_all=True,
        smtp_hostname=HOST,
        mailbox_routes=("shop=rcpt:*@example.test",),
    )
    upstream.rcpt_replies["carol@example.test"] = ["550 5.1.1 carol is unknown upstream"]
    send_from(mp, "app@app.test", ["carol@example.test"])
    shop = wait_until(
        lambda: (lambda found: found if len(found) == 2 else None)(
            mp.mailbox.list_messages(box="shop")
        ),
        what="the message and its bounce in shop",
    )
    assert sorted(m["Subject"] for m in shop) == [
        "Undelivered Mail Returned to Sender",
        "relay me",
    ]
    assert mp.mailbox.counts(box="default") == (0, 0)


def test_no_bounce_for_a_message_with_the_null_sender(
    relay_server: Callable[..., Server],  # noqa: F811
    upstream: UpstreamServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    mp = relay_server(smtp_relay_config=relay_yaml(tmp_path, upstream.port), smtp_relay_all=True)
    upstream.rcpt_replies["carol@example.test"] = ["550 5.1.1 unknown", "550 5.1.1 unknown"]
    send_from(mp, "", ["carol@example.test"])
    first = wait_until(lambda: messages(mp), what="the message")[0]["ID"]
    # A second failing message with a sender: the worker sends in order, so once its bounce is
    # in, the first message's attempt (and any bounce of it) is done too.
    send_from(mp, "app@app.test", ["carol@example.test"])
    second = wait_until(lambda: len(messages(mp)) >= 2 and messages(mp)[0]["ID"], what="2nd")
    bounce_of(mp, second)
    assert [a["Kind"] for a in history(mp, first)["Attempts"]] == ["relay"]
    assert len(messages(mp)) == 3  # two messages and one bounce


def test_forward_smtp_errors_reports_a_mixed_result_as_partial(
    relay_server: Callable[..., Server],  # noqa: F811
    upstream: UpstreamServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    cfg = relay_yaml(tmp_path, upstream.port, **{"forward-smtp-errors": True})
    mp = relay_server(smtp_relay_config=cfg, smtp_relay_all=True)
    upstream.rcpt_replies["carol@example.test"] = ["550 5.1.1 carol is unknown upstream"]
    upstream.rcpt_replies["dave@example.test"] = ["451 4.3.0 try dave later"]
    # Accepted: bob went out; carol is bounced and dave retried, not a 550 for everyone.
    assert send_from(mp, "app@app.test", ["bob@example.test", "carol@example.test"]) == {}
    uid = original(mp)
    attempt = history(mp, uid)["Attempts"][0]
    assert attempt["Outcome"] == "partial"
    assert "<carol@example.test> 550 5.1.1 carol is unknown upstream" in attempt["Reply"]
    _, dsn = bounce_of(mp, uid)
    per_rcpt = dsn.get_payload()[1].get_payload()[1]
    assert per_rcpt["Final-Recipient"] == "rfc822; carol@example.test"

    assert send_from(mp, "app@app.test", ["bob@example.test", "dave@example.test"]) == {}
    wait_until(
        lambda: sorted(sum((r.rcpts for r in upstream.received), [])).count("dave@example.test"),
        what="dave's retried copy",
    )


def test_mx_routing_follows_dns_override_and_records_each_host_tried(tmp_path: Path) -> None:
    with UpstreamServer(auth=False) as mx:  # MTAs deliver to MX hosts unauthenticated
        mx_routing(mx, tmp_path)


def mx_routing(mx: UpstreamServer, tmp_path: Path) -> None:
    cfg = tmp_path / "relay.yaml"
    cfg.write_text(f"port: {mx.port}\nstarttls: true\nallow-insecure: true\n")
    dns = overrides(
        tmp_path,
        "example.test MX 10 mx1.example.test",
        "example.test MX 20 mx2.example.test",
        "mx1.example.test A 127.0.0.2",  # nothing listens there: the next host is tried
        "mx2.example.test A 127.0.0.1",
    )
    with make_server(
        smtp_relay_config=str(cfg),
        smtp_relay_mx=True,
        dns_override=dns,
        smtp_relay_retry_delay=0.05,
    ) as mp:
        send_from(mp, "app@app.test", ["bob@example.test"])
        uid = wait_until(lambda: messages(mp), what="the message")[0]["ID"]
        status, text = http(
            mp, "POST", f"api/v1/message/{uid}/release", {"To": ["bob@example.test"]}
        )
        assert (status, text) == (200, "ok")
        (attempt,) = history(mp, uid)["Attempts"]
        assert f"mx1.example.test [127.0.0.2]:{mx.port}: " in attempt["Server"]
        assert "(next host)" in attempt["Server"]
        assert f"mx2.example.test [127.0.0.1]:{mx.port}" in attempt["Server"]
        assert [r.rcpts for r in mx.received] == [["bob@example.test"]]


def test_reverse_dns_of_smtp_clients_follows_dns_override(tmp_path: Path) -> None:
    dns = overrides(tmp_path, "1.0.0.127.in-addr.arpa PTR app-host.test")
    with make_server(smtp_reverse_dns=True, dns_override=dns) as mp:
        send_from(mp, "app@app.test", ["bob@example.test"])
        uid = wait_until(lambda: messages(mp), what="the message")[0]["ID"]
        received = email.message_from_bytes(mp.mailbox.raw(uid))["Received"]
        assert "from app.client.test (app-host.test [127.0.0.1])" in " ".join(received.split())
