"""CPU of rendering archive feed documents with no fragment cache (what a cold build's pool
workers do): per entry fragment, through ``render.fit``, for pages of a built state.

    python bench/fragments.py STATE [PAGES]

Reads the entries of the first PAGES (default 20) archive pages from the SQLite STATE of a
finished build, and renders each page's Atom and RSS document as the workers do (no cache),
printing CPU ms per fragment; then the fragments alone, per page, through feedgen
(``_xml_fragments``) and through ``_new_fragments`` (direct where it can), alternating;
with ``--profile``, a cProfile summary as well.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

from feeder import render
from feeder.store import Store


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    state, pages = args[0], int(args[1]) if len(args) > 1 else 20
    with Store(state, read_only=True) as store:
        batches = [store.page_entries(n)[::-1] for n in range(1, pages + 1)]
    batches = [b for b in batches if b]
    info = render.FeedInfo(title="feeder", subtitle="Articles", author="feeder",
                           base_url="http://127.0.0.1:8080/", language="en",
                           feed_id="tag:127.0.0.1,2025:feed")
    render.keep_no_fragments()

    def run() -> None:
        for n, entries in enumerate(batches, 1):
            for kind in ("atom", "rss"):
                links = render.Archive(prev=render.archive_path(kind, n - 1) if n > 1 else None,
                                       next=render.archive_path(kind, n + 1),
                                       current=f"{kind}.xml", is_archive=True)
                render.fit(kind, info, entries, self_path=render.archive_path(kind, n),
                           archive=links)

    run()  # warm up (imports, templates)
    count = sum(len(b) for b in batches) * 2
    best = min(_cpu(run) for _ in range(3))
    print(f"{count} fragments in {len(batches)} pages: {best * 1000 / count:.3f} ms CPU each "
          f"(best of 3)")
    for name in ("_xml_fragments", "_new_fragments"):
        cut = getattr(render, name)

        def fragments(cut=cut) -> None:  # noqa: ANN001
            for entries in batches:
                for kind in ("atom", "rss"):
                    cut(kind, info, entries, ())

        best = min(_cpu(fragments) for _ in range(5))
        print(f"{name}: {best * 1000 / count:.4f} ms CPU per fragment (best of 5)")
    if "--profile" in sys.argv:
        profile = cProfile.Profile()
        profile.runcall(run)
        pstats.Stats(profile).sort_stats("tottime").print_stats(18)


def _cpu(fn) -> float:  # noqa: ANN001
    start = time.process_time()
    fn()
    return time.process_time() - start


if __name__ == "__main__":
    main()
