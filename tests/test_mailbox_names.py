"""Mailbox names: cleaning a user's text into a name and telling a clean name apart."""

from __future__ import annotations

import pytest

from mailpit_py.mailbox.boxes import DEFAULT_BOX, clean_box_name, is_box_name


def test_clean_strips_lowers_and_replaces_other_characters() -> None:
    assert clean_box_name("  Project-A  ") == "project-a"
    assert clean_box_name("Team One/QA") == "team_one_qa"
    assert clean_box_name("dev+ci@example.test") == "dev+ci@example.test"
    assert clean_box_name("é") == "_"
    assert clean_box_name("a" * 64) == "a" * 64


@pytest.mark.parametrize("text", ["", "   ", "a" * 65])
def test_clean_refuses_empty_or_long_names_saying_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match="mailbox name.*a-z 0-9"):
        clean_box_name(text)


def test_is_box_name() -> None:
    assert is_box_name(DEFAULT_BOX)
    assert is_box_name("proj.a_b-c@d+e")
    for text in ["", "Project", "a b", "a/b", "a" * 65, " a", "é"]:
        assert not is_box_name(text), text


@pytest.mark.parametrize("text", [".", "..", "..."])
def test_a_name_of_dots_alone_is_no_path_segment(text: str) -> None:
    # /mailbox/../ would be collapsed to / by a client, showing the default mailbox instead.
    assert clean_box_name(text) == "_" * len(text)
    assert not is_box_name(text)
    assert is_box_name("a..b") and is_box_name(".ci")
