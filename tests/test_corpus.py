"""parse_message over the hand-written test messages and the external real-world corpus.

The hand-written messages are tests/messages/ (manifest.json says what parsing must make of
each). The real-world corpus is never copied into the repository: it lives at ../shared/corpus
next to the checkout, or wherever MAILPIT_PY_CORPUS points. Without it its tests skip, except in
CI (CI=true) where they fail; the hand-written half always runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from helpers import MESSAGES, corpus_dir, corpus_names, corpus_root, external_corpus_path
from mailpit_py.checks.dkim_check import verify_all
from mailpit_py.models import Address, Envelope, ParsedMessage, Part
from mailpit_py.net.dns import Resolver, load_overrides
from mailpit_py.parse import bodies, mime
from mailpit_py.parse.message import parse_message

ENVELOPE = Envelope(mail_from="sender@example.com", rcpt_to=())
ABSENT = "<corpus absent>"
MANIFEST: list[dict[str, Any]] = json.loads((MESSAGES / "manifest.json").read_text("utf-8"))[
    "files"
]


def every_file() -> list[Any]:
    """(corpus, file) for every hand-written message and every file in the external corpus's
    manifest, read at collection time (one placeholder when the external corpus is absent)."""
    params = [pytest.param("messages", n, id=f"messages/{n}") for n in corpus_names(MESSAGES)]
    try:
        external = corpus_names(external_corpus_path())
    except (OSError, ValueError, KeyError, TypeError):
        external = [ABSENT]
    return params + [pytest.param("external", n, id=f"external/{n}") for n in external]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The external corpus directory; a missing corpus fails in CI and skips elsewhere."""
    return corpus_dir()


def load(corpus: Path, name: str) -> ParsedMessage:
    return parse_message((corpus / name).read_bytes(), ENVELOPE)


