"""Search: the query parser, the FTS text normalization, and searching a real mailbox."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import formataddr
from zoneinfo import ZoneInfo

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.search import SearchError, Term, index_text, parse_query
from mailpit_py.store.search_sql import build_where

# -- parse_query ---------------------------------------------------------------------------------


def test_empty_or_blank_query_has_no_terms() -> None:
    assert parse_query("") == []
    assert parse_query("   \t ") == []


def test_words_phrases_and_both_negations() -> None:
    assert parse_query('hello "two words" -spam !junk') == [
        Term("word", "hello"),
        Term("phrase", "two words"),
        Term("word", "spam", negated=True),
        Term("word", "junk", negated=True),
    ]
    assert parse_query('-"not this"') == [Term("phrase", "not this", negated=True)]


def test_lone_dash_and_ascii_punctuation_are_ignored_but_emoji_kept() -> None:
    assert parse_query("foo - bar ! ... &") == [Term("word", "foo"), Term("word", "bar")]
    assert parse_query("🎉") == [Term("word", "🎉")]


def test_prefixes_are_case_insensitive_and_take_quoted_values() -> None:
    assert parse_query('FROM:ann Subject:"two words" from:"Ann Smith" Reply-To:x') == [
        Term("from", "ann"),
        Term("subject", "two words"),
        Term("from", "Ann Smith"),
        Term("reply-to", "x"),
    ]


def test_every_text_prefix_is_recognized() -> None:
    kinds = ["from", "to", "cc", "bcc", "reply-to", "addressed", "subject", "tag"]
    assert parse_query(" ".join(f"{k}:v" for k in kinds)) == [Term(k, "v") for k in kinds]
    assert parse_query("message-id:<abc@x.org>") == [Term("message-id", "abc@x.org")]


def test_flags_are_normalized_and_negatable() -> None:
    assert parse_query("is:READ !is:unread -is:tagged has:attachments has:Inline") == [
        Term("is", "read"),
        Term("is", "unread", negated=True),
        Term("is", "tagged", negated=True),
        Term("has", "attachment"),
        Term("has", "inline"),
    ]


def test_a_prefix_without_a_value_is_ignored_as_while_typing() -> None:
    assert parse_query("from: subject: -tag: header:") == []


def test_unknown_prefixes_urls_and_re_are_plain_words() -> None:
    assert parse_query("foo:bar https://example.com/x re: RE:hello") == [
        Term("word", "foo:bar"),
        Term("word", "https://example.com/x"),
        Term("word", "re:"),
        Term("word", "RE:hello"),
    ]


def test_a_quoted_prefix_is_a_phrase_not_a_filter() -> None:
    assert parse_query('"from:ann"') == [Term("phrase", "from:ann")]


def test_unbalanced_quote_makes_the_rest_one_phrase() -> None:
    assert parse_query('invoice "overdue since may') == [
        Term("word", "invoice"),
        Term("phrase", "overdue since may"),
    ]
    assert parse_query('subject:"half open') == [Term("subject", "half open")]
    assert parse_query('"') == []


def test_header_name_alone_value_and_quoted_value() -> None:
    assert parse_query(
        'header:X-Campaign header:x-mailer:php -header:X-Campaign:"spring sale"'
    ) == [
        Term("header", "", name="X-Campaign"),
        Term("header", "php", name="x-mailer"),
        Term("header", "spring sale", negated=True, name="X-Campaign"),
    ]
    # The value may itself hold colons (a URL, a time).
    assert parse_query("header:List-Id:<a:b>") == [Term("header", "<a:b>", name="List-Id")]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1M", 1024 * 1024),
        ("500k", 500 * 1024),
        ("1.5MB", 1572864),
        ("2048", 2048),
        ("10kb", 10240),
        ("2KiB", 2048),
        ("1g", 1024**3),
        (".5k", 512),
    ],
)
def test_sizes_become_bytes_1024_based_as_mailpit(text: str, size: int) -> None:
    assert parse_query(f"larger:{text}") == [Term("larger", size)]
    assert parse_query(f"-smaller:{text}") == [Term("smaller", size, negated=True)]


def test_a_size_mailpit_cannot_read_makes_the_term_a_plain_word() -> None:
    assert parse_query("larger:abc") == [Term("word", "larger:abc")]
    assert parse_query("-smaller:abc") == [Term("word", "smaller:abc", negated=True)]
    assert parse_query('smaller:"5 parsecs"') == [Term("phrase", "smaller:5 parsecs")]
    # Under one byte is no size in Mailpit either.
    assert parse_query("larger:0 smaller:0.4") == [
        Term("word", "larger:0"),
        Term("word", "smaller:0.4"),
    ]
    # A size too large for SQLite's integers matches as the largest there is.
    assert parse_query("smaller:99999999999999999999999") == [Term("smaller", 2**62)]


def test_a_plain_word_size_term_searches_text(corpus: Corpus) -> None:
    assert corpus.found("larger:abc") == set()
    assert corpus.found("-larger:abc") == corpus.where(lambda s: True)


def test_a_date_means_the_start_of_that_day_in_utc_by_default() -> None:
    midnight = datetime(2026, 11, 21, tzinfo=UTC).timestamp()
    assert parse_query("after:2026-11-21") == [Term("after", midnight)]
    assert parse_query("before:2026/11/21") == [Term("before", midnight)]


def test_a_date_is_read_in_the_given_time_zone_with_daylight_saving() -> None:
    # Berlin is UTC+1 in November and UTC+2 in July.
    [winter] = parse_query("after:2026-11-21", tz="Europe/Berlin")
    assert winter.value == datetime(2026, 11, 20, 23, tzinfo=UTC).timestamp()
    [summer] = parse_query("after:2026-07-01", tz="Europe/Berlin")
    assert summer.value == datetime(2026, 6, 30, 22, tzinfo=UTC).timestamp()


def test_date_and_time_forms_with_and_without_offset() -> None:
    expected = datetime(2026, 11, 21, 9, 30, tzinfo=UTC).timestamp()
    assert parse_query("after:2026-11-21T09:30:00Z")[0].value == expected
    assert parse_query("after:2026-11-21T10:30+01:00", tz="Asia/Tokyo")[0].value == expected
    assert parse_query('after:"2026-11-21 10:30"', tz="Europe/Berlin")[0].value == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("after:soon", "after: needs a date such as 2026-11-21 or 2026-11-21T14:30, got 'soon'"),
        ("before:2026-13-45", "before: needs a date such as 2026-11-21"),
        ("is:starred", "is: needs read, unread, tagged or refused, got 'starred'"),
        ("has:pdf", "has: needs attachment or inline, got 'pdf'"),
        ("header::spring", "header: needs a header name"),
        ("header:Námé:x", "is not a valid header name"),
    ],
)
def test_bad_values_raise_search_error_saying_what_is_wrong(query: str, message: str) -> None:
    with pytest.raises(SearchError, match=re.escape(message)):
        parse_query(query)


def test_unknown_time_zone_raises_search_error() -> None:
    with pytest.raises(SearchError, match="unknown time zone 'Mars/Olympus'"):
        parse_query("after:2026-11-21", tz="Mars/Olympus")
    with pytest.raises(SearchError, match="unknown time zone"):
        parse_query("hello", tz="../../etc/passwd")
    assert parse_query("hello", tz="UTC") == [Term("word", "hello")]


def test_search_error_is_a_value_error() -> None:
    assert issubclass(SearchError, ValueError)


def test_terms_are_frozen_and_hashable() -> None:
    term = Term("word", "x")
    assert {term, Term("word", "x")} == {term}
    with pytest.raises(AttributeError):
        term.value = "y"  # type: ignore[misc]


# -- index_text ------------------------------------------------------------------------------------


def test_index_text_leaves_ascii_untouched_without_copying() -> None:
    text = "Hello, world! invoice-42.pdf"
    assert index_text(text) is text


def test_index_text_leaves_spaced_scripts_alone() -> None:
    assert index_text("Привет мир, crème brûlée") == "Привет мир, crème brûlée"


def test_index_text_spaces_out_every_cjk_character() -> None:
    assert index_text("你好世界").split() == ["你", "好", "世", "界"]
    assert index_text("東京タワーへ").split() == ["東", "京", "タ", "ワ", "ー", "へ"]
    assert index_text("안녕하세요").split() == ["안", "녕", "하", "세", "요"]
    assert index_text("abc你好，def").split() == ["abc", "你", "好", "，def"]


# -- build_where --------------------------------------------------------------------------------


def test_no_terms_match_everything() -> None:
    sql, params = build_where([])
    assert sql in ("1", "1=1")
    assert params == []


def test_values_are_bound_never_spliced_into_sql() -> None:
    evil = "x'; DROP TABLE messages; --"
    for kind in ("word", "from", "subject", "message-id", "tag"):
        sql, params = build_where([Term(kind, evil)])
        assert "DROP" not in sql
        assert any("DROP" in str(p) for p in params)
    sql, params = build_where([Term("header", evil, name="X-A'")])
    assert "DROP" not in sql and "X-A'" not in sql


def test_fts_tokens_are_quoted_with_doubled_quotes_and_prefix_star() -> None:
    _, params = build_where([Term("word", 'say"hi'), Term("phrase", "NEAR(a b) OR c*")])
    # Each term is a word-index phrase or a trigram-index string (a substring), both quoted.
    assert params == [
        '{subject addresses body attachments} : "say""hi"*',
        '"say""hi"',
        '{subject addresses body attachments} : "NEAR(a b) OR c*"*',
        '"NEAR(a b) OR c*"',
    ]
    _, params = build_where([Term("word", "ab"), Term("word", 'a"')])  # too short for trigrams
    assert params == ['{subject addresses body attachments} : ("ab"* AND "a"""*)']


