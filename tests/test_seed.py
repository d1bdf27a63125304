"""Unit and property tests of the seed parser that do not fit as case files."""

from __future__ import annotations

import datetime as dt
import re

import lxml.etree
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeder.errors import SeedError
from feeder.normalizer import Rules, normalize
from feeder.seed import Block, SeedDocument, is_heading, parse_date, parse_seed

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
