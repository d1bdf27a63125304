"""The fast paths of seed parsing and normalizing give what the plain code gave: the plain
versions are kept here as references (split_blocks, clean_text on every text, render_content
through html.escape)."""

from __future__ import annotations

import html

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeder import normalizer, seed
from feeder.errors import SeedError
from feeder.seed import Block, SeedDocument

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# words, the spaces split_blocks squeezes, line breaks, headings' and sentences' ends, and
# the characters clean_text changes or drops
PIECES = st.sampled_from([
    "word", "Wort", "été", "ß", "日本", " ", "  ", "\t", "\u00a0", "\u3000", "\n", "\n\n",
    "\n \n", "\n\u00a0\n", ".", "!", "…", "”", "»", ":", "a" * 101, "\r", "\r\n", "\x0b",
    "\x0c", "\x85", "\u2028", "\u2029", "\x00", "\x07", "\x1f", "\x7f", "\x80", "\x9f",
    "\ufffe", "\uffff", "\ufeff", "’", "«", "\u00ad", "\ud7ff", "\U0001f600", "&", "<", ">",
])
BODIES = st.lists(PIECES, max_size=60).map("".join) | st.text(max_size=200)


def split_blocks_reference(body: str) -> tuple[Block, ...]:
    """seed.split_blocks as it was (every line through the spaces test, one path)."""
    blocks: list[Block] = []
    for chunk in seed._BLANK_LINES.split(body.strip()):
        lines = [(seed._SPACES.sub(" ", ln) if seed._has_odd_spaces(ln) else ln).strip()
                 for ln in chunk.split("\n")]
        lines = [ln for ln in lines if ln]
        while len(lines) > 1 and seed.is_heading(lines[0]) and not lines[1][0].islower():
            blocks.append(Block("h", lines.pop(0)))
        if lines:
            text = " ".join(lines)
            blocks.append(Block("h" if len(lines) == 1 and seed.is_heading(text) else "p",
                                text))
    return tuple(blocks)


def parse_seed_reference(data: bytes) -> SeedDocument | str:
    """seed.parse_seed as it was (clean_text on every text), or its error's reason."""
    try:
        if not data.strip():
            raise SeedError("x", "empty file")
        text, encoding, repaired = seed.decode(data, "x")
        text = seed.clean_text(text).lstrip(" \t\n\ufeff\u00a0\u200b")
        if not text.strip():
            raise SeedError("x", "empty file (nothing but a byte-order mark, spaces or "
                                 "controls)")
        match = seed._HEADER.match(text)
        if match is None:
            start = text[:30].split("\n", 1)[0]
            raise SeedError("x", f"no 'date YYYY-MM-DD' header at the start (found {start!r})")
        date = seed.parse_date(match.group(1), "x")
        blocks = split_blocks_reference(text[match.end():])
        if not blocks:
            raise SeedError("x", "header but no article text")
        return SeedDocument(date=date, blocks=blocks, encoding=encoding, repaired=repaired)
    except SeedError as exc:
        return exc.reason


def _parsed(data: bytes) -> SeedDocument | str:
    try:
        return seed.parse_seed(data, "x")
    except SeedError as exc:
        return exc.reason


@SETTINGS
@given(BODIES)
def test_split_blocks_is_the_plain_split(body: str) -> None:
    assert seed.split_blocks(body) == split_blocks_reference(body)


# stray bytes (a Windows-1252 "é", "’"), an encoded surrogate, a lone lead byte, a BOM
STRAYS = st.sampled_from([b"", b"\xe9", b"\x92", b"\x85", b"\xed\xa0\x80", b"\xc2", b"\xe2",
                          b"\xef\xbb\xbf"])


@SETTINGS
@given(st.sampled_from(["date 2025-01-02 ", "date: 2025-01-02\n", " \ufeffdate 2025-01-02\n\n"]),
       BODIES, STRAYS, st.integers(0, 3))
def test_parse_seed_is_the_parse_with_clean_text_on_every_text(
        header: str, body: str, stray: bytes, where: int) -> None:
    data = (header + body).encode("utf-8", "surrogatepass")
    data = data[:len(data) * where // 3] + stray + data[len(data) * where // 3:]
    assert _parsed(data) == parse_seed_reference(data)


@SETTINGS
@given(BODIES)
def test_text_read_as_utf8_without_the_bytes_to_clean_needs_no_cleaning(body: str) -> None:
    data = body.encode("utf-8", "surrogatepass")
    if b"\x00" in data or data.translate(None, seed._NOT_TO_CLEAN):
        return
    decoded = seed.decode(data, "x")
    assert decoded.encoding != "utf-8" or seed.clean_text(decoded.text) == decoded.text


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["p", "h"]), BODIES.filter(bool)), min_size=1,
                max_size=8))
def test_render_content_is_html_escape_s(blocks: list[tuple[str, str]]) -> None:
    doc = SeedDocument(date=seed.parse_date("2025-01-02", "x"),
                       blocks=tuple(Block(kind, text) for kind, text in blocks))  # type: ignore[arg-type]
    tag = {"p": "p", "h": "h2"}
    assert normalizer.render_content(doc) == "\n".join(
        f"<{tag[b.kind]}>{html.escape(b.text, quote=False)}</{tag[b.kind]}>" for b in doc.blocks)


def test_what_crosses_the_pool_pickles_to_equal_objects() -> None:
    """Entry, ReadResult and Neighbour pickle as their fields (reduce_by_fields)."""
    import datetime as dt
    import pickle

    from feeder import render, sync

    when = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    entry = normalizer.Entry("tag:x,2025:a", "a", "a", "T", "S", "<p>c</p>", when, when, "en")
    objects = [entry, sync.ReadResult("a.txt", 3, 4, "d", entry, "utf-8", (1, 2)),
               sync.ReadResult("b.txt", 0, 0, "", reason="not a regular file"),
               render.Neighbour("T", "a", "en")]
    for obj in objects:
        for protocol in (2, pickle.HIGHEST_PROTOCOL):
            assert pickle.loads(pickle.dumps(obj, protocol=protocol)) == obj


@SETTINGS
@given(st.text(st.characters(exclude_characters="\x00"), max_size=12)
       | st.sampled_from([".", "..", ".txt", "a.", "a..txt", ".a.txt", "a/b.txt", "a/.txt",
                          "b.tar.gz", "x\udcff.txt", "a..", "news.txt.", "..a", "...", ". a"]))
def test_a_seed_s_stem_is_pathlib_s(name: str) -> None:
    """Whatever the Python: 3.14 changed pathlib's stem of a name that ends in a dot ("a."
    is "a", "a.." is "a.", "news.txt." is "news.txt": a seed with an extension such as
    ".txt.") or starts with dots ("..a" is "..a", not "."); those names go to pathlib."""
    from pathlib import Path

    from feeder import sync

    assert sync._stem(name) == Path(name).stem