# -- a mailbox to search ----------------------------------------------------------------------

BASE = datetime(2026, 11, 1, tzinfo=UTC)
COUNT = 240
HOURS_APART = 3

SENDERS = [
    ("Ann Smith", "ann@example.com"),
    ("Bob Jones", "bob@shop.test"),
    ("Иван Петров", "ivan@example.ru"),
    ("José Álvarez", "jose@example.es"),
    ("", "noreply@service.test"),
    ("王伟", "wang@example.cn"),
]
RECIPIENTS = [
    ("Carol", "carol@example.com"),
    ("Dev Team", "dev+alpha@example.com"),  # a plus-address: tag "alpha"
    ("Erin", "erin@example.org"),
    ("Ольга", "olga@example.ru"),
    ("Frank", "frank+beta+gamma@example.net"),  # tags "beta" and "gamma"
]
SUBJECTS = [
    "Quarterly report",
    "Invoice overdue",
    "Привет мир",
    "你好世界，欢迎",
    "東京タワーへようこそ",
    "Crème brûlée recipe",
    "Meeting notes",
    "Password reset 🎉",
]
BODIES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please find the invoice attached. Payment is due.",
    "Привет мир! Как дела? Все хорошо.",
    "你好世界，欢迎使用我们的服务。",
    "こんにちは世界、東京タワーへようこそ。",
    "Un café crème et une brûlée, s'il vous plaît.",
    "Reminder: the meeting moved to room 42.",
    "안녕하세요 세계, 반갑습니다.",
]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))
PDF = b"%PDF-1.4\n" + b"0" * 300 + b"\n%%EOF\n"


