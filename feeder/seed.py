"""Seed file bytes -> :class:`SeedDocument`, or :class:`SeedError` saying why not.

A seed is plain text: optional whitespace (and a byte-order mark), then a header
``date YYYY-MM-DD`` (also ``date: ...`` or a full ISO 8601 date-time with offset), then the
article body, which may start on the header line. Blank lines separate paragraphs; a short
line without final punctuation is a sub-heading. Pure: no I/O, no clock.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from .errors import SeedError

HEADING_MAX_CHARS = 100
_WESTERN_MARGIN = 0.1  # chaos (0-1) that Windows-1252 may have over the best match
# UTF-8 with a few stray bytes is "mostly UTF-8" while it has at most this many stray bytes,
# or at least _VALID_PER_STRAY well-formed multibyte characters for each stray byte. Legacy
# text forms valid UTF-8 sequences only by accident: 0.15-0.4 per stray byte in CJK encodings,
# under 0.05 in Western and Cyrillic code pages (bench/stray_bytes.py).
_STRAY_FLOOR = 4
_VALID_PER_STRAY = 2
_SHOWN_OFFSETS = 10
# A stray byte reads as its Windows-1252 character (in UTF-8 text it is nearly always a legacy
# character pasted in: é, ’, “, €); the five bytes cp1252 leaves undefined become U+FFFD.
_CP1252 = tuple(bytes([b]).decode("cp1252", "replace") for b in range(256))
_ASCII = bytes(range(128))
_ESCAPED = re.compile("[\udc80-\udcff]+")  # undecodable bytes, as "surrogateescape" gives them
# UTF-8 encoding of a UTF-16 surrogate (CESU-8, Java's modified UTF-8, WTF-8): never valid
_ENCODED_SURROGATE = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")
_ENCODED_PAIR = re.compile(rb"\xed[\xa0-\xaf][\x80-\xbf]\xed[\xb0-\xbf][\x80-\xbf]")

# XML 1.0 forbids C0 controls other than tab/LF/CR, lone surrogates and U+FFFE/U+FFFF; the
# C1 controls are allowed but only ever appear as mojibake, and validators warn on them.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
# The bytes that start, in UTF-8 text, each character clean_text changes or drops: C0 controls
# but tab and LF, DEL, C2 (U+0080-U+009F), E2 (U+2028, U+2029), EF (U+FFFE, U+FFFF). Text
# read as UTF-8 (with repairs or not) whose bytes hold none of them needs no cleaning: a
# repaired stray byte is a Windows-1252 character or U+FFFD, and an encoded surrogate is
# dropped or joined into a character beyond U+FFFF.
_TO_CLEAN = bytes([*range(0x09), *range(0x0b, 0x20), 0x7f, 0xc2, 0xe2, 0xef])
_NOT_TO_CLEAN = bytes(b for b in range(256) if b not in _TO_CLEAN)
_HEADER = re.compile(r"date\s*:?[ \t]*(\S+)", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n[ \t\u00a0]*\n\s*")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_FINAL_PUNCT = tuple(".!?…:;,。！？；،؟")
_CLOSERS = "\"'”’»)]›」』“‘«‹"  # the last four close quotes in German: „…“ ‚…‘ »…« ›…‹


class Block(NamedTuple):
    kind: Literal["p", "h"]
    text: str


@dataclass(frozen=True, slots=True)
class SeedDocument:
    """A parsed seed: its header date (date or aware/naive datetime) and its blocks."""

    date: dt.date | dt.datetime
    blocks: tuple[Block, ...]
    encoding: str = "utf-8"  # what the bytes were decoded from; anything else is worth a log line
    repaired: tuple[int, ...] = ()  # offsets of the bytes that were not valid in that encoding

    def __post_init__(self) -> None:
        if not self.blocks:
            raise ValueError("a SeedDocument needs at least one block")

    @property
    def paragraphs(self) -> tuple[str, ...]:
        return tuple(b.text for b in self.blocks if b.kind == "p")


class Decoded(NamedTuple):
    text: str
    encoding: str
    repaired: tuple[int, ...] = ()  # offsets of stray bytes: not valid in ``encoding``


def decode(data: bytes, name: str) -> Decoded:
    """Read the bytes as text. UTF-8 (with or without BOM) and UTF-16 with BOM are read as
    such, and so is UTF-8 with a few stray bytes (see :func:`_read_mostly_utf8`); other bytes
    are handed to charset-normalizer; binary content is refused."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Decoded(data.decode("utf-16", errors="replace"), "utf-16")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise SeedError(name, f"binary content (NUL byte at offset {nul})")
    try:
        return Decoded(data.decode("utf-8-sig"), "utf-8")
    except UnicodeDecodeError:
        pass
    mostly_utf8 = _read_mostly_utf8(data)
    if mostly_utf8 is not None:
        return mostly_utf8
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    # Western legacy text is nearly always Windows-1252, but on short or plain texts it ties
    # with (and loses to) cp1250, cp775 or even cp932, and accents close together (French
    # "déjà", "brûlée") make it look a little messier than cp1257 or cp1250 reading the same
    # bytes as Baltic or Central European letters: prefer it when it reads about as cleanly.
    western = from_bytes(data, cp_isolation=["cp1252"]).best()
    if western is not None and (best is None or western.chaos <= best.chaos + _WESTERN_MARGIN):
        best = western
    if best is None:
        raise SeedError(name, "not text: no character encoding fits these bytes")
    return Decoded(str(best), best.encoding)


