"""A real feed reader's view: feedparser fetching the built sample site over HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path

import feedparser

from feeder.server import create_app

from ._daemon import free_port
from ._servers import serve_in_thread
from .conftest import REPO, Site


def test_feedparser_reads_the_served_sample_feeds(tmp_path: Path) -> None:
    # base_url must match where it is served, so build after choosing the port
    port = free_port()
    site = Site(tmp_path, base_url=f"http://127.0.0.1:{port}/", hubs=["http://127.0.0.1:9/hub"])
    try:
        for seed in (REPO / "seeds").glob("*.txt"):
            shutil.copy(seed, site.seeds / seed.name)
        site.build()
        app = create_app(site.out, base_url=site.config.base_url, hubs=site.config.hubs)
        with serve_in_thread(app) as base:
            for rel in ("atom.xml", "rss.xml"):
                url = base + rel
                feed = feedparser.parse(url)
                assert feed.bozo == 0 and feed.status == 200
                assert feed.headers["content-type"].endswith("charset=utf-8")
                assert len(feed.entries) == len(list((REPO / "seeds").glob("*.txt")))
                for entry in feed.entries:
                    assert entry.title and entry.published_parsed and entry.id.startswith("tag:")
                # the reader's next poll is conditional and answered 304
                again = feedparser.parse(url, etag=feed.etag)
                assert again.status == 304 and again.entries == []
                again = feedparser.parse(url, modified=feed.modified)
                assert again.status == 304
    finally:
        site.close()