@dataclass
class Sent:
    """What message i was built from, to compute each search's expected result."""

    i: int
    uid: str = ""
    sender: tuple[str, str] = ("", "")
    to: tuple[str, str] = ("", "")
    cc: list[tuple[str, str]] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: list[tuple[str, str]] = field(default_factory=list)
    subject: str = ""
    body: str = ""
    filenames: list[str] = field(default_factory=list)
    inline: bool = False
    tags: set[str] = field(default_factory=set)
    campaign: str = ""
    message_id: str = ""
    created: float = 0.0
    size: int = 0
    read: bool = False

    def addresses(self) -> list[tuple[str, str]]:
        return [self.sender, self.to, *self.cc, *[("", b) for b in self.bcc], *self.reply_to]

    def searchable(self) -> str:
        """What a free word searches: subject, addresses, body text, attachment names."""
        people = " ".join(f"{n} {a}" for n, a in self.addresses())
        return " ".join([self.subject, people, self.body, *self.filenames])


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(text: str) -> list[str]:
    """Roughly unicode61 with remove_diacritics: fine for the words these tests look for."""
    return re.findall(r"[^\W_]+", _fold(index_text(text)))


def has_word_prefix(text: str, word: str) -> bool:
    return any(t.startswith(_fold(word)) for t in tokens(text))


def _addr(name: str, address: str) -> str:
    return formataddr((name, address), charset="utf-8")


