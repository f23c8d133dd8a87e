"""MIME charset labels to Python codecs, and text decoding that falls back instead of failing."""

from __future__ import annotations

import codecs
from functools import lru_cache

from mailpit_py.parse.warnings import Warn

# Charset labels Python lacks or decodes too narrowly. Real mail labels text with the legacy
# name while using the vendor superset, so map to the superset (as the WHATWG Encoding standard
# does); a tuple is tried in order. None marks labels that name no charset at all.
_CHARSET_ALIASES: dict[str, tuple[str, ...] | None] = {
    "us-ascii": ("ascii",),
    "ascii": ("ascii",),
    "ansi_x3.4-1968": ("ascii",),
    "iso-8859-1": ("cp1252", "latin-1"),
    "iso8859-1": ("cp1252", "latin-1"),
    "iso_8859-1": ("cp1252", "latin-1"),
    "latin1": ("cp1252", "latin-1"),
    "latin-1": ("cp1252", "latin-1"),
    "l1": ("cp1252", "latin-1"),
    "iso-8859-9": ("cp1254", "iso8859-9"),
    "iso-8859-11": ("cp874",),
    "tis-620": ("cp874",),
    "windows-874": ("cp874",),
    "iso-8859-8-i": ("iso8859-8",),
    "iso-8859-8-e": ("iso8859-8",),
    "iso-8859-6-i": ("iso8859-6",),
    "iso-8859-6-e": ("iso8859-6",),
    "ks_c_5601-1987": ("cp949",),
    "ks_c_5601-1989": ("cp949",),
    "ks_c_5601": ("cp949",),
    "ksc5601": ("cp949",),
    "ksc_5601": ("cp949",),
    "korean": ("cp949",),
    "euc-kr": ("cp949",),
    "windows-949": ("cp949",),
    "uhc": ("cp949",),
    "gb2312": ("gb18030",),
    "gb_2312-80": ("gb18030",),
    "csgb2312": ("gb18030",),
    "euc-cn": ("gb18030",),
    "chinese": ("gb18030",),
    "gbk": ("gb18030",),
    "cp936": ("gb18030",),
    "windows-936": ("gb18030",),
    "big5": ("big5hkscs", "cp950"),
    "big-5": ("big5hkscs", "cp950"),
    "cn-big5": ("big5hkscs", "cp950"),
    "csbig5": ("big5hkscs", "cp950"),
    "x-x-big5": ("big5hkscs", "cp950"),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "shift-jis": ("cp932", "shift_jis_2004"),
    "sjis": ("cp932", "shift_jis_2004"),
    "x-sjis": ("cp932", "shift_jis_2004"),
    "ms_kanji": ("cp932",),
    "csshiftjis": ("cp932",),
    "windows-31j": ("cp932",),
    "iso-2022-jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_3", "iso2022_jp_2"),
    "csiso2022jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_3", "iso2022_jp_2"),
    "euc-jp": ("euc_jp", "euc_jis_2004"),
    "unicode-1-1-utf-7": ("utf-7",),
    "x-unicode20utf7": ("utf-7",),
    "csunicode11utf7": ("utf-7",),
    "unicode-1-1-utf-8": ("utf-8",),
    "unicode-2-0-utf-8": ("utf-8",),
    "x-unicode20utf8": ("utf-8",),
    "ucs-2": ("utf-16",),
    "unicode": ("utf-16",),
    "x-mac-roman": ("mac_roman",),
    "x-mac-cyrillic": ("mac_cyrillic",),
    "x-mac-ce": ("mac_latin2",),
    "x-mac-greek": ("mac_greek",),
    "x-mac-turkish": ("mac_turkish",),
    "x-mac-icelandic": ("mac_iceland",),
    "koi8": ("koi8_r",),
    "koi8-ru": ("koi8_u",),
    "x-unknown": None,
    "unknown": None,
    "unknown-8bit": None,
    "x-unknown-8bit": None,
    "x-user-defined": None,
    "none": None,
    "default": None,
    "charset": None,
}
# Text codecs that are not charsets: never let a message pick them.
_CODEC_BLOCKLIST = frozenset(
    {"unicode-escape", "raw-unicode-escape", "undefined", "punycode", "idna", "mbcs", "oem"}
)
_ASCII_CODECS = ("ascii",)


@lru_cache(maxsize=512)
def _codecs_for(label: str) -> tuple[str, ...] | None:
    """Python codecs to try for a MIME charset label, or None when the label is unusable."""
    name = label.strip().strip("\"'").strip().lower()
    if not name:
        return None
    if name in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[name]
    candidates = [name]
    # Common decorations Python does not understand: "x-cp1250", "cp-1252", "win-1251".
    bare = name[2:] if name.startswith("x-") else name
    for prefix in ("windows-", "win-", "cp-", "ms-"):
        if bare.startswith(prefix) and bare[len(prefix) :].isdigit():
            bare = "cp" + bare[len(prefix) :]
    candidates.append(bare)
    for candidate in candidates:
        if candidate in _CHARSET_ALIASES:
            return _CHARSET_ALIASES[candidate]
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        if not getattr(info, "_is_text_encoding", True) or info.name in _CODEC_BLOCKLIST:
            return None
        return (info.name,)
    return None


def _charset_label(label: str) -> str:
    """How a declared charset is quoted in warnings."""
    return label.strip().strip("\"'").strip()


def _decode_text(raw: bytes | bytearray, label: str | None, where: str, warn: Warn) -> str:
    """Decode text bytes declared as `label`, falling back instead of failing.

    Order: the declared charset (and its supersets), then UTF-8, then windows-1252 and latin-1
    for undeclared 8-bit data; errors="replace" only when a known multi-byte charset is broken.
    """
    if not raw:
        return ""
    chain = _codecs_for(label) if label else _ASCII_CODECS
    if chain:
        for codec in chain:
            try:
                return raw.decode(codec)
            except (UnicodeError, LookupError, ValueError, TypeError):
                continue
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    shown = _charset_label(label) if label else ""
    if text is not None:
        if not label:
            warn(f"{where}: 8-bit text has no charset, decoded as UTF-8")
        elif chain is None:
            warn(f"{where}: unknown charset {shown!r}, decoded as UTF-8")
        else:
            warn(f"{where}: text is not valid {shown}, decoded as UTF-8")
        return text
    if chain and chain[0] not in _ASCII_CODECS:
        warn(f"{where}: text is not valid {shown}; undecodable bytes were replaced")
        return raw.decode(chain[0], "replace")
    try:
        text, used = raw.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        text, used = raw.decode("latin-1"), "ISO-8859-1"
    if not label:
        warn(f"{where}: 8-bit text has no charset, decoded as {used}")
    elif chain is None:
        warn(f"{where}: unknown charset {shown!r}, decoded as {used}")
    else:
        warn(f"{where}: text is not valid {shown}, decoded as {used}")
    return text


def _utf8_or_cp1252(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a byte that is not part of valid UTF-8 is read as windows-1252."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    chunk = error.object[error.start : error.end]
    return chunk.decode("cp1252", "replace").replace("\ufffd", ""), error.end


codecs.register_error("mailpit_py.cp1252", _utf8_or_cp1252)
