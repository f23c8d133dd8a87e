"""Mailbox routing and its settings: the pure router, the YAML file's loading and its errors,
the flags (through `mailpit-py config`) and the helpers the web, IMAP and retention read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailpit_py.cli import main
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.mailboxes import load, mailbox_config, parse_route
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.mailbox.routing import Router

FULL_EXAMPLE = """\
mailboxes:
  - name: shop
    max: 200
    routes:
      - rcpt: "*@shop.test"
      - auth: "shop-ci"
  - name: billing
    routes:
      - listener: billing
      - header: "invoice-*"
  - name: "{mailbox}"
    routes:
      - rcpt: "*@{mailbox}.review.test"
  - name: archive
unrouted: default
auto: true
header: X-Mailbox
access:
  alice: [shop, billing]
  bob: shop
  admin: "*"
"""


def router(*routes: str, **settings: object) -> Router:
    return Router.from_config(validate(Config(mailbox_routes=routes, **settings)))  # type: ignore[arg-type]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mailboxes.yml"
    path.write_text(text)
    return str(path)


# --- the router --------------------------------------------------------------------------


def test_rcpt_glob_is_case_insensitive_and_first_match_wins() -> None:
    r = router("shop=rcpt:*@shop.test", "other=rcpt:*@*.test")
    assert r.route("", "default", ["A@Shop.TEST", "b@else.test", "c@nowhere.org"]) == {
        "shop": ["A@Shop.TEST"],
        "other": ["b@else.test"],
        "default": ["c@nowhere.org"],
    }


def test_rcpt_capture_names_the_mailbox_cleaned() -> None:
    r = router("{mailbox}=rcpt:*@{mailbox}.test", "pr-{mailbox}=rcpt:{mailbox}@pr.example")
    assert r.match("x@Acme.test").box == "acme"  # type: ignore[union-attr]
    assert r.match("x@a.b.test").box == "a.b"  # type: ignore[union-attr]
    assert r.match("42@pr.example").box == "pr-42"  # type: ignore[union-attr]
    # A capture too long for a name is no mailbox: the next rule (here none) decides.
    assert r.match("x@" + "a" * 70 + ".test") is None


def test_auth_glob_and_capture_match_only_authenticated_sessions() -> None:
    r = router("ci=auth:ci-*", "{mailbox}=auth:{mailbox}@team.example")
    assert r.match("x@y.test", username="CI-runner").box == "ci"  # type: ignore[union-attr]
    assert r.match("x@y.test", username="Ann@Team.Example").box == "ann"  # type: ignore[union-attr]
    assert r.match("x@y.test", username="") is None


def test_listener_route() -> None:
    r = router("billing=listener:billing", smtp_listeners=("billing=127.0.0.1:0,mailbox=ops",))
    assert r.match("x@y.test", listener="billing").box == "billing"  # type: ignore[union-attr]
    assert r.match("x@y.test", listener="default") is None
    # mailbox= on the listener comes after the --mailbox-route rules: here never reached.
    assert [rule.where for rule in r.settings.rules][-1] == "--smtp-listener billing mailbox="


def test_listener_mailbox_option_routes_the_listener() -> None:
    r = router(smtp_listeners=("billing=127.0.0.1:0,mailbox=ops",))
    assert r.route("", "billing", ["a@b.test"]) == {"ops": ["a@b.test"]}
    assert r.route("", "default", ["a@b.test"]) == {"default": ["a@b.test"]}
    assert "ops" in r.names


def test_header_routes_only_when_header_routing_is_on_and_only_to_existing_mailboxes() -> None:
    off = router("billing=rcpt:*@billing.test")
    assert off.match("x@y.test", header_values=["billing"]) is None
    on = router("billing=rcpt:*@billing.test", mailbox_header="X-Mailbox")
    assert on.match("x@y.test", header_values=[" Billing "]).box == "billing"  # type: ignore[union-attr]
    # A name no setting makes and no message made is no mailbox: a header cannot make one.
    assert on.match("x@y.test", header_values=["new-one"]) is None
    assert on.match("x@y.test", header_values=["made"], existing={"made"}).box == "made"  # type: ignore[union-attr]


def test_header_rule_matches_the_value_glob() -> None:
    r = router("billing=header:invoice-*", "shop=rcpt:*", mailbox_header="X-Route")
    assert r.match("a@b.test", header_values=["Invoice-7"]).box == "billing"  # type: ignore[union-attr]
    assert r.match("a@b.test", header_values=["other"]).box == "shop"  # type: ignore[union-attr]
    assert r.match("a@b.test", header_values=None).box == "shop"  # type: ignore[union-attr]


def test_auto_makes_a_mailbox_per_username_after_the_rules() -> None:
    r = router("shop=auth:shop", mailbox_auto=True)
    assert r.match("x@y.test", username="CI@Shop.Example").box == "ci@shop.example"  # type: ignore[union-attr]
    assert r.match("x@y.test", username="shop").box == "shop"  # type: ignore[union-attr]
    assert r.match("x@y.test", username="") is None


def test_unrouted_default_or_refused_at_rcpt_or_left_to_data() -> None:
    keep = router("shop=rcpt:*@shop.test")
    assert keep.route("", "default", ["a@x.test"]) == {"default": ["a@x.test"]}
    assert not keep.refused_at_rcpt("a@x.test")
    refuse = router("shop=rcpt:*@shop.test", mailbox_unrouted="refuse")
    assert refuse.route("", "default", ["a@x.test", "b@shop.test"]) == {"shop": ["b@shop.test"]}
    assert refuse.refused_at_rcpt("a@x.test")
    assert not refuse.refused_at_rcpt("b@shop.test")
    # With header routing on, DATA's header may still route it: not refused at RCPT.
    later = router("shop=rcpt:*@shop.test", mailbox_unrouted="refuse", mailbox_header="X-Mailbox")
    assert not later.refused_at_rcpt("a@x.test")
    assert later.route("", "default", ["a@x.test"], ["shop"]) == {"shop": ["a@x.test"]}


def test_no_settings_route_everything_to_default_and_stay_inactive() -> None:
    r = router()
    assert not r.active
    assert r.route("ann", "default", ["a@b.test", "c@d.test"]) == {
        "default": ["a@b.test", "c@d.test"]
    }


def test_file_rules_come_before_flag_rules(tmp_path: Path) -> None:
    path = write(tmp_path, "mailboxes:\n  - name: fromfile\n    routes:\n      - rcpt: '*'\n")
    r = router("fromflag=rcpt:*", mailbox_config=path)
    assert r.match("a@b.test").box == "fromfile"  # type: ignore[union-attr]


# --- the file and its helpers ------------------------------------------------------------


def test_full_example_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_EXAMPLE)
    cfg = validate(Config(mailbox_config=path, smtp_listeners=("billing=127.0.0.1:0",)))
    settings = mailbox_config(cfg)
    assert settings.auto and settings.header == "X-Mailbox" and settings.unrouted == "default"
    assert set(settings.names) == {"shop", "billing", "archive"}
    assert cfg.box_max("shop") == 200
    assert cfg.box_max("billing") is None
    assert cfg.allowed_boxes("alice") == {"shop", "billing"}
    assert cfg.allowed_boxes("bob") == {"shop"}
    assert cfg.allowed_boxes("admin") is None
    assert cfg.allowed_boxes("carol") is None  # not listed: every mailbox
    assert cfg.allowed_boxes(None) is None
    r = Router.from_config(cfg)
    assert r.match("x@Shop.test").box == "shop"  # type: ignore[union-attr]
    assert r.match("x@pr1.review.test").box == "pr1"  # type: ignore[union-attr]
    assert r.match("x@y.test", header_values=["invoice-3"]).box == "billing"  # type: ignore[union-attr]
    assert r.match("x@y.test", header_values=["archive"]).box == "archive"  # type: ignore[union-attr]
    assert r.match("x@y.test", username="Dev").box == "dev"  # type: ignore[union-attr]


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "unrouted: refuse\nheader: X-One\n")
    settings = load(Config(mailbox_config=path, mailbox_unrouted="default", mailbox_header="X-Two"))
    assert (settings.unrouted, settings.header) == ("default", "X-Two")
    assert load(Config(mailbox_config=path)).unrouted == "refuse"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mailboxes: [a\n", r"line 2 column 1: not valid YAML"),
        ("mailbox:\n  - name: a\n", r"line 1: the file has unknown key 'mailbox': the keys are"),
        (
            "mailboxes:\n  - name: shop\n  - name: Shop Team\n",
            r"line 3, mailbox 2: 'Shop Team' is not a mailbox name: use 'shop_team'",
        ),
        ("mailboxes:\n  - name: a\n    max: lots\n", r"line 2, mailbox 1: max: 'lots'"),
        ("mailboxes:\n  - name: a\n    rout: []\n", r"line 2, mailbox 1: .*unknown key 'rout'"),
        ("mailboxes:\n  - max: 3\n", r"line 2, mailbox 1: name: is missing"),
        ("mailboxes:\n  - name: a\n  - name: a\n", r"line 3, mailbox 2: .*already listed"),
        (
            "mailboxes:\n  - name: a\n    routes:\n      - domain: x.test\n",
            r"line 4: 'domain' is not a kind of route: use auth, rcpt, listener, header",
        ),
        (
            "mailboxes:\n  - name: a\n    routes:\n      - header: x\n",
            r"line 4: header: routes match the header --mailbox-header names: add",
        ),
        (
            "header: X-M\nmailboxes:\n  - name: '{mailbox}'\n    routes:\n"
            "      - header: '{mailbox}'\n",
            r"line 5: \{mailbox\} captures only in auth: and rcpt: patterns",
        ),
        (
            "mailboxes:\n  - name: a\n    routes:\n      - listener: nope\n",
            r"line 4: there is no SMTP listener named 'nope'",
        ),
        ("unrouted: drop\n", r"unrouted: 'drop': use default .* or refuse"),
        ("header: 'X Mailbox:'\n", r"header: 'X Mailbox:': use a header name such as X-Mailbox"),
        ("access:\n  alice: 3\n", r"line 2, access: alice: 3: give a list of mailboxes"),
        ("access:\n  alice: [Shop]\n", r"line 2, access: 'Shop' is not a mailbox name"),
        ("- a\n", r"the file is a mapping with mailboxes:"),
    ],
)
def test_file_errors_name_the_file_line_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as caught:
        validate(Config(mailbox_config=path))
    assert str(caught.value).startswith(path)


def test_missing_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--mailbox-config: cannot read .*nope.yml"):
        validate(Config(mailbox_config=str(tmp_path / "nope.yml")))


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("shop", r"must be NAME=KIND:PATTERN"),
        ("shop=rcpt:", r"rcpt: needs a pattern"),
        ("shop=domain:x", r"'domain' is not a kind of route"),
        ("{mailbox}=rcpt:*@shop.test", r"takes \{mailbox\} from the pattern, which has none"),
        ("x=rcpt:{mailbox}@{mailbox}", r"may appear once"),
    ],
)
def test_route_flag_errors(route: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_route(route)


def test_flags_through_mailpit_py_config(monkeypatch, capsys) -> None:
    for name in list(os.environ):
        if name.startswith("MP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MP_MAILBOX_ROUTES", "shop=rcpt:*@shop.test\nci=auth:ci-*")
    argv = ["config", "--changed", "--json", "--mailbox-auto", "--mailbox-unrouted", "refuse"]
    assert main([*argv, "--mailbox-header", "X-Mailbox"]) == 0
    rows = {r["field"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mailbox_routes"]["value"] == ["shop=rcpt:*@shop.test", "ci=auth:ci-*"]
    assert rows["mailbox_routes"]["source"] == "environment MP_MAILBOX_ROUTES"
    assert rows["mailbox_auto"]["value"] is True
    assert rows["mailbox_unrouted"]["value"] == "refuse"
    assert rows["mailbox_header"]["value"] == "X-Mailbox"
    assert main(["config", "--mailbox-route", "Shop=rcpt:*"]) == 2
    assert "'Shop' is not a mailbox name: use 'shop'" in capsys.readouterr().err
    assert main(["config", "--mailbox-unrouted", "drop"]) == 2
    assert "--mailbox-unrouted: 'drop'" in capsys.readouterr().err
    assert main(["config", "--mailbox-header", "X-Mailbox:"]) == 2
    assert "--mailbox-header: 'X-Mailbox:' is not a header name" in capsys.readouterr().err


def test_listener_mailbox_option_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"mailbox= needs a mailbox name"):
        validate(Config(smtp_listeners=("ops=127.0.0.1:0,mailbox=",)))
    with pytest.raises(ConfigError, match=r"mailbox=: 'Ops Team' is not a mailbox name"):
        validate(Config(smtp_listeners=("ops=127.0.0.1:0,mailbox=Ops Team",)))


def test_matches_name_each_recipients_route_and_group_splits_off_the_refused() -> None:
    r = router("shop=rcpt:*@shop.test", mailbox_unrouted="refuse")
    found = r.matches("", "default", ["a@shop.test", "b@else.test"])
    assert [(rcpt, m.rule if m else None) for rcpt, m in found] == [
        ("a@shop.test", "--mailbox-route shop=rcpt:*@shop.test"),
        ("b@else.test", None),
    ]
    assert r.group(found) == ({"shop": ["a@shop.test"]}, ["b@else.test"])


# --- many routes -------------------------------------------------------------------------

OVERLAPPING = (
    "{mailbox}=rcpt:*@{mailbox}.review.test",  # a capture: too long a one falls through
    "ci=auth:ci-*",
    "exact=rcpt:boss@shop.test",
    "shop=rcpt:*@shop.test",
    "billing=listener:billing",
    "late-{mailbox}=auth:{mailbox}@team.example",
    "invoice=header:invoice-*",
    "any-shop=rcpt:*shop*",
    "team=auth:*",
    "catch=rcpt:*@*.test",
)


def first_rule(
    rules: tuple[str, ...], rcpt: str, username: str, listener: str, values: list[str]
) -> tuple[str, str] | None:
    """The first-match-wins answer, one rule after another (the router's rules, by hand)."""
    from mailpit_py.mailbox.boxes import clean_box_name
    from mailpit_py.mailbox.routing import glob_regex

    for text in rules:
        box, _, route = text.partition("=")
        kind, _, pattern = route.partition(":")
        value = {"rcpt": rcpt, "auth": username, "listener": listener}.get(kind)
        if kind == "auth" and not username:
            continue
        found = [glob_regex(pattern).fullmatch(v) for v in ([value] if value else values)]
        hit = next((m for m in found if m), None)
        if hit is None:
            continue
        if "{mailbox}" in box:
            try:
                box = clean_box_name(box.replace("{mailbox}", hit.group("box")))
            except ValueError:
                continue  # no mailbox name: the next rule decides
        return box, f"--mailbox-route {text}"
    return None


@pytest.mark.parametrize("rcpt", ["boss@shop.test", "Ann@Shop.Test", "x@p.review.test",
                                  f"x@{'a' * 70}.review.test", "a@myshop.org", "a@b.test",
                                  "nobody@else.org"])  # fmt: skip
@pytest.mark.parametrize("username", ["", "ci-7", "Ann@Team.Example", f"{'b' * 70}@team.example"])
@pytest.mark.parametrize("listener", ["default", "billing"])
def test_many_overlapping_routes_keep_first_match_wins(
    rcpt: str, username: str, listener: str
) -> None:
    """Rules of every kind, interleaved, overlapping, some capturing: each recipient goes where
    the first rule that routes it (in the given order) says, with or without header values."""
    r = router(
        *OVERLAPPING,
        mailbox_header="X-Route",
        smtp_listeners=("billing=127.0.0.1:0",),
    )
    for values in ([], ["Invoice-7"], ["other"]):
        found = r.match(rcpt, username=username, listener=listener, header_values=values)
        want = first_rule(OVERLAPPING, rcpt, username, listener, values)
        assert (None if found is None else (found.box, found.rule)) == want, values


def test_a_recipient_among_many_routes_is_matched_once_per_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a rcpt: and an auth: route for each of 50 mailboxes, routing the last mailbox's
    recipient matches a handful of patterns, not the hundred routes before it one by one."""
    import re

    calls = []
    compile_ = re.compile

    class Counted:
        def __init__(self, regex: re.Pattern[str]) -> None:
            self.regex = regex

        def fullmatch(self, value: str) -> re.Match[str] | None:
            calls.append(value)
            return self.regex.fullmatch(value)

    monkeypatch.setattr(re, "compile", lambda *a, **k: Counted(compile_(*a, **k)))
    routes = [f"p{k}=rcpt:*@p{k}.test" for k in range(50)]
    routes += [f"p{k}=auth:p{k}-ci" for k in range(50)]
    r = router(*routes)
    monkeypatch.undo()
    assert r.match("User@P49.test", username="p3-ci").box == "p49"  # type: ignore[union-attr]
    assert len(calls) <= 3, len(calls)
    calls.clear()
    assert r.match("user@p49.test", username="p3-ci", header_values=None).box == "p49"  # type: ignore[union-attr]
    assert r.match("user@else.test", username="p3-ci").box == "p3"  # type: ignore[union-attr]
    assert r.match("user@else.test") is None
    assert len(calls) <= 3 + 3 + 1, len(calls)
    calls.clear()
    # The same recipient again: the globs' answer is kept, only its rule's own pattern runs.
    assert r.match("User@P49.test", username="p3-ci").box == "p49"  # type: ignore[union-attr]
    assert len(calls) == 1, len(calls)


def test_the_kept_answers_are_bounded_and_header_values_still_decide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mailpit_py.mailbox import routing

    monkeypatch.setattr(routing, "ROUTE_CACHE", 8)
    r = router("invoice=header:invoice-*", "{mailbox}=rcpt:*@{mailbox}.test", mailbox_header="X")
    for n in range(50):
        assert r.match(f"a@p{n}.test").box == f"p{n}"  # type: ignore[union-attr]
        assert r.match(f"a@p{n}.test", header_values=["Invoice-1"]).box == "invoice"  # type: ignore[union-attr]
        assert r.match(f"a@p{n}.test", header_values=["other"]).box == f"p{n}"  # type: ignore[union-attr]
    assert r.first_alternated.cache_info().currsize == 8
