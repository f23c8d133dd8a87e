"""IMAP syntax and MIME structure pieces on their own: tokens, sets, names, sections, and
that odd or hostile input gives a syntax error, never a crash."""

from __future__ import annotations

import random

import pytest

from helpers import CORPORA, corpus_names, corpus_root
from mailpit_py.mailaccess.imap.mime import (
    bodystructure,
    envelope,
    header_fields,
    parse_entity,
    parse_section,
    section_bytes,
)
from mailpit_py.mailaccess.imap.syntax import (
    Atom,
    ImapSyntaxError,
    SequenceSet,
    compact,
    decode_mailbox,
    encode_mailbox,
    list_match,
    literal_at_end,
    string,
    tokenize,
)


def test_tokenize_atoms_strings_literals_lists_and_sections() -> None:
    tokens = tokenize(
        b'FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM "TO")]<0.10>) "a \\"q\\" \\\\" '
        b"{5}\r\nab\r\ncNIL\r\n"
    )
    assert tokens == [
        "FETCH",
        "1:*",
        ["FLAGS", 'BODY.PEEK[HEADER.FIELDS (FROM "TO")]<0.10>'],
        b'a "q" \\',
        b"ab\r\nc",
        "NIL",
    ]
    assert isinstance(tokens[0], Atom) and not isinstance(tokens[3], Atom)
    assert literal_at_end(b"a LOGIN {12}\r\n") == (12, False)
    assert literal_at_end(b"a LOGIN {12+}\r\n") == (12, True)
    assert literal_at_end(b'a LOGIN "{12}"\r\n') is None


@pytest.mark.parametrize("bad", [b"(a", b"a)", b'"open', b"{5}\r\nab", b"BODY[HEADER", b"{x}\r\n"])
def test_tokenize_refuses_broken_syntax(bad: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        tokenize(bad)


def test_tokenize_never_crashes_on_noise() -> None:
    rng = random.Random(7)
    alphabet = b'()[]{}"\\ *:,+<>.\r\n0123456789abcXYZ\x00\xff'
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            tokenize(data)
        except ImapSyntaxError:
            pass


def test_sequence_sets() -> None:
    assert SequenceSet.parse("2:4,7,9:*").select(list(range(1, 11)), 10) == [2, 3, 4, 7, 9, 10]
    assert SequenceSet.parse("*").select([1, 2, 3], 3) == [3]
    assert SequenceSet.parse("5:2").select([1, 2, 3, 4, 5, 6], 6) == [2, 3, 4, 5]
    assert SequenceSet.parse("20:*").select([3, 7], 7) == [7]  # n:* with n past the end
    assert not SequenceSet.parse("1,8").bounded(7) and SequenceSet.parse("1:*").bounded(7)
    for bad in ("0", "a", "1:", "", "1,,2"):
        with pytest.raises(ImapSyntaxError):
            SequenceSet.parse(bad)
    assert compact([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"


def test_mailbox_names_in_modified_utf7_and_list_patterns() -> None:
    for name in ("INBOX", "Größe", "a&b", "日本語", "x y", "~peter/mail/台北/日本語"):
        assert decode_mailbox(encode_mailbox(name)) == name
    assert encode_mailbox("a&b") == "a&-b"
    assert encode_mailbox("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert list_match("*", "a/b") and list_match("%", "a") and not list_match("%", "a/b")
    assert list_match("w%", "work") and not list_match("x*", "work")


def test_strings_are_quoted_or_sent_as_literals() -> None:
    assert string(None) == b"NIL"
    assert string('say "hi" \\') == b'"say \\"hi\\" \\\\"'
    assert string("Größe") == b"{7}\r\nGr\xc3\xb6\xc3\x9fe"
    assert string("two\r\nlines") == b"{10}\r\ntwo\r\nlines"


def test_sections_parse_and_refuse() -> None:
    assert parse_section("").path == () and parse_section("1.2.MIME").kind == "MIME"
    fields = parse_section("HEADER.FIELDS (From To)")
    assert fields.kind == "HEADER.FIELDS" and fields.fields == ("from", "to")
    for bad in ("MIME", "HEADER.FIELDS", "0", "1..2", "TEXT (a)", "BOGUS"):
        with pytest.raises(ImapSyntaxError):
            parse_section(bad)
    header = b"From: a\r\nTo: b,\r\n c\r\nSubject: s\r\n\r\n"
    assert header_fields(header, ("to",), False) == b"To: b,\r\n c\r\n\r\n"
    assert header_fields(header, ("to",), True) == b"From: a\r\nSubject: s\r\n\r\n"


@pytest.mark.parametrize("which", CORPORA)
def test_structure_of_every_truncated_corpus_message_never_crashes(which: str) -> None:
    root = corpus_root(which)
    names = corpus_names(root)
    rng = random.Random(3)
    for name in names:
        raw = (root / name).read_bytes()
        for cut in (len(raw), rng.randint(0, len(raw)), len(raw) // 2):
            entity = parse_entity(raw[:cut])
            bodystructure(entity)
            envelope(entity)
            for spec in ("", "HEADER", "TEXT", "1", "1.MIME", "2.1", "1.HEADER", "3.TEXT"):
                section_bytes(entity, parse_section(spec))
