"""Property tests of the renderer: any text a seed parser accepts gives valid feeds."""

from __future__ import annotations

import json

import feedparser
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from feeder import render
from feeder.errors import SeedError
from feeder.normalizer import Rules, normalize
from feeder.seed import parse_seed

RULES = Rules(authority="127.0.0.1", tag_date="2025")
INFO = render.FeedInfo(
    title="Property feed", subtitle="Anything goes", author="Hypothesis",
    base_url="http://127.0.0.1:8080/", language="en", feed_id="tag:127.0.0.1,2025:feed",
    hubs=("http://127.0.0.1:9/hub",),
)
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# a file stem as the builder lets it through: no "/" or NUL, valid UTF-8 (no lone surrogates)
STEMS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"),
               min_size=1, max_size=40)


def _accepted_entry(body: str, stem: str = "x"):  # noqa: ANN202
    try:
        doc = parse_seed(b"date 2025-06-01\n" + body.encode("utf-8"), f"{stem}.txt")
    except SeedError:
        assume(False)
    return normalize(doc, stem, RULES)


def _assert_valid(entry) -> None:  # noqa: ANN001
    for kind, fn in (("atom", render.render_atom), ("rss", render.render_rss)):
        data = fn(INFO, [entry])
        etree.fromstring(data)  # well-formed XML, or XMLSyntaxError
        feed = feedparser.parse(data)
        assert feed.bozo == 0, (kind, feed.get("bozo_exception"))
        (parsed,) = feed.entries
        assert parsed.id == entry.id
    item = json.loads(render.render_json(INFO, [entry]))["items"][0]
    assert item["title"] == entry.title and item["content_html"] == entry.content_html


@SETTINGS
@given(st.text(max_size=400))
def test_any_accepted_body_renders_valid_feeds(body: str) -> None:
    _assert_valid(_accepted_entry(body))


@SETTINGS
@given(STEMS, st.text(min_size=1, max_size=80))
def test_any_file_stem_renders_valid_feeds(stem: str, body: str) -> None:
    entry = _accepted_entry(body, stem)
    assert entry.id.isascii() and " " not in entry.id
    assert render.entry_path(entry).isascii()
    _assert_valid(entry)
