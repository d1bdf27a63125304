"""Unit and property tests of the seed parser that do not fit as case files."""

from __future__ import annotations

import codecs
import datetime as dt
import re

import lxml.etree
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeder.errors import SeedError
from feeder.normalizer import Rules, normalize
from feeder.seed import (
    Block,
    SeedDocument,
    decode,
    is_heading,
    parse_date,
    parse_seed,
    stray_note,
)

RULES = Rules(authority="example.org", tag_date="2025")
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The XML 1.0 Char production, complemented.
NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@FAST
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_document_or_a_seed_error(data: bytes) -> None:
    try:
        doc = parse_seed(data, "x.txt")
    except SeedError as exc:
        assert exc.name == "x.txt" and exc.reason
    else:
        assert isinstance(doc, SeedDocument) and doc.blocks


@FAST
@given(st.binary(max_size=500))
def test_any_bytes_after_a_header_give_a_document_or_a_seed_error(body: bytes) -> None:
    try:
        doc = parse_seed(b" date 2025-01-02 " + body, "x.txt")
    except SeedError as exc:
        assert exc.reason
    else:
        assert all(b.text and not NOT_XML_CHAR.search(b.text) for b in doc.blocks)


@FAST
@given(st.text(max_size=600), st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_any_text_body_gives_clean_blocks_and_parseable_html(body: str, encoding: str) -> None:
    data = f" date 2025-01-02 {body}".encode(encoding, "surrogatepass")
    try:
        doc = parse_seed(data, "x.txt")
    except SeedError as exc:
        assert exc.reason.startswith(("header but no article text", "binary content"))
        return
    for block in doc.blocks:
        assert block.kind in ("p", "h")
        assert block.text == block.text.strip() and block.text
        assert "\n" not in block.text and "\r" not in block.text
        assert not NOT_XML_CHAR.search(block.text)
    entry = normalize(doc, "x", RULES)
    root = lxml.etree.fromstring(f"<div>{entry.content_html}</div>")
    assert [el.tag for el in root] == [{"p": "p", "h": "h2"}[b.kind] for b in doc.blocks]
    assert [el.text or "" for el in root] == [b.text for b in doc.blocks]


TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=300)
SURROGATE = re.compile("[\ud800-\udfff]")


@FAST
@given(TEXT, st.data())
def test_stray_bytes_in_utf8_change_only_themselves(text: str, data: st.DataObject) -> None:
    """Up to three stray bytes between the characters of any UTF-8 text: each becomes its
    Windows-1252 character (U+FFFD where there is none), and nothing else changes."""
    positions = data.draw(st.lists(st.integers(0, len(text)), max_size=3, unique=True))
    strays = data.draw(st.lists(st.integers(0x80, 0xFF), min_size=len(positions),
                                max_size=len(positions)))
    blob, expected, offsets, last = b"", "", [], 0
    for position, byte in sorted(zip(positions, strays, strict=True)):
        blob += text[last:position].encode()
        expected += text[last:position] + bytes([byte]).decode("cp1252", "replace")
        offsets.append((len(blob), byte))
        blob += bytes([byte])
        last = position
    blob += text[last:].encode()
    expected += text[last:]
    if blob.startswith(codecs.BOM_UTF8):
        expected = expected[1:]
    decoded = decode(blob, "x.txt")
    assert decoded.text == expected
    if decoded.encoding == "utf-8":
        assert decoded.repaired == tuple(o for o, _b in offsets)
    else:  # nothing but ASCII around the stray bytes: as much Windows-1252 as UTF-8
        assert decoded.encoding == "cp1252" and text.isascii()
        assert decoded.repaired == tuple(o for o, b in offsets if b in b"\x81\x8d\x8f\x90\x9d")


@FAST
@given(st.text(st.one_of(st.characters(exclude_characters="\x00"),
                         st.characters(categories=["Cs"])), max_size=300))
def test_encoded_surrogates_are_removed_or_joined(text: str) -> None:
    """UTF-8-encoded surrogates (CESU-8, WTF-8): a high one followed by a low one is the
    character they encode, any other one is removed."""
    blob = text.encode("utf-8", "surrogatepass")
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    expected = SURROGATE.sub("", joined)
    decoded = decode(blob, "x.txt")
    assert decoded == (expected.removeprefix("\ufeff"), "utf-8", ())


@pytest.mark.parametrize(
    ("valid", "strays", "mostly_utf8"),
    [(0, 4, True), (1, 4, True), (0, 5, False), (9, 5, False), (10, 5, True),
     (200, 100, True), (199, 100, False)],
)
def test_mostly_utf8_means_few_stray_bytes_or_two_characters_for_each(
        valid: int, strays: int, mostly_utf8: bool) -> None:
    blob = ("date 2025-01-02 " + "é" * valid).encode() + b" \xe8" * strays
    decoded = decode(blob, "x.txt")
    if mostly_utf8:
        assert decoded.text == "date 2025-01-02 " + "é" * valid + " è" * strays
        assert len(decoded.repaired) == (strays if valid else 0)
    else:
        assert decoded.encoding != "utf-8" and not decoded.repaired


def test_stray_note() -> None:
    assert stray_note((17,), "utf-8") == "1 stray byte at offset 17 (not UTF-8)"
    assert stray_note((17, 230), "cp1252") == "2 stray bytes at offsets 17, 230 (not cp1252)"
    many = stray_note(tuple(range(12)), "utf-8")
    assert many == "12 stray bytes at offsets 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more (not UTF-8)"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Where to park", True),
        ("Il ruolo della Corea del Nord nel conflitto", True),
        ("The market opens at nine.", False),
        ("Who pays?", False),
        ("As the mayor said:", False),
        ("“Quoted and finished.”", False),
        ("„Zitat zu Ende.“", False),
        ("2025", False),  # no letter
        ("x" * 101, False),  # too long for a heading
    ],
)
def test_is_heading(line: str, expected: bool) -> None:
    assert is_heading(line) is expected


def test_parse_date_kinds() -> None:
    assert parse_date("2025-01-02", "x") == dt.date(2025, 1, 2)
    aware = parse_date("2025-03-04t10:30:00+01:00", "x")
    assert isinstance(aware, dt.datetime) and aware.utcoffset() == dt.timedelta(hours=1)
    with pytest.raises(SeedError, match="expected YYYY-MM-DD"):
        parse_date("20250102", "x")


def test_document_needs_a_block() -> None:
    with pytest.raises(ValueError):
        SeedDocument(date=dt.date(2025, 1, 2), blocks=())
    doc = SeedDocument(date=dt.date(2025, 1, 2), blocks=(Block("h", "H"), Block("p", "P.")))
    assert doc.paragraphs == ("P.",)


@pytest.mark.xfail(
    strict=True,
    reason="known limit: a hard-wrapped line followed by a capitalised word (a German noun, a "
    "name) is taken for a sub-heading stacked above its paragraph",
)
def test_hard_wrapped_line_before_a_capitalised_word() -> None:
    text = " date 2025-01-02\nDie Stadt eröffnete am Montag die neue\nBrücke."
    doc = parse_seed(text.encode(), "x")
    assert [b.kind for b in doc.blocks] == ["p"]
