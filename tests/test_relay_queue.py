"""Monitoring the relay queue and SMTP sessions: the outbox gauges, GET /api/v1/relay/queue,
`mailpit-py queue`, and the session-duration and relay-delivery histograms, each read from a
real server relaying to a real upstream SMTP server on loopback."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_metrics import Samples, scrape, value
from test_relay import MESSAGE, relay_yaml
from upstream import UpstreamServer, free_port

from helpers import REPO, make_server, wait_until
from mailpit_py.server import Server

HELD = "451 4.3.0 greylisted, try again later"


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as up:
        yield up


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def run(**overrides: Any) -> Server:
        mp = make_server(enable_prometheus="true", **overrides).start()
        started.append(mp)
        return mp

    yield run
    for mp in started:
        mp.stop()


def queue_api(mp: Server) -> dict[str, Any]:
    with urllib.request.urlopen(mp.http_url + "api/v1/relay/queue", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "application/json"
        data: dict[str, Any] = json.loads(resp.read())
        return data


def every(samples: Samples, name: str) -> float:
    """A sample summed over all its label sets."""
    return sum(v for (n, _), v in samples.items() if n == name)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailpit_py", "queue", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        cwd=REPO,
    )


def send(mp: Server, rcpts: list[str]) -> None:
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("app@app.test", rcpts, MESSAGE)


def held_server(
    start: Callable[..., Server], up: UpstreamServer, tmp_path: Path, **extra: Any
) -> Server:
    """A server whose one relayed copy the upstream greylists: it stays in the outbox, tried
    once, the next try an hour away."""
    up.rcpt_replies["bob@example.test"] = [HELD] * 5
    mp = start(
        smtp_relay_config=relay_yaml(tmp_path, up.port),
        smtp_relay_all=True,
        smtp_relay_retry_delay=3600,
        **extra,
    )
    send(mp, ["bob@example.test"])
    wait_until(
        lambda: [q for q in queue_api(mp)["Queue"] if q["Attempts"] == 1],
        what="the first attempt recorded",
    )
    return mp


def test_outbox_gauges_read_the_queue_at_scrape_time(
    start: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    mp = held_server(start, upstream, tmp_path)
    url = mp.http_url + "metrics"
    assert value(scrape(url), "mailpit_relay_outbox_messages") == 1
    # The age grows between scrapes: it is computed from the store, not cached.
    first = value(scrape(url), "mailpit_relay_outbox_oldest_seconds")
    assert first > 0
    later = wait_until(
        lambda: (v := value(scrape(url), "mailpit_relay_outbox_oldest_seconds")) > first and v,
        what="an older oldest entry",
    )
    assert later < 60
    # Nothing was final: no delivery latency observed, the retry counted as an attempt.
    samples = scrape(url)
    assert value(samples, "mailpit_relay_attempts_total", outcome="retry") == 1
    assert value(samples, "mailpit_relay_delivery_seconds_count", outcome="retry") == 0


def test_empty_outbox_gauges_are_zero(start: Callable[..., Server]) -> None:
    mp = start()
    samples = scrape(mp.http_url + "metrics")
    assert ("mailpit_relay_outbox_messages", ()) in samples
    assert value(samples, "mailpit_relay_outbox_messages") == 0
    assert value(samples, "mailpit_relay_outbox_oldest_seconds") == 0


def test_queue_route_lists_each_pending_copy(
    start: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    mp = held_server(start, upstream, tmp_path)
    listing = queue_api(mp)
    assert listing["Total"] == 1 and listing["OldestSeconds"] > 0
    (item,) = listing["Queue"]
    assert mp.mailbox is not None
    msg_id = mp.mailbox.list_messages()[0]["ID"]
    assert item["MessageID"] == msg_id
    assert item["Kind"] == "relay"
    assert item["From"] == "app@app.test"
    assert item["To"] == ["bob@example.test"]
    assert item["Attempts"] == 1
    assert item["LastError"].endswith(HELD)
    assert item["AgeSeconds"] > 0
    # An hour away (the retry delay), in the API's RFC 3339 UTC form.
    next_at = time.mktime(time.strptime(item["NextAttempt"][:19], "%Y-%m-%dT%H:%M:%S"))
    created = time.mktime(time.strptime(item["Created"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert 3500 < next_at - created < 3700


def test_queue_route_limit_and_bad_limit(start: Callable[..., Server]) -> None:
    mp = start()
    with urllib.request.urlopen(mp.http_url + "api/v1/relay/queue?limit=5", timeout=10) as r:
        assert json.loads(r.read()) == {"Total": 0, "OldestSeconds": 0.0, "Queue": []}
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(mp.http_url + "api/v1/relay/queue?limit=0", timeout=10)
    assert err.value.code == 400
    assert "limit must be between 1" in err.value.read().decode()


def test_queue_command_prints_one_line_per_copy(
    start: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    db = tmp_path / "mail.db"
    mp = held_server(start, upstream, tmp_path, database=str(db))
    (item,) = queue_api(mp)["Queue"]
    for where in (["--url", mp.http_url], ["--database", str(db)]):
        res = cli(*where)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        row = next(line for line in lines if line.split()[0] == str(item["ID"]))
        assert item["MessageID"] in row and "bob@example.test" in row
        assert row.split()[2] == "1"  # attempts
        assert item["NextAttempt"] in row
        assert HELD in res.stdout
        assert lines[-1].startswith("-- 1 queued")
        as_json = json.loads(cli(*where, "--json").stdout)
        assert [q["ID"] for q in as_json["Queue"]] == [item["ID"]]


def test_queue_command_on_an_empty_queue_and_without_a_server(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    mp = start()
    res = cli("--url", mp.http_url)
    assert res.returncode == 0 and res.stdout.strip() == "relay queue is empty"
    res = cli("--url", f"http://127.0.0.1:{free_port()}/")
    assert res.returncode == 75
    assert "is mailpit-py running there?" in res.stderr and "--url" in res.stderr
    res = cli("--database", str(tmp_path / "missing.db"))
    assert res.returncode == 66 and "no such database file" in res.stderr


def test_relay_delivery_histogram_by_outcome(
    start: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    upstream.rcpt_replies["nobody@example.test"] = ["550 5.1.1 no such user"]
    upstream.rcpt_replies["later@example.test"] = [HELD]
    mp = start(
        smtp_relay_config=relay_yaml(tmp_path, upstream.port),
        smtp_relay_all=True,
        smtp_relay_retry_delay=0.05,
    )
    url = mp.http_url + "metrics"
    began = time.time()
    send(mp, ["bob@example.test"])
    send(mp, ["nobody@example.test"])
    send(mp, ["later@example.test"])  # sent on the second try: one observation, once final
    samples = wait_until(
        lambda: (
            (s := scrape(url))
            and value(s, "mailpit_relay_delivery_seconds_count", outcome="sent") == 2
            and value(s, "mailpit_relay_delivery_seconds_count", outcome="failed") == 1
            # The timing is observed as the answer comes, the outbox row updated just after.
            and value(s, "mailpit_relay_outbox_messages") == 0
            and s
        ),
        what="three final answers and an empty outbox",
    )
    assert value(samples, "mailpit_relay_attempts_total", outcome="retry") == 1
    assert value(samples, "mailpit_relay_delivery_seconds_bucket", outcome="sent", le="+Inf") == 2
    total = value(samples, "mailpit_relay_delivery_seconds_sum", outcome="sent")
    # From queueing to the final answer: positive, within the test's own time.
    assert 0 < total <= 2 * (time.time() - began)


def test_smtp_session_duration_histogram(start: Callable[..., Server]) -> None:
    mp = start()
    url = mp.http_url + "metrics"
    began = time.monotonic()
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.noop()
    name = "mailpit_smtp_session_duration_seconds"
    samples = wait_until(
        lambda: (s := scrape(url)) and every(s, f"{name}_count") == 2 and s,
        what="two sessions observed",
    )
    # Measured once the server has recorded both: a session ends when the server sees the
    # close, which may come a moment after the client has left.
    elapsed = time.monotonic() - began
    assert value(samples, f"{name}_count", outcome="delivered") == 1
    assert value(samples, f"{name}_count", outcome="no mail") == 1
    total = every(samples, f"{name}_sum")
    assert 0 < total <= elapsed
    # The DATA-to-commit histogram is still there beside it.
    assert value(samples, "mailpit_commit_latency_seconds_count") == 1
