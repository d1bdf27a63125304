"""Feeds readers can take: every feed and archive document stays under ``max_feed_bytes``,
the largest entries carrying their summary and a link instead of their content."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

import feedparser
import pytest
from lxml import etree

from feeder import render
from feeder.normalizer import Entry

from .conftest import Site

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
MIB = 1024 * 1024
SENTENCES = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20 + "\n\n"


def big_body(size: int, first: str) -> str:
    return first + " " + SENTENCES * (size // len(SENTENCES))


def page_url(site: Site, stem: str) -> str:
    return f"{site.config.base_url}entries/{stem}.html"


def check_document(site: Site, rel: str, big: str | None, small: list[str]) -> None:
    """``rel`` is under the default limit and valid; ``big`` (a stem) carries its summary and
    a link, each of ``small`` its whole content."""
    data = site.read(rel)
    assert len(data) <= MIB, (rel, len(data))
    if rel.endswith(".json"):
        items = {i["id"].rsplit(":", 1)[1]: i for i in json.loads(data)["items"]}
        assert set(items) == {*small, *([big] if big else [])}
        for stem in small:
            assert f"Small {stem}." in items[stem]["content_html"]
        if big:
            item = items[big]
            assert item["summary"].startswith("Big article.")
            assert item["summary"] in item["content_html"]
            assert f'href="{page_url(site, big)}"' in item["content_html"]
            assert "Lorem" not in item["content_html"].replace(item["summary"], "")
        return
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, (rel, parsed.get("bozo_exception"))
    by_stem = {e.id.rsplit(":", 1)[1]: e for e in parsed.entries}
    assert set(by_stem) == {*small, *([big] if big else [])}
    root = etree.fromstring(data)
    if "atom" in rel:
        # RFC 4287 4.1.1.1: an entry without content has an alternate link (a link without
        # rel, as feedgen writes it) and a summary
        for entry in root.iter(f"{ATOM}entry"):
            stem = entry.findtext(f"{ATOM}id").rsplit(":", 1)[1]
            content = entry.find(f"{ATOM}content")
            alternates = [link.get("href") for link in entry.iter(f"{ATOM}link")
                          if link.get("rel", "alternate") == "alternate"]
            assert alternates == [page_url(site, stem)]
            assert (content is None) == (stem == big), stem
            if content is None:
                assert entry.findtext(f"{ATOM}summary").startswith("Big article.")
            else:
                assert f"Small {stem}." in content.text
    else:
        for item in root.iter("item"):
            stem = item.findtext("guid").rsplit(":", 1)[1]
            encoded = item.find(CONTENT_ENCODED)
            assert (encoded is None) == (stem == big), stem
            if encoded is None:
                description = item.findtext("description")
                assert description.startswith("<p>Big article.")
                assert f'href="{page_url(site, stem)}"' in description
            else:
                assert f"Small {stem}." in encoded.text
    if big:
        entry = by_stem[big]
        assert "Big article." in entry.summary  # in RSS, with the link
        assert entry.link == page_url(site, big)


def shortened_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "instead of the content" in r.getMessage()]


def test_a_4_mb_seed_keeps_every_feed_and_its_archive_page_under_the_limit(
        make_site, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, logger="feeder")
    site = make_site(max_entries=3, archive_size=2)
    for day in (1, 2, 4):
        site.write(f"00{day}_s.txt", f"2025-12-0{day}", f"Small 00{day}_s. Some text.")
    site.write("003_big.txt", "2025-12-03", big_body(4_000_000, "Big article."))
    site.build()
    for rel in ("atom.xml", "rss.xml", "feed.json"):
        check_document(site, rel, "003_big", ["004_s", "002_s"])
    check_document(site, "archive/atom-1.xml", None, ["001_s"])
    # the whole article stays on its own page
    assert len(site.read("entries/003_big.html")) > 4_000_000
    # its language's feeds (Lorem ipsum is Latin) are kept under the limit the same way
    for rel in ("lang/la/atom.xml", "lang/la/rss.xml", "lang/la/feed.json"):
        check_document(site, rel, "003_big", [])
    assert shortened_lines(caplog) == [
        "lang/la/atom.xml, lang/la/rss.xml, lang/la/feed.json: 1 largest entry carries a "
        "summary and link instead of the content, to stay under max_feed_bytes (1048576): "
        "003_big",
        "atom.xml, rss.xml, feed.json: 1 largest entry carries a summary and link instead of "
        "the content, to stay under max_feed_bytes (1048576): 003_big"]

    caplog.clear()
    site.build(force=True)  # nothing changed: no line again
    assert shortened_lines(caplog) == []

    # two newer seeds move the big one out of the feeds, into archive page 2
    for day in (5, 6):
        site.write(f"00{day}_s.txt", f"2025-12-0{day}", f"Small 00{day}_s. Some text.")
    site.build({"005_s.txt", "006_s.txt"})
    for rel in ("atom.xml", "rss.xml", "feed.json"):
        check_document(site, rel, None, ["006_s", "005_s", "004_s"])
    for kind in ("atom", "rss"):
        check_document(site, f"archive/{kind}-1.xml", None, ["002_s", "001_s"])
        check_document(site, f"archive/{kind}-2.xml", "003_big", [])
    assert shortened_lines(caplog) == [
        "archive/atom-2.xml, archive/rss-2.xml: 1 largest entry carries a summary and link "
        "instead of the content, to stay under max_feed_bytes (1048576): 003_big"]


def test_a_document_too_big_even_brief_is_written_whole_with_a_warning(
        make_site, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, logger="feeder")
    site = make_site(max_feed_bytes=64 * 1024, summary_length=10_000, max_entries=20)
    for day in range(1, 13):
        site.write(f"{day:03d}_a.txt", f"2025-12-{day:02d}",
                   f"Day {day}. " + "Lorem ipsum dolor sit amet, consectetur elit. " * 250)
    site.build()
    for rel in ("atom.xml", "rss.xml"):
        parsed = feedparser.parse(site.read(rel))
        assert parsed.bozo == 0 and len(parsed.entries) == 12
        assert len(site.read(rel)) > 64 * 1024
        assert all("content" not in e for e in parsed.entries)
    assert len(json.loads(site.read("feed.json"))["items"]) == 12
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "max_feed_bytes" in r.getMessage()]
    assert sorted(w.split(" ", 1)[0] for w in warnings) == [  # and the feeds of the Latin
        "atom.xml", "feed.json", "lang/la/atom.xml", "lang/la/feed.json", "lang/la/rss.xml",
        "rss.xml"]
    assert "over max_feed_bytes (65536) even with 12 entries as summary and link" in warnings[0]


def _entry(stem: str, size: int, day: int) -> Entry:
    moment = dt.datetime(2025, 12, day, tzinfo=dt.UTC)
    return Entry(id=f"tag:example.org,2025:{stem}", stem=stem, slug=stem, title=stem.title(),
                 summary=f"Summary of {stem}.",
                 content_html="<p>" + ("é" * 9 + "<") * (size // 10) + "</p>",
                 published=moment, updated=moment, language="en")


@pytest.mark.parametrize("kind", ["atom", "rss", "json"])
def test_only_the_largest_entries_needed_are_made_brief(kind: str) -> None:
    """Largest first, and no more than needed: of two entries that together make the
    document too big, only the larger is made brief."""
    info = render.FeedInfo(title="T", subtitle="S", author="A", base_url="https://example.org/",
                           language="en", feed_id="tag:example.org,2025:feed", max_bytes=64 * MIB)
    entries = [_entry("small1", 300, 5), _entry("mid", 280_000, 4), _entry("large", 320_000, 3),
               _entry("small2", 300, 2)]
    whole = render.fit(kind, info, entries)
    assert whole.brief == () and not whole.over and len(whole.data) > MIB
    fitted = render.fit(kind, dataclasses.replace(info, max_bytes=MIB), entries)
    assert [e.stem for e in fitted.brief] == ["large"]
    assert not fitted.over and len(fitted.data) <= MIB
