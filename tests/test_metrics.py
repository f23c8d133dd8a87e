"""Prometheus metrics: /metrics on the UI listener or its own, parsed with prometheus-client's
parser, changing as messages are accepted and refused."""

from __future__ import annotations

import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import WsClient, make_server, wait_until
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.server import Server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "text/plain"
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def families(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return {f.name: f.type for f in text_string_to_metric_families(resp.read().decode())}


MESSAGE = b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"


def test_metrics_change_after_accepted_and_refused_sessions(
    server_factory: Callable[..., Server],
) -> None:
    mp = server_factory(enable_prometheus="true", max_message_size=2000, smtp_max_recipients=2)
    url = mp.http_url + "metrics"
    before = scrape(url)
    assert value(before, "mailpit_messages") == 0
    assert value(before, "mailpit_smtp_accepted_total") == 0

    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
    with smtplib.SMTP(*mp.smtp_address) as client:  # refused: too big (552)
        with pytest.raises(smtplib.SMTPSenderRefused) as big:  # at MAIL FROM ... SIZE=
            client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE + b"x" * 5000)
        assert big.value.smtp_code == 552
    with smtplib.SMTP(*mp.smtp_address) as client:  # refused: too many recipients (452)
        client.ehlo()
        client.mail("ann@example.com")
        for rcpt in ("a@example.com", "b@example.com"):
            assert client.rcpt(rcpt)[0] == 250
        assert client.rcpt("c@example.com")[0] == 452

    after = scrape(url)
    assert value(after, "mailpit_messages") == 2
    assert value(after, "mailpit_messages_unread") == 2
    assert value(after, "mailpit_smtp_accepted_total") == 2
    assert value(after, "mailpit_smtp_accepted_size_bytes_total") == 2 * len(MESSAGE)
    assert value(after, "mailpit_smtp_rejected_total") >= 1  # the 552
    assert value(after, "mailpit_database_size_bytes") > 0
    assert value(after, "mailpit_commit_latency_seconds_count") == 2
    assert value(after, "mailpit_commit_latency_seconds_bucket", le="+Inf") == 2
    assert value(after, "mailpit_writer_batch_size_count") >= 1
    assert value(after, "mailpit_memory_usage_bytes") > 0

    # A deletion shows too, and the gauges follow.
    req = urllib.request.Request(mp.http_url + "api/v1/messages", method="DELETE")
    urllib.request.urlopen(req, timeout=10).close()
    gone = scrape(url)
    assert value(gone, "mailpit_messages") == 0
    assert value(gone, "mailpit_messages_deleted_total") == 2
    assert value(gone, "mailpit_smtp_accepted_total") == 2  # counters never go down


def test_every_family_is_exposed_before_anything_happened(server_factory: Callable[..., Server]):
    mp = server_factory(enable_prometheus="true")
    types = families(mp.http_url + "metrics")
    for name, kind in {
        "mailpit_messages": "gauge",
        "mailpit_messages_unread": "gauge",
        "mailpit_messages_deleted": "counter",
        "mailpit_smtp_accepted": "counter",
        "mailpit_smtp_rejected": "counter",
        "mailpit_smtp_accepted_size_bytes": "counter",
        "mailpit_database_size_bytes": "gauge",
        "mailpit_uptime_seconds": "gauge",
        "mailpit_smtp_sessions": "counter",
        "mailpit_smtp_replies": "counter",
        "mailpit_relay_attempts": "counter",
        "mailpit_webhook_deliveries": "counter",
        "mailpit_websocket_clients": "gauge",
        "mailpit_commit_latency_seconds": "histogram",
        "mailpit_writer_batch_size": "histogram",
        "mailpit_smtp_session_duration_seconds": "histogram",
        "mailpit_relay_delivery_seconds": "histogram",
        "mailpit_relay_outbox_messages": "gauge",
        "mailpit_relay_outbox_oldest_seconds": "gauge",
    }.items():
        assert types.get(name) == kind, name


