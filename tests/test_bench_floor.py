"""Target 1's floor (``bench/scale.py``'s ``floor_build``) is the floor of the job a cold
``feeder build`` does: the issue's note says the floor stops the target, so the floor must
not skip work the build does. Both run here on the same generated seeds: the floor writes
the same entry pages and archive files, archives as many entries per page, and records every
seed. (What it leaves out by design, the three current feeds, the language files and the
sitemap, is small and said in its docstring.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import feedparser

from feeder.builder import Builder
from feeder.config import load
from feeder.store import Store

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_floor_writes_the_files_a_cold_build_writes(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import generate
        import scale
    finally:
        sys.path.remove(str(BENCH))
    seeds = tmp_path / "seeds"
    generate.generate(seeds, 230)  # 180 archived: pages of 50, 50, 50 and 30 entries
    floor = scale.floor_build(seeds, tmp_path / "floor", tmp_path / "floor.sqlite3", 2)
    assert floor["processes"] == 2

    config = load(None, env={}, base_url=scale.BASE, seeds=seeds, out=tmp_path / "public",
                  state=tmp_path / "state.sqlite3")
    with Store(config.state) as store:
        Builder(config, store).build()

    def files(folder: Path) -> set[str]:
        return {n for n in os.listdir(folder) if not n.endswith(".gz")}

    built, floored = tmp_path / "public", tmp_path / "floor"
    assert files(floored / "entries") == files(built / "entries")
    assert len(files(built / "entries")) == 230
    assert files(floored / "archive") == files(built / "archive") == {
        f"{kind}-{n}.{ext}" for n in range(1, 5)
        for kind, ext in (("atom", "xml"), ("rss", "xml"), ("page", "html"))}
    for n in range(1, 5):
        for kind in ("atom", "rss"):
            ours = feedparser.parse((floored / f"archive/{kind}-{n}.xml").read_bytes())
            theirs = feedparser.parse((built / f"archive/{kind}-{n}.xml").read_bytes())
            assert ours.bozo == 0 and theirs.bozo == 0
            assert len(ours.entries) == len(theirs.entries) == (30 if n == 4 else 50)
            assert {link.rel for link in ours.feed.links} == {
                link.rel for link in theirs.feed.links}