def build_message(i: int) -> tuple[Sent, Envelope, bytes]:
    s = Sent(i)
    s.sender = SENDERS[i % len(SENDERS)]
    s.to = RECIPIENTS[i % len(RECIPIENTS)]
    if i % 7 == 0:
        s.cc.append(("Grace Hopper", "grace@example.com"))
    elif i % 7 == 3:
        s.cc.append(("Дмитрий", "dmitry@example.ru"))
    if i % 11 == 0:
        s.bcc.append("audit@example.com")  # envelope only, as apps send Bcc
    if i % 13 == 0:
        s.reply_to.append(("Support", "support@help.test"))
    s.subject = f"{SUBJECTS[i % len(SUBJECTS)]} #{i}"
    # Bodies change every third message, so body and subject vary independently.
    s.body = BODIES[(i // 3) % len(BODIES)] + " padding" * (250 * (i % 5))
    if i % 10 == 3:
        s.filenames.append(f"invoice-{i}.pdf")
    elif i % 10 == 7:
        s.filenames.append("photo.png")
    s.inline = i % 12 == 5
    headers = [
        f"From: {_addr(*s.sender)}",
        f"To: {_addr(*s.to)}",
        f"Subject: {Header(s.subject, 'utf-8').encode()}",
        f"Message-ID: <msg-{i}@mail.example.com>",
        "Date: Sun, 01 Nov 2026 00:00:00 +0000",
        "MIME-Version: 1.0",
    ]
    s.message_id = f"msg-{i}@mail.example.com"
    if s.cc:
        headers.append("Cc: " + ", ".join(_addr(*c) for c in s.cc))
    if s.reply_to:
        headers.append("Reply-To: " + ", ".join(_addr(*r) for r in s.reply_to))
    if i % 9 == 2:
        headers.append("X-Tags: urgent, Billing")
        s.tags |= {"urgent", "billing"}
    for _, address in [s.to, *s.cc]:
        if "+" in address:
            s.tags |= set(address.split("@")[0].split("+")[1:])
    if i % 6 == 1:
        s.campaign = "Spring Sale 2026"
    elif i % 6 == 4:
        s.campaign = "winter-promo"
    if s.campaign:
        headers.append(f"X-Campaign: {s.campaign}")

    text_part = (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + s.body.encode()
        + b"\r\n"
    )
    body = text_part
    if s.inline:
        html = f'<p>{s.body}</p><img src="cid:logo{i}@x">'.encode()
        body = (
            b'Content-Type: multipart/related; boundary="rel"\r\n\r\n'
            b"--rel\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + html + b"\r\n"
            b"--rel\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: inline\r\n"
            + f"Content-ID: <logo{i}@x>\r\n\r\n".encode()
            + base64.encodebytes(PNG).replace(b"\n", b"\r\n")
            + b"--rel--\r\n"
        )
    if s.filenames:
        name = s.filenames[0]
        ctype, data = ("application/pdf", PDF) if name.endswith(".pdf") else ("image/png", PNG)
        body = (
            b'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n--mix\r\n'
            + body
            + b"--mix\r\n"
            + f"Content-Type: {ctype}; name={name}\r\n".encode()
            + f'Content-Disposition: attachment; filename="{name}"\r\n'.encode()
            + b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(data).replace(b"\n", b"\r\n")
            + b"--mix--\r\n"
        )
    raw = "\r\n".join(headers).encode() + b"\r\n" + body
    s.size = len(raw)
    s.created = (BASE + timedelta(hours=HOURS_APART * i, minutes=30)).timestamp()
    s.read = i % 4 == 0
    rcpts = (s.to[1], *(c[1] for c in s.cc), *s.bcc)
    return s, Envelope(s.sender[1], rcpts), raw


def fill(mb: Mailbox, count: int) -> list[Sent]:
    sent: list[Sent] = []
    for i in range(count):
        s, envelope, raw = build_message(i)
        # One at a time, so store order (newest first in results) is the order of i.
        s.uid = mb.deliver(envelope, raw, received_at=s.created).result(10)
        sent.append(s)
    mb.mark_read([s.uid for s in sent if s.read], True)
    return sent


@dataclass
class Corpus:
    mailbox: Mailbox
    sent: list[Sent]

    def where(self, predicate: Callable[[Sent], bool]) -> set[str]:
        return {s.uid for s in self.sent if predicate(s)}

    def found(self, query: str, tz: str = "") -> set[str]:
        summaries, matched, unread = self.mailbox.search(query, 0, 10_000, tz=tz)
        uids = [m["ID"] for m in summaries]
        assert len(uids) == len(set(uids)) == matched
        assert unread == sum(1 for m in summaries if not m["Read"])
        return set(uids)


@pytest.fixture(scope="module")
def corpus() -> Iterator[Corpus]:
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        yield Corpus(mb, fill(mb, COUNT))
    finally:
        mb.close()


@pytest.fixture
def small() -> Iterator[Corpus]:
    """A fresh mailbox for tests that delete or mark."""
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        yield Corpus(mb, fill(mb, 60))
    finally:
        mb.close()


def test_the_corpus_was_stored_as_generated(corpus: Corpus) -> None:
    assert corpus.mailbox.counts() == (COUNT, sum(1 for s in corpus.sent if not s.read))
    first = corpus.mailbox.summary(corpus.sent[3].uid)
    assert first["Size"] == corpus.sent[3].size
    assert first["Attachments"] == 1


# -- free text ----------------------------------------------------------------------------------


def test_empty_query_lists_everything(corpus: Corpus) -> None:
    assert corpus.found("") == corpus.where(lambda s: True)


@pytest.mark.parametrize("word", ["invoice", "quarterly", "padding", "grace", "photo", "png"])
def test_a_word_matches_subject_addresses_body_and_attachment_names(
    corpus: Corpus, word: str
) -> None:
    expected = corpus.where(lambda s: has_word_prefix(s.searchable(), word))
    assert expected  # the data has some
    assert corpus.found(word) == expected


def test_a_word_finds_attachment_names_only_messages(corpus: Corpus) -> None:
    # "photo" appears nowhere but in the attachment name photo.png.
    assert corpus.found("photo") == corpus.where(lambda s: "photo.png" in s.filenames)


def test_words_match_as_prefixes(corpus: Corpus) -> None:
    assert corpus.found("invo") == corpus.found("invoice")
    assert corpus.found("quart") == corpus.where(lambda s: s.i % 8 == 0)


def test_words_are_case_and_diacritics_insensitive(corpus: Corpus) -> None:
    assert corpus.found("INVOICE") == corpus.found("invoice")
    creme = corpus.where(lambda s: "crème" in s.searchable().lower())
    assert corpus.found("creme") == creme
    assert corpus.found("CRÈME") == creme
    assert corpus.found("jose") == corpus.where(lambda s: s.sender[0] == "José Álvarez")


def test_several_words_must_all_match(corpus: Corpus) -> None:
    assert corpus.found("invoice overdue") == corpus.where(lambda s: s.i % 8 == 1)
    assert corpus.found("meeting padding") == corpus.where(
        lambda s: "meeting" in s.searchable().lower() and "padding" in s.body
    )


def test_a_phrase_matches_adjacent_words_only(corpus: Corpus) -> None:
    assert corpus.found('"quick brown fox"') == corpus.where(lambda s: "quick brown fox" in s.body)
    assert corpus.found('"brown quick"') == set()
    assert corpus.found('"Invoice overdue #1"') == corpus.where(
        lambda s: s.subject.startswith("Invoice overdue #1")
    )


def test_punctuation_in_a_word_is_a_phrase_of_its_parts(corpus: Corpus) -> None:
    assert corpus.found("invoice-3.pdf") == corpus.where(lambda s: "invoice-3.pdf" in s.filenames)
    assert corpus.found("ann@example.com") == corpus.where(
        lambda s: s.sender[1] == "ann@example.com"
    )


def test_negated_words_and_phrases_exclude(corpus: Corpus) -> None:
    everything = corpus.where(lambda s: True)
    assert corpus.found("-invoice") == everything - corpus.found("invoice")
    assert corpus.found("!invoice") == everything - corpus.found("invoice")
    assert corpus.found('-"quick brown"') == everything - corpus.found('"quick brown"')
    assert corpus.found("padding -invoice") == corpus.found("padding") - corpus.found("invoice")


def test_free_text_does_not_search_header_values(corpus: Corpus) -> None:
    assert corpus.found("spring") == set()
    assert corpus.found("header:X-Campaign:spring") != set()


def test_cyrillic_words_in_any_case(corpus: Corpus) -> None:
    privet = corpus.where(lambda s: "Привет" in s.subject or "Привет" in s.body)
    assert corpus.found("привет") == privet
    assert corpus.found("ПРИВЕТ") == privet
    assert corpus.found('"как дела"') == corpus.where(lambda s: "Как дела" in s.body)
    assert corpus.found("петров") == corpus.where(lambda s: s.sender[0] == "Иван Петров")


def test_chinese_japanese_and_korean_words_inside_sentences(corpus: Corpus) -> None:
    def containing(text: str) -> set[str]:
        return corpus.where(lambda s: text in s.subject or text in s.body)

    for word in ["世界", "欢迎", "好", "東京", "タワー", "ようこそ", "하세", "使用我们"]:
        assert containing(word), word
        assert corpus.found(word) == containing(word), word
    assert corpus.found("界世") == set()  # characters must be adjacent and in order
    assert corpus.found("王伟") == corpus.where(lambda s: s.sender[0] == "王伟")


def test_symbols_without_tokens_match_subjects(corpus: Corpus) -> None:
    assert corpus.found("🎉") == corpus.where(lambda s: "🎉" in s.subject)
    assert corpus.found("-🎉") == corpus.where(lambda s: "🎉" not in s.subject)
    assert corpus.found("- ... &") == corpus.where(lambda s: True)


@pytest.mark.parametrize(
    "query", ["foo*", "NEAR(a b)", "AND", "OR", '"', "a:b:c", "^x", "'; DROP TABLE messages; --"]
)
def test_fts_and_sql_syntax_in_a_query_is_just_text(corpus: Corpus, query: str) -> None:
    corpus.found(query)  # no error
    assert corpus.mailbox.counts()[0] == COUNT


# -- address prefixes ----------------------------------------------------------------------------


def test_from_matches_name_or_address_substring(corpus: Corpus) -> None:
    ann = corpus.where(lambda s: s.sender[1] == "ann@example.com")
    assert corpus.found("from:ann") == ann
    assert corpus.found('from:"Ann Smith"') == ann
    assert corpus.found("from:SMITH") == ann
    assert corpus.found("from:<ann@example.com>") == ann
    assert corpus.found("from:example.com") == ann  # example.ru and example.es do not contain it
    assert corpus.found("from:xample") == corpus.where(lambda s: "xample" in s.sender[1])


def test_address_prefixes_do_not_match_json_keys(corpus: Corpus) -> None:
    assert corpus.found("from:name") == set()
    assert corpus.found("to:address") == set()


def test_from_with_cyrillic_and_accented_names(corpus: Corpus) -> None:
    ivan = corpus.where(lambda s: s.sender[0] == "Иван Петров")
    assert corpus.found("from:иван") == ivan
    assert corpus.found("from:ИВАН") == ivan
    assert corpus.found('from:"иван петров"') == ivan
    assert corpus.found("from:ван") == ivan  # a substring inside the word
    assert corpus.found("from:josé") == corpus.where(lambda s: s.sender[0] == "José Álvarez")


def test_address_search_where_json_escapes_the_name() -> None:
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        raw = (
            b'From: "Ann \\"Boss\\" Lee" <ann@x.org>\r\nTo: "C:\\\\Share" <share@x.org>\r\n'
            b"Subject: escapes\r\n\r\nhi\r\n"
        )
        uid = mb.deliver(Envelope("ann@x.org", ("share@x.org",)), raw).result(10)
        for query in ["from:boss", "from:<ann@x.org>", "to:c:\\share", "to:x.org>", "from:lee"]:
            assert [m["ID"] for m in mb.search(query)[0]] == [uid], query
        assert mb.search("to:boss")[0] == []
    finally:
        mb.close()


def test_to_cc_bcc_and_reply_to(corpus: Corpus) -> None:
    assert corpus.found("to:dev") == corpus.where(lambda s: s.to[0] == "Dev Team")
    assert corpus.found("to:ольга") == corpus.where(lambda s: s.to[0] == "Ольга")
    assert corpus.found("cc:grace") == corpus.where(lambda s: s.i % 7 == 0)
    assert corpus.found("cc:дмитрий") == corpus.where(lambda s: s.i % 7 == 3)
    assert corpus.found("bcc:audit") == corpus.where(lambda s: s.i % 11 == 0)
    assert corpus.found("reply-to:support@help.test") == corpus.where(lambda s: s.i % 13 == 0)
    assert corpus.found("to:grace") == set()


def test_addressed_matches_any_address_field(corpus: Corpus) -> None:
    assert corpus.found("addressed:example.ru") == corpus.where(
        lambda s: any("example.ru" in a for _, a in s.addresses())
    )
    assert corpus.found("addressed:support") == corpus.where(lambda s: s.i % 13 == 0)
    assert corpus.found("addressed:audit") == corpus.where(lambda s: s.i % 11 == 0)


def test_negated_address_prefixes(corpus: Corpus) -> None:
    everything = corpus.where(lambda s: True)
    assert corpus.found("-from:ann") == everything - corpus.found("from:ann")
    assert corpus.found("!cc:grace") == everything - corpus.found("cc:grace")
    assert corpus.found("-addressed:example.ru") == everything - corpus.found(
        "addressed:example.ru"
    )


# -- other prefixes ------------------------------------------------------------------------------


def test_subject_is_a_substring_match(corpus: Corpus) -> None:
    assert corpus.found("subject:report") == corpus.where(lambda s: s.i % 8 == 0)
    assert corpus.found("subject:eport") == corpus.where(lambda s: s.i % 8 == 0)
    assert corpus.found("subject:#12") == corpus.where(lambda s: f"#{s.i}".startswith("#12"))
    assert corpus.found('subject:"Привет мир"') == corpus.where(lambda s: s.i % 8 == 2)
    assert corpus.found("subject:привет") == corpus.where(lambda s: s.i % 8 == 2)
    assert corpus.found("subject:世界") == corpus.where(lambda s: s.i % 8 == 3)
    # Words only in the body are not in the subject.
    assert corpus.found("subject:padding") == set()


def test_subject_folds_diacritics(corpus: Corpus) -> None:
    assert corpus.found("subject:creme") == corpus.where(lambda s: s.i % 8 == 5)
    assert corpus.found("subject:brûlée") == corpus.where(lambda s: s.i % 8 == 5)


def test_message_id_with_or_without_angle_brackets(corpus: Corpus) -> None:
    one = {corpus.sent[17].uid}
    assert corpus.found("message-id:msg-17@mail.example.com") == one
    assert corpus.found("message-id:<msg-17@mail.example.com>") == one
    assert corpus.found("message-id:mail.example.com") == corpus.where(lambda s: True)


def test_tags_from_x_tags_and_plus_addresses_case_insensitively(corpus: Corpus) -> None:
    assert corpus.found("tag:urgent") == corpus.where(lambda s: "urgent" in s.tags)
    assert corpus.found("tag:BILLING") == corpus.where(lambda s: "billing" in s.tags)
    assert corpus.found("tag:alpha") == corpus.where(lambda s: "alpha" in s.tags)
    assert corpus.found("tag:gamma") == corpus.where(lambda s: "gamma" in s.tags)
    assert corpus.found("tag:urg") == set()  # a tag is matched whole
    assert corpus.found("-tag:alpha") == corpus.where(lambda s: "alpha" not in s.tags)


def test_is_tagged_read_and_unread(corpus: Corpus) -> None:
    assert corpus.found("is:tagged") == corpus.where(lambda s: bool(s.tags))
    assert corpus.found("-is:tagged") == corpus.where(lambda s: not s.tags)
    assert corpus.found("is:read") == corpus.where(lambda s: s.read)
    assert corpus.found("is:unread") == corpus.where(lambda s: not s.read)
    assert corpus.found("!is:read") == corpus.where(lambda s: not s.read)


def test_has_attachment_and_inline(corpus: Corpus) -> None:
    assert corpus.found("has:attachment") == corpus.where(lambda s: bool(s.filenames))
    assert corpus.found("-has:attachment") == corpus.where(lambda s: not s.filenames)
    assert corpus.found("has:inline") == corpus.where(lambda s: s.inline)
    assert corpus.found("has:inline has:attachment") == corpus.where(
        lambda s: s.inline and bool(s.filenames)
    )


def test_header_presence_and_value_case_insensitively(corpus: Corpus) -> None:
    campaign = corpus.where(lambda s: bool(s.campaign))
    spring = corpus.where(lambda s: s.campaign.startswith("Spring"))
    assert corpus.found("header:X-Campaign") == campaign
    assert corpus.found("header:x-campaign") == campaign
    assert corpus.found("-header:X-Campaign") == corpus.where(lambda s: not s.campaign)
    assert corpus.found("header:X-Campaign:spring") == spring
    assert corpus.found('header:X-Campaign:"spring sale"') == spring
    assert corpus.found("header:X-Campaign:promo") == corpus.where(lambda s: "promo" in s.campaign)
    assert corpus.found("-header:X-Campaign:spring") == corpus.where(
        lambda s: not s.campaign.startswith("Spring")
    )
    assert corpus.found("header:X-Nothing") == set()
    assert corpus.found("header:Subject:Привет") == corpus.where(lambda s: s.i % 8 == 2)


def test_after_and_before_split_at_the_start_of_the_day_in_utc(corpus: Corpus) -> None:
    cut = datetime(2026, 11, 10, tzinfo=UTC).timestamp()
    after = corpus.where(lambda s: s.created >= cut)
    before = corpus.where(lambda s: s.created < cut)
    assert after and before
    assert corpus.found("after:2026-11-10") == after
    assert corpus.found("before:2026-11-10") == before
    assert corpus.found("-after:2026-11-10") == before


def test_after_and_before_follow_the_time_zone(corpus: Corpus) -> None:
    tokyo = datetime(2026, 11, 10, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
    utc = datetime(2026, 11, 10, tzinfo=UTC).timestamp()
    expected = corpus.where(lambda s: s.created >= tokyo)
    assert corpus.found("after:2026-11-10", tz="Asia/Tokyo") == expected
    # Tokyo's midnight is 15:00 UTC the day before: a few more messages.
    assert expected - corpus.found("after:2026-11-10") == corpus.where(
        lambda s: tokyo <= s.created < utc
    )
    assert corpus.found("after:2026-11-10 before:2026-11-12", tz="America/New_York") == (
        corpus.where(
            lambda s: (
                datetime(2026, 11, 10, 5, tzinfo=UTC).timestamp()
                <= s.created
                < datetime(2026, 11, 12, 5, tzinfo=UTC).timestamp()
            )
        )
    )


def test_after_with_a_time_of_day(corpus: Corpus) -> None:
    cut = datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()
    assert corpus.found("after:2026-11-20T12:00:00Z") == corpus.where(lambda s: s.created >= cut)


def test_day_boundaries_are_exact() -> None:
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        midnight = datetime(2026, 11, 21, tzinfo=UTC).timestamp()
        for label, at in [("late", midnight - 1), ("midnight", midnight), ("early", midnight + 1)]:
            raw = f"From: a@x.org\r\nTo: b@x.org\r\nSubject: {label}\r\n\r\nhi\r\n".encode()
            env = Envelope("a@x.org", ("b@x.org",))
            mb.deliver(env, raw, received_at=at).result(10)

        def subjects(query: str) -> list[str]:
            return [m["Subject"] for m in mb.search(query)[0]]

        assert subjects("after:2026-11-21") == ["early", "midnight"]
        assert subjects("before:2026-11-21") == ["late"]
        assert subjects("after:2026-11-20 before:2026-11-21") == ["late"]
    finally:
        mb.close()


def test_larger_and_smaller_are_strict_byte_comparisons(corpus: Corpus) -> None:
    assert corpus.found("larger:5k") == corpus.where(lambda s: s.size > 5 * 1024)
    assert corpus.found("smaller:2k") == corpus.where(lambda s: s.size < 2 * 1024)
    assert corpus.found("larger:1k smaller:3000") == corpus.where(lambda s: 1024 < s.size < 3000)
    assert corpus.found("-larger:5k") == corpus.where(lambda s: s.size <= 5 * 1024)
    exact = corpus.sent[0].size
    assert corpus.sent[0].uid not in corpus.found(f"larger:{exact}")
    assert corpus.sent[0].uid not in corpus.found(f"smaller:{exact}")


def test_combinations_of_prefixes_words_and_negations(corpus: Corpus) -> None:
    cut = datetime(2026, 11, 10, tzinfo=UTC).timestamp()
    expectations: dict[str, Callable[[Sent], bool]] = {
        "from:bob has:attachment -is:read after:2026-11-10": lambda s: (
            s.sender[0] == "Bob Jones" and bool(s.filenames) and not s.read and s.created >= cut
        ),
        'invoice -subject:invoice tag:billing "payment is due"': lambda s: (
            "Payment is due" in s.body and "Invoice" not in s.subject and "billing" in s.tags
        ),
        "привет -from:иван is:unread": lambda s: (
            ("Привет" in s.subject or "Привет" in s.body)
            and s.sender[0] != "Иван Петров"
            and not s.read
        ),
        "世界 -東京 -is:read": lambda s: (
            "世界" in s.subject + s.body and "東京" not in s.subject + s.body and not s.read
        ),
    }
    for query, predicate in expectations.items():
        expected = corpus.where(predicate)
        assert 0 < len(expected) < COUNT, query  # each selects some messages, not all
        assert corpus.found(query) == expected, query


# -- the Mailbox API -----------------------------------------------------------------------------


def test_search_pages_newest_first_with_total_and_unread_counts(corpus: Corpus) -> None:
    mb = corpus.mailbox
    expected = [s for s in reversed(corpus.sent) if has_word_prefix(s.searchable(), "invoice")]
    unread = sum(1 for s in expected if not s.read)
    pages = []
    for start in range(0, len(expected) + 7, 7):
        page, matched, unread_matched = mb.search("invoice", start, 7)
        assert (matched, unread_matched) == (len(expected), unread)
        pages += [m["ID"] for m in page]
    assert pages == [s.uid for s in expected]
    page, matched, _ = mb.search("invoice", len(expected) + 100, 7)
    assert page == [] and matched == len(expected)


def test_search_raises_search_error_for_bad_queries(corpus: Corpus) -> None:
    with pytest.raises(SearchError, match="unknown time zone"):
        corpus.mailbox.search("after:2026-11-01", tz="Nowhere/City")
    with pytest.raises(SearchError, match="before: needs a date"):
        corpus.mailbox.delete_search("before:yesterday")
    with pytest.raises(SearchError, match="is: needs read"):
        corpus.mailbox.mark_search("is:new")
    assert corpus.mailbox.counts()[0] == COUNT


def test_delete_search_deletes_exactly_what_search_lists(small: Corpus) -> None:
    mb = small.mailbox
    query = "has:attachment -from:bob"
    listed = small.found(query)
    assert listed == small.where(lambda s: bool(s.filenames) and s.sender[0] != "Bob Jones")
    gone = mb.delete_search(query)
    assert set(gone) == listed and len(gone) == len(listed)
    assert small.found(query) == set()
    assert small.found("") == small.where(lambda s: True) - listed
    assert mb.counts()[0] == len(small.sent) - len(listed)


def test_mark_search_marks_exactly_what_search_lists(small: Corpus) -> None:
    mb = small.mailbox
    query = "tag:urgent"
    listed = small.found(query)
    unread_before = small.found("is:unread")
    changed = mb.mark_search(query, True)
    assert set(changed) == listed & unread_before  # only those that were unread change
    assert small.found("is:unread") == unread_before - listed
    changed = mb.mark_search(query, False)
    assert set(changed) == listed
    assert small.found("is:unread") == unread_before | listed
    assert small.found("is:read") == small.where(lambda s: s.read) - listed


def test_id_and_read_only_searches_are_recognised() -> None:
    # Those read (id, read) from the slim index (store/queries.py _by_id); anything reading other
    # columns of the message row must not.
    from mailpit_py.store.search_sql import ids_and_read_only

    assert ids_and_read_only(parse_query('header:X-Campaign:c3 invoice "two words" is:unread'))
    assert ids_and_read_only(parse_query("tag:work -header:Subject:x"))
    assert not ids_and_read_only(parse_query("from:a@example.com"))
    assert not ids_and_read_only(parse_query("header:Subject:x larger:10"))
    assert not ids_and_read_only(parse_query("🎉"))  # no FTS token: a subject scan
    assert not ids_and_read_only([])
