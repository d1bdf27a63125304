"""A pass killed between renaming a file's .gz sibling (first) and the file, whose change is
then taken back: the file on disk is found as written, but its sibling holds the version that
never went in place (and gzip_static serves it), so both are written again."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from feeder import output

from .conftest import Site

BIG = "Long enough to compress. " * 40


class Crash(Exception):
    """Stands for the process dying at the injected point."""


@pytest.mark.parametrize("named", [False, True], ids=["full pass", "named pass"])
@pytest.mark.parametrize("target", ["atom.xml", "lang/en/atom.xml", "index.html"])
def test_gz_sibling_of_a_version_never_put_in_place_is_replaced(
        site: Site, monkeypatch: pytest.MonkeyPatch, named: bool, target: str) -> None:
    """A pass dies between renaming a feed's (or the index's) .gz sibling and the file (the
    feed's new version recorded); the new seed is taken back before the restart: the file on
    disk holds the bytes rendered now, but its .gz sibling held the version never put in
    place (on 618f39c and before)."""
    site.write("001_a.txt", "2025-12-01", f"First article. {BIG}")
    site.build()
    seed = site.write("002_b.txt", "2025-12-02", f"Second article. {BIG}")

    def die(path: Path) -> None:  # called before each rename
        if path == site.out / target:  # its .gz sibling went in place just before
            raise Crash

    monkeypatch.setattr(output, "before_rename", die)
    with pytest.raises(Crash):
        site.build({"002_b.txt"} if named else None)
    monkeypatch.undo()
    assert b"Second article" in gzip.decompress(site.read(f"{target}.gz"))
    seed.unlink()  # taken back before the restart
    site.build({"002_b.txt"} if named else None)
    for rel in ("atom.xml", "rss.xml", "feed.json", "lang/en/atom.xml", "lang/en/rss.xml",
                "lang/en/feed.json"):
        data = site.read(rel)
        assert b"First article" in data and b"Second article" not in data, rel
        assert gzip.decompress(site.read(f"{rel}.gz")) == data, rel
    for rel in ("index.html", "lang/en/index.html"):
        data = site.read(rel)
        assert gzip.decompress(site.read(f"{rel}.gz")) == data, rel