def _read_mostly_utf8(data: bytes) -> Decoded | None:
    """Read bytes that are not valid UTF-8 as UTF-8 with repairs, if they are mostly UTF-8:
    at most ``_STRAY_FLOOR`` stray bytes, or ``_VALID_PER_STRAY`` well-formed multibyte
    characters for each. Each stray byte becomes its Windows-1252 character (or U+FFFD);
    encoded surrogates are removed, or joined when they form a pair. Returns None for text
    in another encoding.

    Bytes with no multibyte character at all (ASCII and at most ``_STRAY_FLOOR`` high bytes)
    are short Windows-1252 text as much as they are damaged UTF-8; they are named cp1252.
    """
    escaped = data.decode("utf-8", "surrogateescape")  # each stray byte -> one U+DC80..DCFF
    strays = len(data) - len(escaped.encode("utf-8", "ignore"))
    ascii_bytes = len(data) - len(data.translate(None, _ASCII))
    valid = len(escaped) - ascii_bytes - strays  # well-formed multibyte characters
    surrogates = len(_ENCODED_SURROGATE.findall(data))
    strays -= 3 * surrogates
    valid += surrogates
    if strays > max(_STRAY_FLOOR, valid // _VALID_PER_STRAY):
        return None
    parts: list[str] = []
    offsets: list[int] = []
    offset = last = 0  # ``offset`` is where ``escaped[last]`` starts in ``data``
    for run in _ESCAPED.finditer(escaped):
        good = escaped[last:run.start()]
        parts.append(good)
        offset += len(good.encode())
        raw = run.group().encode("utf-8", "surrogateescape")
        parts.append(_repair(raw, offset, offsets))
        offset += len(raw)
        last = run.end()
    parts.append(escaped[last:])
    text = "".join(parts)
    if data.startswith(codecs.BOM_UTF8):
        text = text[1:]
    if valid == 0:
        return Decoded(text, "cp1252", tuple(o for o in offsets if _CP1252[data[o]] == "\ufffd"))
    return Decoded(text, "utf-8", tuple(offsets))


def _repair(raw: bytes, offset: int, offsets: list[int]) -> str:
    """Text for a run of bytes that are not UTF-8, found at ``offset``; appends the offset of
    each stray byte to ``offsets``."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        if _ENCODED_PAIR.match(raw, i):
            pair = raw[i:i + 6].decode("utf-8", "surrogatepass")
            out.append(pair.encode("utf-16-le", "surrogatepass").decode("utf-16-le"))
            i += 6
        elif _ENCODED_SURROGATE.match(raw, i):
            i += 3  # a lone surrogate: XML cannot carry it
        else:
            out.append(_CP1252[raw[i]])
            offsets.append(offset + i)
            i += 1
    return "".join(out)


def stray_note(offsets: tuple[int, ...], encoding: str) -> str:
    """``2 stray bytes at offsets 17, 230 (not UTF-8)``, for the log."""
    shown = ", ".join(str(o) for o in offsets[:_SHOWN_OFFSETS])
    if len(offsets) > _SHOWN_OFFSETS:
        shown += f" and {len(offsets) - _SHOWN_OFFSETS} more"
    plural = "s" if len(offsets) > 1 else ""
    label = "UTF-8" if encoding == "utf-8" else encoding
    return f"{len(offsets)} stray byte{plural} at offset{plural} {shown} (not {label})"


def parse_date(token: str, name: str) -> dt.date | dt.datetime:
    try:
        if len(token) == 10:
            return dt.date.fromisoformat(token)
        if "T" in token or "t" in token:
            return dt.datetime.fromisoformat(token.upper())
    except ValueError as exc:
        raise SeedError(name, f"bad date {token!r}: {exc}") from None
    raise SeedError(name, f"bad date {token!r}: expected YYYY-MM-DD or an ISO 8601 date-time")


def is_heading(line: str) -> bool:
    """A short line with a letter in it and no final punctuation."""
    return (
        len(line) <= HEADING_MAX_CHARS
        and not line.rstrip(_CLOSERS).endswith(_FINAL_PUNCT)
        and any(c.isalpha() for c in line)
    )


def clean_text(text: str) -> str:
    """Normalise line ends and drop every character XML 1.0 cannot carry."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2029", "\n\n").replace("\u2028", "\n").replace("\x0c", "\n\n")
    text = text.replace("\x0b", "\n").replace("\x85", "\n")
    return _FORBIDDEN.sub("", text)