def test_labelled_counters_come_from_the_telemetry(server_factory: Callable[..., Server]):
    mp = server_factory(enable_prometheus="true")
    assert mp.mailbox is not None
    tel = mp.mailbox.telemetry
    # What the SMTP layer and the relay bump; the metrics show each label set.
    tel.inc("smtp_sessions", "delivered")
    tel.inc("smtp_sessions", "delivered")
    tel.inc("smtp_sessions", "rejected")
    tel.inc("smtp_replies", "5xx", "max_size")
    tel.inc("relay_attempts", "failed")
    samples = scrape(mp.http_url + "metrics")
    assert value(samples, "mailpit_smtp_sessions_total", outcome="delivered") == 2
    assert value(samples, "mailpit_smtp_sessions_total", outcome="rejected") == 1
    assert value(samples, "mailpit_smtp_replies_total", code_class="5xx", rule="max_size") == 1
    assert value(samples, "mailpit_relay_attempts_total", outcome="failed") == 1


def test_each_server_reports_its_own_figures(server_factory: Callable[..., Server]) -> None:
    one = server_factory(enable_prometheus="true")
    two = server_factory(enable_prometheus="true")
    with smtplib.SMTP(*one.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
    assert value(scrape(one.http_url + "metrics"), "mailpit_smtp_accepted_total") == 1
    assert value(scrape(two.http_url + "metrics"), "mailpit_smtp_accepted_total") == 0


def test_websocket_clients_gauge_counts_connected_clients(
    server_factory: Callable[..., Server],
) -> None:

    mp = server_factory(enable_prometheus="true")
    url = mp.http_url + "metrics"
    ws = WsClient.connect(mp.http_url.replace("http://", "ws://") + "api/events")
    try:
        ws.receive(timeout=10)  # the hello stats frame: subscribed
        assert value(scrape(url), "mailpit_websocket_clients") == 1
    finally:
        ws.close()
    wait_until(lambda: value(scrape(url), "mailpit_websocket_clients") == 0, what="gauge at 0")


def test_metrics_on_their_own_listener(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(enable_prometheus="127.0.0.1:0")
    assert mp.metrics_http is not None
    host, port = mp.metrics_http.address
    assert port not in (0, mp.http_address[1])
    samples = scrape(f"http://{host}:{port}/metrics")
    assert ("mailpit_messages", ()) in samples
    with pytest.raises(urllib.error.HTTPError) as err:  # the UI listener says where they are
        urllib.request.urlopen(mp.http_url + "metrics", timeout=10)
    assert err.value.code == 404
    assert f"{host}:0" in err.value.read().decode()


def test_metrics_are_off_by_default(server: Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.http_url + "metrics", timeout=10)
    assert err.value.code == 404
    assert "--enable-prometheus" in err.value.read().decode()


@pytest.mark.parametrize("bad", ["yes please", "host:99999", "nohost"])
def test_bad_prometheus_address_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="--enable-prometheus"):
        validate(Config(enable_prometheus=bad))


def test_cli_accepts_mailpit_spellings() -> None:
    from mailpit_py.cli import config_from

    assert config_from(["--enable-prometheus"], {}).enable_prometheus == "true"
    assert config_from(["--enable-prometheus", "true"], {}).enable_prometheus == "true"
    assert config_from([], {"MP_ENABLE_PROMETHEUS": "false"}).enable_prometheus == ""
    assert config_from([], {"MP_ENABLE_PROMETHEUS": "0.0.0.0:9091"}).enable_prometheus == (
        "0.0.0.0:9091"
    )


def test_metrics_listener_address_in_use_is_explained() -> None:
    with make_server(enable_prometheus="127.0.0.1:0") as first:
        assert first.metrics_http is not None
        taken = f"127.0.0.1:{first.metrics_http.address[1]}"
        with pytest.raises(OSError, match="--enable-prometheus"):
            make_server(enable_prometheus=taken).start()
