"""Feed sizes and render times with big articles among small ones (``render.fit``).

    python bench/feed_size.py [--big 3] [--big-bytes 3000000] [--small 47]

For each format: the size of the document rendered whole and fitted under ``max_feed_bytes``
(1 MiB), how many entries were made brief, and the best of five times for rendering it whole
(no limit) and fitted (rendered twice: once whole, once with the brief entries). Also the
fitted time of a feed of small entries only, which fits at once (rendered once).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt

from stray_bytes import best_of

from feeder import render
from feeder.normalizer import Entry

PARAGRAPH = "<p>Über die Brücke gehen täglich tausende Menschen zur Arbeit &amp; nach Hause.</p>\n"
INFO = render.FeedInfo(title="Bench", subtitle="Big articles", author="bench",
                       base_url="https://news.example.org/", language="de",
                       feed_id="tag:news.example.org,2025:feed", max_bytes=1024 * 1024)


def entry(n: int, size: int) -> Entry:
    moment = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n)
    return Entry(id=f"tag:news.example.org,2025:{n:04d}", stem=f"{n:04d}", slug=f"{n:04d}",
                 title=f"Artikel {n}", summary="Über die Brücke gehen täglich tausende.",
                 content_html=PARAGRAPH * max(1, size // len(PARAGRAPH.encode())),
                 published=moment, updated=moment, language="de")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=3)
    parser.add_argument("--big-bytes", type=int, default=3_000_000)
    parser.add_argument("--small", type=int, default=47)
    args = parser.parse_args()
    total = args.big + args.small
    big = {1 + i * total // args.big for i in range(args.big)}  # spread over the feed
    entries = [entry(n, args.big_bytes if n in big else 3_000) for n in range(total, 0, -1)]
    small = [e for n, e in zip(range(total, 0, -1), entries, strict=True) if n not in big]
    unlimited = dataclasses.replace(INFO, max_bytes=1 << 40)
    print(f"{args.big} entries of {args.big_bytes:,} bytes among {args.small} of 3,000; "
          f"limit {INFO.max_bytes:,} bytes")
    print("| format | whole | fitted | brief | render whole | fit | fit, small only |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("atom", "rss", "json"):
        whole = render.fit(kind, unlimited, entries)
        fitted = render.fit(kind, INFO, entries)
        t_whole = best_of(5, lambda k=kind: render.fit(k, unlimited, entries))
        t_fit = best_of(5, lambda k=kind: render.fit(k, INFO, entries))
        t_small = best_of(5, lambda k=kind: render.fit(k, INFO, small))
        print(f"| {kind} | {len(whole.data):,} | {len(fitted.data):,} | {len(fitted.brief)} | "
              f"{t_whole * 1000:.1f} ms | {t_fit * 1000:.1f} ms | {t_small * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
