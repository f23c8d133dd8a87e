"""Tags as Mailpit makes them: clean names, plus-address tags, tagging rules, renames."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, send_raw
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.mailbox.tags import clean_tag, title_case
from mailpit_py.models import Envelope
from mailpit_py.server import Server


def message(subject: str, to: str = "bob@shop.test", sender: str = "ann@example.com") -> bytes:
    return (
        f"From: Ann <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "X-Tags: Alpha, beta/gamma\r\n\r\nBody of the crème brûlée recipe.\r\n"
    ).encode()


def call(mp: Server, method: str, path: str, body: Any = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(mp.http_url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode().rstrip("\n")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().rstrip("\n")


def tags_of(mp: Server, uid: str) -> list[str]:
    return sorted(json.loads(call(mp, "GET", f"api/v1/message/{uid}")[1])["Tags"])


@pytest.fixture
def box() -> Iterator[Callable[..., Mailbox]]:
    made: list[Mailbox] = []

    def make(**settings: Any) -> Mailbox:
        mb = Mailbox(Config(database=":memory:", max_messages=0, **settings))
        made.append(mb)
        return mb

    yield make
    for mb in made:
        mb.close()


def stored_tags(mb: Mailbox, raw: bytes, username: str = "") -> list[str]:
    uid = mb.deliver(Envelope("ann@example.com", ("bob@shop.test",)), raw, username=username)
    return sorted(mb.summary(uid.result(10))["Tags"])


def test_tag_names_are_cleaned_as_mailpit_cleans_them(server: Server) -> None:
    # As Mailpit, but letters of other scripts stay (Mailpit keeps ASCII ones only).
    assert clean_tag("  café/bar!!  baz ") == "café bar baz"
    assert clean_tag("Größe") == "Größe"
    assert clean_tag("x" * 150) == "x" * 100
    uid = send_raw(server, message("clean"))
    assert tags_of(server, uid) == ["Alpha", "beta gamma"]
    body = {"IDs": [uid], "Tags": ["ünïcode", "a:b", "Dup", "dup", "!!!"]}
    assert call(server, "PUT", "api/v1/tags", body) == (200, "ok")
    assert tags_of(server, uid) == ["Dup", "a b", "ünïcode"]


def test_plus_addresses_tag_by_default_the_sender_included(server: Server) -> None:
    raw = message("plus", to="bob+orders+eu@shop.test", sender="ann+newsletter@example.com")
    uid = send_raw(server, raw)
    assert tags_of(server, uid) == ["Alpha", "beta gamma", "eu", "newsletter", "orders"]


def test_title_case_disable_and_username(box: Callable[..., Mailbox]) -> None:
    raw = message("t", to="bob+big orders@shop.test")
    assert stored_tags(box(tags_title_case=True), raw) == ["Alpha", "Beta Gamma", "Big Orders"]
    assert stored_tags(box(tags_disable="x-tags"), raw) == ["big orders"]
    assert stored_tags(box(tags_disable="plus-addresses,xtags"), raw) == []
    assert stored_tags(box(tags_username=True, tags_disable="x-tags"), raw, "alice") == [
        "alice",
        "big orders",
    ]
    assert stored_tags(box(), raw, "alice") == ["Alpha", "beta gamma", "big orders"]


def test_tag_rules_from_the_flag_match_as_searches(box: Callable[..., Mailbox]) -> None:
    mb = box(
        tag='Invoices,Billing=subject:invoice "Big One=larger:1k" Desserts=creme',
        tags_disable="x-tags,plus-addresses",
    )
    # "creme" is in no raw message: the word index folds the accent of "crème".
    assert stored_tags(mb, message("Invoice 7")) == ["Billing", "Desserts", "Invoices"]
    big = message("Report") + b"x" * 2000 + b"\r\n"
    assert stored_tags(mb, big) == ["Big One", "Desserts"]
    summaries, _, _ = mb.search("tag:billing")
    assert [m["Subject"] for m in summaries] == ["Invoice 7"]


def test_tag_rules_from_a_yaml_file(box: Callable[..., Mailbox], tmp_path: Path) -> None:
    rules = tmp_path / "tags.yml"
    rules.write_text(
        "filters:\n"
        "  - match: from:ann@example.com\n    tags: From Ann,Known\n"
        "  - match: subject:nothing-like-this\n    tags: Never\n"
    )
    mb = box(tags_config=str(rules), tags_disable="x-tags")
    assert stored_tags(mb, message("Hello")) == ["From Ann", "Known"]


def test_bad_tag_options_stop_start_up_saying_how_to_fix(
    box: Callable[..., Mailbox], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="has no '='"):
        box(tag="invoices")
    with pytest.raises(ConfigError, match="is not a kind of tag"):
        box(tags_disable="subjects")
    with pytest.raises(ConfigError, match="cannot read"):
        box(tags_config=str(tmp_path / "missing.yml"))
    (tmp_path / "bad.yml").write_text("rules: []\n")
    with pytest.raises(ConfigError, match="needs a 'filters:' list"):
        box(tags_config=str(tmp_path / "bad.yml"))
    with pytest.raises(ConfigError, match="cannot be used"):
        box(tag="x=after:someday")
    cli = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "--tag", "invoices", "--smtp", "127.0.0.1:0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode != 0 and "--tag: 'invoices' has no '='" in cli.stderr


def test_renaming_onto_an_existing_or_an_unknown_tag_answers_as_mailpit(server: Server) -> None:
    uid = send_raw(server, message("r"))
    assert call(server, "PUT", "api/v1/tags/Alpha", {"Name": "beta gamma"}) == (
        400,
        "tag already exists: beta gamma",
    )
    assert call(server, "PUT", "api/v1/tags/nope", {"Name": "other"}) == (
        400,
        "tag not found: nope",
    )
    assert tags_of(server, uid) == ["Alpha", "beta gamma"]
    # A change of case is a rename; the same name changes nothing.
    assert call(server, "PUT", "api/v1/tags/alpha", {"Name": "ALPHA"}) == (200, "ok")
    assert call(server, "PUT", "api/v1/tags/ALPHA", {"Name": "ALPHA"}) == (200, "ok")
    assert tags_of(server, uid) == ["ALPHA", "beta gamma"]


def test_title_case_keeps_the_rest_of_a_word() -> None:
    assert (
        title_case("big orders-eu mcDonald o'neil 2nd/x") == "Big Orders-Eu McDonald O'neil 2nd/X"
    )


def test_rule_tags_reach_the_new_message_event(box: Callable[..., Mailbox]) -> None:
    mb = box(tag="Desserts=creme", tags_disable="x-tags")
    with mb.bus.subscribe() as sub:
        stored_tags(mb, message("Pudding"))
        event = sub.get(timeout=10)
        while event is not None and event.type != "new":
            event = sub.get(timeout=10)
    assert event is not None and event.data["Tags"] == ["Desserts"]


def test_smtp_auth_user_becomes_a_tag(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(smtp_auth="alice:secret", smtp_auth_allow_insecure=True, tags_username=True)
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.login("alice", "secret")
        client.sendmail("ann@example.com", ["bob@shop.test"], message("auth"))
    listed = json.loads(call(mp, "GET", "api/v1/messages")[1])["messages"]
    assert "alice" in listed[0]["Tags"]


def test_a_message_names_at_most_a_hundred_tags_of_its_own(
    box: Callable[..., Mailbox], caplog: pytest.LogCaptureFixture
) -> None:
    # One 160 KB X-Tags field made 20,000 tags (a row, a filter and an IMAP folder each): the
    # first hundred a message names (X-Tags, then plus addresses) are kept, the user name and
    # the rules' tags on top.
    mb = box(tags_username=True)
    x_tags = ", ".join(f"t{i:03}" for i in range(300))
    raw = (
        "From: Ann <ann@example.com>\r\nTo: bob+plus@shop.test\r\nSubject: flood\r\n"
        f"X-Tags: {x_tags}\r\n\r\nBody of the flood.\r\n"
    ).encode()
    with caplog.at_level("WARNING", logger="mailpit_py.mailbox"):
        tags = stored_tags(mb, raw, username="carol")
    assert tags == sorted([f"t{i:03}" for i in range(100)] + ["carol"])
    assert "a message names 301 tags" in caplog.text
    assert len(mb.tags()) == 101
    few = stored_tags(mb, message("few"), username="carol")
    assert few == ["Alpha", "beta gamma", "carol"]  # under the bound: every one, as before