class Reads:
    """What a parse read: header blocks, and parts its multipart bodies were split into."""

    def __init__(self) -> None:
        self.header_blocks = 0
        self.parts = 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Counts, in a test's parses, calls of the parser's own header reader and multipart
    splitter (each still does its work): how much a parse read, without a clock."""
    counted = Reads()
    read_header_block, split_multipart = mime._read_header_block, mime._split_multipart

    def read_counted(*args: Any) -> Any:
        counted.header_blocks += 1
        return read_header_block(*args)

    def split_counted(*args: Any) -> Any:
        ranges, closed = split_multipart(*args)
        counted.parts += len(ranges)
        return ranges, closed

    monkeypatch.setattr(mime, "_read_header_block", read_counted)
    monkeypatch.setattr(bodies, "_read_header_block", read_counted)
    monkeypatch.setattr(mime, "_split_multipart", split_counted)
    return counted


# --- every file -------------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "name"), every_file())
def test_corpus_file_parses_without_raising(which: str, name: str, reads: Reads) -> None:
    raw = (corpus_root(which) / name).read_bytes()
    msg = parse_message(raw, ENVELOPE)
    assert isinstance(msg, ParsedMessage)
    assert msg.message_id
    assert not any(w.startswith("Message could not be parsed") for w in msg.warnings)
    parts = (*msg.attachments, *msg.inline)
    for part in parts:
        assert part.size == len(part.data)
        assert part.sha256 == hashlib.sha256(part.data).hexdigest()
    # Each header block is read once: the message's, each part's, and an enclosed message's
    # own (its Subject names it); what an enclosed message holds is neither read nor listed.
    # (How long parsing takes is measured in bench/, not asserted here.)
    enclosed = [p.part_id for p in parts if p.content_type in ("message/rfc822", "message/global")]
    assert reads.header_blocks <= 1 + reads.parts + len(enclosed)
    assert not [p.part_id for p in parts if any(p.part_id.startswith(f"{e}.") for e in enclosed)]


# --- the hand-written messages, as their manifest describes them ------------------------------

# The kinds of message the external corpus covers (its SOURCES.md); the hand-written set covers
# each of them too, so a fresh clone tests them all.
KINDS = {
    "plain",
    "alt",
    "html-cid",
    "attach-image",
    "attach-pdf",
    "b64",
    "qp",
    "8bit",
    "charset-iso-8859-x",
    "charset-koi8-r",
    "rfc2231",
    "rfc2047",
    "nested-rfc822",
    "digest",
    "dsn",
    "malformed-boundary",
    "malformed-headers",
    "lf-only",
    "long-lines",
    "hdr8bit",
    "malformed-8bit-header",
    "dkim-verifiable",
}


def test_hand_written_messages_cover_every_kind_and_match_their_manifest() -> None:
    tags = {tag for entry in MANIFEST for tag in entry["tags"]}
    assert tags >= KINDS, f"no hand-written message for {sorted(KINDS - tags)}"
    assert sorted(p.name for p in MESSAGES.glob("*.eml")) == sorted(corpus_names(MESSAGES))
    for entry in MANIFEST:
        # Byte-exact: a checkout that rewrote line endings or charsets would test other mail.
        data = (MESSAGES / entry["file"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (
            entry["size"],
            entry["sha256"],
        ), f"{entry['file']} differs from manifest.json (line endings rewritten?)"


def check_part(part: Part, want: dict[str, Any]) -> None:
    got = (part.part_id, part.filename, part.content_type, part.content_id)
    assert got == (want["part"], want["filename"], want["type"], want["cid"])
    if "starts_hex" in want:
        assert part.data.startswith(bytes.fromhex(want["starts_hex"])), part.data[:16]
    if "text" in want:
        charset, text = want["text"]
        assert part.data.decode(charset) == text


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_hand_written_message_parses_as_its_manifest_says(entry: dict[str, Any]) -> None:
    msg = load(MESSAGES, entry["file"])
    want = entry["expect"]
    if "subject" in want:
        assert msg.subject == want["subject"]
    if "from" in want:
        assert msg.from_addr == Address(*want["from"])
    if "to" in want:
        assert msg.to == tuple(Address(*a) for a in want["to"])
    assert msg.text.startswith(want["text_startswith"]), msg.text[:200]
    if "html" in want:
        assert msg.html == want["html"]
    if "html_contains" in want:
        assert want["html_contains"] in msg.html, msg.html[:200]
    assert len(msg.attachments) == len(want["attachments"]), msg.attachments
    for part, expected in zip(msg.attachments, want["attachments"], strict=True):
        check_part(part, expected)
    assert len(msg.inline) == len(want["inline"]), msg.inline
    for part, expected in zip(msg.inline, want["inline"], strict=True):
        check_part(part, expected)
    assert list(msg.warnings) == want["warnings"]


SIGNED = [(e["file"], e["dkim"]) for e in MANIFEST if "dkim" in e]


def hand_written_resolver() -> Resolver:
    return Resolver(load_overrides(str(MESSAGES / "dkim-keys" / "dns-records.txt")), offline=True)


@pytest.mark.parametrize(("name", "algorithms"), SIGNED)
def test_hand_written_signed_messages_verify_with_the_key_file_beside_them(
    name: str, algorithms: list[str]
) -> None:
    raw = (MESSAGES / name).read_bytes()
    sigs = verify_all(raw, hand_written_resolver())
    assert [s.algorithm for s in sigs] == algorithms
    for s in sigs:
        assert (s.result, s.body_hash_ok, s.signature_ok, s.reason) == ("pass", True, True, "")
        assert (s.domain, "/" in s.canonicalization) == ("signed.example.com", True)
    head, body = raw.split(b"\r\n\r\n", 1)
    tampered = verify_all(head + b"\r\n\r\nTampered line.\r\n" + body, hand_written_resolver())
    assert [(s.result, s.body_hash_ok) for s in tampered] == [("fail", False)] * len(algorithms)
    changed = raw.replace(b"\r\nSubject: ", b"\r\nSubject: [changed] ", 1)
    assert [s.result for s in verify_all(changed, hand_written_resolver())] == ["fail"] * len(
        algorithms
    )


# --- Mailpit's own test messages (expectations from internal/storage/messages_test.go) ----------


def test_mailpit_mime_attachment_splits_inline_image_and_pdf(corpus: Path) -> None:
    msg = load(corpus, "mailpit/mime-attachment.eml")
    assert msg.from_addr == Address("Sender Smith", "sender2@example.com")
    assert msg.to == (Address("Recipient Ross", "recipient2@example.com"),)
    assert msg.subject == "inline + attachment"
    assert msg.message_id == "33af2ac1-c33d-9738-35e3-a6daf90bbd89@gmail.com"
    assert msg.snippet == "Message with inline image and attachment:"
    assert [(p.part_id, p.filename) for p in msg.attachments] == [("2", "Sample PDF.pdf")]
    assert [(p.part_id, p.filename) for p in msg.inline] == [("1.2.2", "inline-image.jpg")]
    assert msg.inline[0].data.startswith(b"\xff\xd8\xff")  # a JPEG after base64 decoding


def test_mailpit_inline_attachment_is_inline(corpus: Path) -> None:
    msg = load(corpus, "mailpit/inline-attachment.eml")
    assert msg.attachments == ()
    assert [p.content_id for p in msg.inline] == ["test1@example.com"]


def test_mailpit_regular_attachment_has_mailpits_checksums(corpus: Path) -> None:
    msg = load(corpus, "mailpit/regular-attachment.eml")
    assert msg.inline == ()
    [part] = msg.attachments
    assert part.content_id == ""
    assert part.md5 == "b04930eb1ba0c62066adfa87e5d262c4"
    assert part.sha1 == "15605d6a2fca44e966209d1701f16ecf816df880"
    assert part.sha256 == "92c4ccff376003381bd9054d3da7b32a3c5661905b55e3b0728c17aba6d223ec"


def test_mailpit_mixed_attachment_has_one_inline_and_one_attachment(corpus: Path) -> None:
    msg = load(corpus, "mailpit/mixed-attachment.eml")
    assert [p.content_id for p in msg.inline] == ["inline@example.com"]
    assert [(p.filename, p.content_id) for p in msg.attachments] == [("document.pdf", "")]


def test_mailpit_plain_text_message(corpus: Path) -> None:
    msg = load(corpus, "mailpit/plain-text.eml")
    assert msg.subject == "Plain text message"
    assert msg.from_addr == Address("Sender Smith", "sender@example.com")
    assert msg.html == ""
    assert msg.text.startswith("Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    assert msg.attachments == () and msg.inline == ()
    assert msg.warnings == ()


# --- charsets and encoded words -----------------------------------------------------------------


def test_japanese_iso_2022_jp_subject_name_and_body(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/japanese_iso_2022.eml")
    assert msg.subject == "まみむめも"
    assert msg.to == (Address("みける", "raasdnil@gmail.com"),)
    assert msg.text == "すみません。\n\n"


def test_japanese_shift_jis_body(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/japanese_shift_jis.eml")
    assert msg.text.startswith("あいうえお\n\nこのメールはテスト用のメールです。")


def test_japanese_rfc2231_long_attachment_name(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/japanese_attachment_long_name.eml")
    assert msg.subject == "まみむめも" * 10
    [part] = msg.attachments
    assert part.filename == "かきくけこ" * 5 + ".txt"
    assert part.data == b"this is the data\r\n"


def test_shift_jis_text_attachment_of_an_iso_2022_jp_message(corpus: Path) -> None:
    msg = load(corpus, "spamassassin/iso-2022-jp.1")
    assert msg.subject == "MIME text/plain attach with Shift_JIS (CP932)"
    assert msg.from_addr == Address("Shinichiro HIDA", "shinichiro@stained-g.net")
    sjis = msg.attachments[0]
    assert (sjis.part_id, sjis.filename) == ("2", "test-sjis.txt")
    assert sjis.data.decode("cp932").startswith("このファイルの形式は、")


def test_cyrillic_koi8_r_encoded_word_filename(corpus: Path) -> None:
    msg = load(corpus, "mime4j/russian-headers.msg")
    [part] = msg.attachments
    assert (part.part_id, part.filename, part.content_type) == ("1", "Список.doc", "text/plain")


def test_korean_ks_c_5601_1987_body(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/ks_c_5601-1987.eml")
    assert msg.text == "스티해\n"
    assert msg.warnings == ()


def test_korean_euc_kr_encoded_words_mixed_with_plain_text(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/raw_email_with_partially_quoted_subject.eml")
    assert msg.subject == 'Re: Test: "漢字" mid "漢字" tail'
    assert msg.text.startswith("대부분의 마찬가지로, 우리는 하나님을 믿습니다.")


def test_chinese_raw_gb2312_headers_use_the_body_charset(corpus: Path) -> None:
    msg = load(corpus, "spamassassin/gb2312.1")
    assert msg.from_addr == Address("台湾鑫龙商贸集团公司", "1234@e34.com")
    assert msg.subject == "全新原装进口，送货上门，货到付款－台湾鑫龙商贸集团公司向您拜年!"
    assert "From header contains raw 8-bit bytes that are not UTF-8, decoded as gb2312" in (
        msg.warnings
    )


def test_chinese_big5_subject_and_base64_html_with_a_list_footer(corpus: Path) -> None:
    msg = load(corpus, "spamassassin/big5-base64.1")
    assert msg.subject.startswith("[SLAT-talk] 鉅靡6月17日新片又到.如有重複寄發.敬請原諒!")
    assert "永久網址" in msg.html
    assert msg.snippet.startswith("永久網址：gimit.cn.st")
    assert (
        "Part 1: base64 data has text after the end of the data; decoded what was possible"
        in msg.warnings
    )


def test_raw_utf8_headers(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/utf8_headers.eml")
    assert msg.from_addr == Address("Jöhn Doe", "jdöe@mächine.example")
    assert msg.to == (Address("Märy Smith", "märy@exämple.net"),)
    assert msg.subject == "Säying Hello"


def test_raw_utf8_emoji_subject(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/attachment_pdf.eml")
    assert msg.subject == "Another PDF with 🎉 Unicode chars in it 🍿"
    assert [p.filename for p in msg.attachments] == ["broken.pdf"]


def test_utf16_and_euc_jp_parts(corpus: Path) -> None:
    msg = load(corpus, "stalwart/thirdparty-005.eml")
    assert msg.text == "Test message\n"  # UTF-16LE with binary transfer encoding
    assert [p.part_id for p in msg.attachments] == ["2", "3", "4", "5"]
    assert msg.attachments[0].data.decode("utf-16-be") == "Test message\n"
    assert (
        "Message: multipart/mixed has no closing boundary delimiter (RFC 2046 section 5.1.1)"
        in msg.warnings
    )


def test_html_meta_charset_windows_1250_gives_a_euro_sign(corpus: Path) -> None:
    msg = load(corpus, "enmime/non-mime-missing-charset.raw")
    assert "€" in msg.html
    assert "\x80" not in msg.html


# --- attachment names ---------------------------------------------------------------------------


def filenames(msg: ParsedMessage) -> list[str]:
    return [p.filename for p in msg.attachments]


def test_rfc2231_utf8_filenames(corpus: Path) -> None:
    assert filenames(load(corpus, "mime4j/attachment-filename-encoding-UTF8.msg")) == [
        "attachment.äöü"
    ]
    msg = load(corpus, "mikel-mail/attachment_with_quoted_filename.eml")
    assert msg.subject == "Eelanalüüsi päring"
    assert filenames(msg) == ["Eelanalüüsi päring.jpg"]


def test_raw_8bit_attachment_filenames(corpus: Path) -> None:
    assert filenames(load(corpus, "enmime/mime-bad-8bit-filename.raw")) == ["管理.doc"]
    assert filenames(load(corpus, "mikel-mail/attachment_nonascii_filename.eml")) == ["ciële.txt"]


def test_nodemailer_message(corpus: Path) -> None:
    msg = load(corpus, "nodemailer-mailparser/nodemailer.eml")
    assert msg.subject == "Nodemailer is unicode friendly ✔ (1476358788189)"
    assert msg.text == "Hello to myself!"
    assert msg.tags == ("123",)  # from andris+123@kreata.ee
    # The cid: images say Content-Disposition: attachment, which wins (as in Mailpit).
    assert [(p.part_id, p.filename) for p in msg.attachments] == [
        ("1.2", ""),
        ("1.3.2", "image.png"),
        ("1.3.3", "nyan cat ✔.gif"),
        ("2", "notes.txt"),
    ]
    assert msg.attachments[0].content_type == "text/watch-html"


# --- structure ----------------------------------------------------------------------------------


def test_torture_test_top_level_parts(corpus: Path) -> None:
    msg = load(corpus, "flanker/torture.eml")
    assert msg.subject == "Multi-media mail demonstration"
    assert msg.text.startswith("This is a demonstration of multi-part mail")
    # Enclosed messages are single attachments: their own parts are not listed.
    assert [(p.part_id, p.content_type) for p in msg.attachments] == [
        ("2", "message/rfc822"),
        ("3", "message/rfc822"),
        ("4", "audio/basic"),
        ("5", "image/pbm"),
        ("6", "message/rfc822"),
        ("7", "message/rfc822"),
        ("8", "message/rfc822"),
        ("9", "message/rfc822"),
        ("10", "image/gif"),
        ("11", "message/rfc822"),
        ("12", "message/rfc822"),
    ]
    assert msg.attachments[1].filename == "Re: multipart mail.eml"
    parts = {p.part_id: p for p in msg.attachments}
    assert parts["10"].data.startswith(b"GIF87a")
    assert parts["4"].size == 26476


def test_enclosed_endless_is_one_attachment_read_no_further(corpus: Path, reads: Reads) -> None:
    raw = (corpus / "flanker/enclosed-endless.eml").read_bytes()
    msg = parse_message(raw, ENVELOPE)
    # Three header blocks read, the message's and its two parts': none of the thousands of
    # parts of the 3 MB enclosed message (named by its Content-Type, so not even its own).
    assert (reads.header_blocks, reads.parts) == (3, 2)
    assert msg.text == "Hello\n"
    assert [(p.part_id, p.content_type, p.filename) for p in msg.attachments] == [
        ("2", "message/rfc822", "thanks.eml")
    ]
    assert msg.attachments[0].size > 2_900_000


def test_digest_parts_default_to_message_rfc822(corpus: Path) -> None:
    msg = load(corpus, "cpython/msg_02.txt")
    digest = [(p.part_id, p.filename) for p in msg.attachments if p.part_id.startswith("3.")]
    assert digest == [
        ("3.1", "[Ppp] testing #1.eml"),
        ("3.2", "message.eml"),  # message 2 has no Subject
        ("3.3", "[Ppp] testing #3.eml"),
        ("3.4", "[Ppp] testing #4.eml"),
        ("3.5", "[Ppp] testing #5.eml"),
    ]


def test_delivery_status_notification_parts(corpus: Path) -> None:
    msg = load(corpus, "cpython/msg_16.txt")
    assert msg.text.startswith("This report relates to a message you sent")
    assert [(p.content_type, p.filename) for p in msg.attachments] == [
        ("message/delivery-status", ""),
        ("message/rfc822", "[scr] yeah for Ians!!.eml"),
    ]


def test_inline_images_in_related(corpus: Path) -> None:
    enmime = load(corpus, "enmime/html-mime-inline.raw")
    assert [(p.part_id, p.filename) for p in enmime.inline] == [("2.2", "favicon.png")]
    gmail = load(corpus, "mimekit/related.msg")
    assert [(p.filename, p.content_id) for p in gmail.inline] == [
        ("Christopher-Lloyd-as-Doc-Brown.jpg", "ii_15071bf7ff349334")
    ]
    assert gmail.attachments == ()


def test_base64_encoded_root_image(corpus: Path) -> None:
    msg = load(corpus, "nodemailer-mailparser/base64encodedroot.eml")
    [part] = msg.attachments
    assert (part.part_id, part.content_type, part.filename) == ("1", "image/png", "screenshot.png")
    assert part.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert part.size == 425


def test_base64_encoded_message_rfc822(corpus: Path) -> None:
    msg = load(corpus, "mime4j/base64encoded-rfc822message-nested.msg")
    [part] = msg.attachments
    assert part.content_type == "message/rfc822"
    assert part.filename == "a simple rfc822 message encoded in a base64 body..eml"
    assert part.data.startswith(b"MIME-Version: 1.0\r\n")
    assert "Part 1: message/rfc822 must not use Content-Transfer-Encoding 'base64'" in (
        msg.warnings
    )


def test_forwarded_messages_keep_their_declared_names(corpus: Path) -> None:
    msg = load(corpus, "stalwart/thirdparty-015.eml")
    assert [(p.content_type, p.filename) for p in msg.attachments] == [
        ("message/rfc822", "training-mail.txt"),
        ("message/rfc822", "office-reply.txt"),
        ("message/rfc822", "shop-mail.txt"),
    ]


# --- malformed messages and their warnings --------------------------------------------------------


def test_multipart_without_boundary_warns(corpus: Path) -> None:
    msg = load(corpus, "cpython/msg_25.txt")
    assert "Message: multipart/report has no boundary parameter (RFC 2046 section 5.1.1)" in (
        msg.warnings
    )
    assert msg.text.startswith("This is a MIME-encapsulated message")


def test_missing_closing_boundary_warns(corpus: Path) -> None:
    msg = load(corpus, "flanker/missing-final-boundary.eml")
    assert msg.text == "Some body\n"
    expected = "Message: multipart/alternative has no closing boundary delimiter"
    assert any(w.startswith(expected) for w in msg.warnings)
    gmail = load(corpus, "mimekit/multipart-no-end-boundary.msg")
    assert gmail.text == "Multipart message without closing boundary\n"
    assert gmail.html.startswith('<div dir="ltr">Multipart message without closing boundary')


def test_long_lines_warning(corpus: Path) -> None:
    msg = load(corpus, "mime4j/basic-plain-very-long-lines.msg")
    assert "Line 11 is 7080 octets long; RFC 5322 section 2.1.1 limits lines to 998" in (
        msg.warnings
    )


def test_bad_encoded_subject_keeps_its_text(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/bad_encoded_subject.eml")
    assert msg.subject == "TEST"
    assert "Subject header: unknown charset 'NONE', decoded as UTF-8" in msg.warnings
    assert "Subject header: RFC 2047 encoded-word has base64 with bad padding" in msg.warnings


def test_invalid_transfer_encoding_tokens(corpus: Path) -> None:
    seven = load(corpus, "mikel-mail/content_transfer_encoding_7-bit.eml")
    assert "Part 1: unknown Content-Transfer-Encoding '7-bit', treated as 7bit" in seven.warnings
    assert seven.text.startswith("DISCOVER")
    empty = load(corpus, "mikel-mail/content_transfer_encoding_empty.eml")
    assert "Part 1: empty Content-Transfer-Encoding, treated as 7bit" in empty.warnings
    assert empty.html.startswith("<html>")


def test_malformed_base64_attachment(corpus: Path) -> None:
    msg = load(corpus, "enmime/malformed-base64-attach.raw")
    assert [(p.filename, p.data) for p in msg.attachments] == [("some.doc", b"<html>\n")]
    assert "Part 2: base64 data has invalid characters; decoded what was possible" in (msg.warnings)


def test_text_mislabelled_as_base64(corpus: Path) -> None:
    msg = load(corpus, "enmime/mime-bad-content-transfer-encoding.raw")
    assert msg.text.startswith("ploozdect  nispplul swunkglap")
    assert "Part 1: declared as base64 but the content is not base64; shown as it is" in (
        msg.warnings
    )


def test_headers_without_separating_blank_line(corpus: Path) -> None:
    msg = load(corpus, "cpython/msg_35.txt")
    assert msg.subject == "here's something interesting"
    assert msg.text == "counter to RFC 5322, there's no separating newline here\n"
    assert any("the header section does not end with an empty line" in w for w in msg.warnings)


def test_obsolete_header_syntax(corpus: Path) -> None:
    msg = load(corpus, "mime4j/obsolete.msg")
    assert msg.subject == (
        "The obsolete syntax allow spaces before the colon and also empty lines in folding."
    )
    assert msg.date is None
    assert "Date header 'Malformed Date.' could not be parsed" in msg.warnings
    assert ("HeaderWithWSP", "value.") in msg.headers


def test_first_header_line_starting_with_whitespace(corpus: Path) -> None:
    msg = load(corpus, "enmime/bad-header-start.raw")
    assert msg.from_addr == Address("James Hillyerd", "james@makita.skynet")
    assert msg.text == "A text section"
    assert "Message: the first header line starts with whitespace" in msg.warnings


def test_message_without_from(corpus: Path) -> None:
    msg = load(corpus, "dkimpy/test_nofrom.message")
    assert msg.from_addr is None
    assert "Message has no From header" in msg.warnings


def test_date_with_an_invalid_zone_and_raw_8bit_subject(corpus: Path) -> None:
    msg = load(corpus, "mikel-mail/trademark_character_in_subject.eml")
    assert msg.subject == "GA.comô has a lead for you"
    assert msg.date is not None and msg.date.utcoffset() is not None
    assert any("has no valid time zone; UTC assumed" in w for w in msg.warnings)


def test_broken_8bit_headers_keep_the_valid_utf8(corpus: Path) -> None:
    msg = load(corpus, "flanker/mailformed-headers.eml")
    assert msg.from_addr is not None
    assert msg.from_addr.name.startswith("Юникод запрещен")
    assert msg.from_addr.address == "headers@gmail.com"
    assert "Message: multipart/alternative boundary '--faf__fawf' never appears in the body" in (
        msg.warnings
    )


def test_address_header_that_breaks_the_stdlib_parser(corpus: Path) -> None:
    msg = load(corpus, "mimekit/stack-overflow.txt")
    assert msg.to == (Address("test", "test@test.com"),)
    assert msg.subject == "Message Subject"


def test_huge_folded_subject(corpus: Path) -> None:
    msg = load(corpus, "flanker/long-header.eml")
    assert msg.subject.startswith("Die heiße Zypernsonne quälte Max und Victoria ja böse")
    assert len(msg.subject) > 100_000
    assert msg.text == "test"
