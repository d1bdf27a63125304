"""The naive approach, for the side-by-side: read every seed, one feedgen feed of all
entries, write Atom + RSS. No entry pages, no archives, no store, no incremental work.

    python bench/naive.py SEEDS OUT

Every change means running this whole script again.
"""

from __future__ import annotations

import datetime as dt
import html
import sys
from pathlib import Path

from feedgen.feed import FeedGenerator

BASE = "http://127.0.0.1:8080/"


def read(path: Path) -> tuple[dt.datetime, str, str, str]:
    text = path.read_text(encoding="utf-8").strip()
    _date, day, body = text.split(None, 2)
    published = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
    title = paragraphs[0].split(". ")[0][:90]
    content = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return published, path.stem, title, content


def main() -> None:
    seeds, out = Path(sys.argv[1]), Path(sys.argv[2])
    items = sorted((read(p) for p in seeds.glob("*.txt")), reverse=True)
    fg = FeedGenerator()
    fg.id("tag:example.org,2024:feed")
    fg.title("Naive feed")
    fg.subtitle("Everything, every time")
    fg.author(name="Bench")
    fg.link(href=BASE + "atom.xml", rel="self")
    fg.link(href=BASE, rel="alternate")
    fg.updated(items[0][0] if items else dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    for published, stem, title, content in items:
        fe = fg.add_entry(order="append")  # the default "prepend" is O(N²)
        fe.id(f"tag:example.org,2024:{stem}")
        fe.title(title)
        fe.link(href=f"{BASE}entries/{stem}.html")
        fe.published(published)
        fe.updated(published)
        fe.content(content, type="html")
    out.mkdir(parents=True, exist_ok=True)
    fg.atom_file(str(out / "atom.xml"), pretty=True)
    fg.rss_file(str(out / "rss.xml"), pretty=True)


if __name__ == "__main__":
    main()
