"""One golden build: the bundled seeds/ folder against checked-in expected outputs.

Outputs are deterministic (no build timestamps), so files are compared byte for byte.
After an intended change of the output, regenerate with
``FEEDER_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import feedparser
import lxml.html
import pytest

from .conftest import REPO, Site

GOLDEN = REPO / "tests" / "golden"
SEEDS = REPO / "seeds"


@pytest.fixture
def built(tmp_path: Path) -> Site:
    site = Site(tmp_path, title="feeder sample", subtitle="Articles from the bundled seeds/ folder")
    for seed in SEEDS.glob("*.txt"):
        shutil.copy(seed, site.seeds / seed.name)
    report = site.build()
    assert not report.rejected
    yield site
    site.close()


def outputs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".gz")}


def test_golden_build(built: Site) -> None:
    got = outputs(built.out)
    if os.environ.get("FEEDER_UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, data in got.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_bytes(data)
    expected = outputs(GOLDEN)
    assert sorted(got) == sorted(expected)
    for rel in expected:
        assert got[rel] == expected[rel], f"{rel} differs from tests/golden/{rel}"


def test_sample_feed_reads_well(built: Site) -> None:
    feed = feedparser.parse(built.read("atom.xml"))
    assert feed.bozo == 0
    assert len(feed.entries) == len(list(SEEDS.glob("*.txt")))
    languages = {e.get("language") or e.get("content")[0].get("language") for e in feed.entries}
    assert {"en", "it", "de"} <= languages
    dates = [e.published_parsed for e in feed.entries]
    assert dates == sorted(dates, reverse=True)


def test_sample_entry_pages_are_shareable(built: Site) -> None:
    """Every entry page names itself as canonical and describes itself as a NewsArticle."""
    pages = sorted((built.out / "entries").glob("*.html"))
    assert len(pages) == len(list(SEEDS.glob("*.txt")))
    for path in pages:
        url = built.config.url(f"entries/{path.name}")
        page = lxml.html.document_fromstring(path.read_bytes())
        (script,) = page.xpath("//script[@type='application/ld+json']")
        article = json.loads(script.text)
        assert article["@type"] == "NewsArticle"
        assert article["url"] == article["mainEntityOfPage"]["@id"] == url
        assert page.xpath("//link[@rel='canonical']/@href") == [url]
        assert page.xpath("//meta[@property='og:url']/@content") == [url]
        assert page.get("lang") == article["inLanguage"]