def _has_odd_spaces(line: str) -> bool:
    """Would ``_SPACES`` change this line? (Most lines have single spaces only: skip them.)"""
    return "  " in line or "\t" in line or "\u00a0" in line or "\u3000" in line


def split_blocks(body: str) -> tuple[Block, ...]:
    blocks: list[Block] = []
    body = body.strip()
    odd = _has_odd_spaces(body)  # else no line has any: skip the test line by line
    for chunk in _BLANK_LINES.split(body):
        if "\n" not in chunk:  # one line: most blocks (the general case below gives the same)
            line = (_SPACES.sub(" ", chunk) if odd and _has_odd_spaces(chunk) else chunk).strip()
            if line:
                blocks.append(Block("h" if is_heading(line) else "p", line))
            continue
        lines = [(_SPACES.sub(" ", ln) if odd and _has_odd_spaces(ln) else ln).strip()
                 for ln in chunk.split("\n")]
        lines = [ln for ln in lines if ln]
        # A heading may sit directly above its paragraph without a blank line between; a line
        # followed by a lowercase start is a wrapped line (or U+2028 break) of the paragraph.
        while len(lines) > 1 and is_heading(lines[0]) and not lines[1][0].islower():
            blocks.append(Block("h", lines.pop(0)))
        if lines:
            text = " ".join(lines)
            blocks.append(Block("h" if len(lines) == 1 and is_heading(text) else "p", text))
    return tuple(blocks)


def parse_seed(data: bytes, name: str) -> SeedDocument:
    """Parse one seed's bytes; ``name`` is only used in error messages."""
    if not data.strip():
        raise SeedError(name, "empty file")
    text, encoding, repaired = decode(data, name)
    if encoding != "utf-8" or data.translate(None, _NOT_TO_CLEAN):
        text = clean_text(text)  # else it holds nothing clean_text changes (see _TO_CLEAN)
    text = text.lstrip(" \t\n\ufeff\u00a0\u200b")
    if not text.strip():
        raise SeedError(name, "empty file (nothing but a byte-order mark, spaces or controls)")
    match = _HEADER.match(text)
    if match is None:
        start = text[:30].split("\n", 1)[0]
        raise SeedError(name, f"no 'date YYYY-MM-DD' header at the start (found {start!r})")
    date = parse_date(match.group(1), name)
    blocks = split_blocks(text[match.end():])
    if not blocks:
        raise SeedError(name, "header but no article text")
    return SeedDocument(date=date, blocks=blocks, encoding=encoding, repaired=repaired)
