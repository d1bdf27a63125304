"""RFC 5005 paged archives: every entry in exactly one document, links chained both ways."""

from __future__ import annotations

import datetime as dt

import feedparser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from .conftest import Site

ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
BASE = "http://127.0.0.1:8080/"


def links(site: Site, rel_path: str) -> dict[str, str]:
    root = etree.fromstring(site.read(rel_path))
    return {e.get("rel"): e.get("href").removeprefix(BASE) for e in root.iter(f"{ATOM}link")
            if e.getparent() is root or e.getparent().tag == "channel"}


def entry_ids(site: Site, rel_path: str) -> list[str]:
    feed = feedparser.parse(site.read(rel_path))
    assert feed.bozo == 0
    return [e.id for e in feed.entries]


def check_archives(site: Site, total: int, kind: str = "atom") -> int:
    current = f"{kind}.xml"
    seen = entry_ids(site, current)
    pages = 0
    prev = links(site, current).get("prev-archive")
    newer = current
    while prev:
        pages += 1
        page_links = links(site, prev)
        root = etree.fromstring(site.read(prev))
        marker = root.find(f"{FH}archive") if kind == "atom" else root.find(f"channel/{FH}archive")
        assert marker is not None, prev
        assert page_links["current"] == current
        assert page_links["self"] == prev
        if newer != current:
            assert page_links["next-archive"] == newer
        else:
            assert "next-archive" not in page_links
        seen += entry_ids(site, prev)
        newer, prev = prev, page_links.get("prev-archive")
    assert len(seen) == len(set(seen)) == total
    return pages


def test_archives_partition_and_chain(make_site) -> None:  # noqa: ANN001
    site = make_site(max_entries=3, archive_size=2)
    for day in range(1, 11):
        site.write(f"{day:03d}_a.txt", f"2025-12-{day:02d}", f"Day {day}. Text.")
    report = site.build()
    assert check_archives(site, 10) == 4
    assert check_archives(site, 10, "rss") == 4
    assert "archive/atom-4.xml" in report.written
    # page 1 holds the two oldest entries
    assert [e.split(":")[-1] for e in entry_ids(site, "archive/atom-1.xml")] == ["002_a", "001_a"]

    # a new newest entry moves one entry into the last, partial page: only that page changes
    site.write("011_a.txt", "2025-12-11", "Day 11. Text.")
    report = site.build()
    archive_writes = sorted(p for p in report.written if p.startswith("archive/"))
    assert archive_writes == ["archive/atom-4.xml", "archive/page-4.html", "archive/rss-4.xml"]
    assert check_archives(site, 11) == 4

    # the next one opens page 5, and page 4 gains its next-archive link
    site.write("012_a.txt", "2025-12-12", "Day 12. Text.")
    report = site.build()
    archive_writes = sorted(p for p in report.written if p.startswith("archive/"))
    assert archive_writes == ["archive/atom-4.xml", "archive/atom-5.xml",
                              "archive/page-4.html", "archive/page-5.html",
                              "archive/rss-4.xml", "archive/rss-5.xml"]
    assert check_archives(site, 12) == 5

    # deleting the oldest changes only its own page: no other page shifts
    before = {n: site.read(f"archive/atom-{n}.xml") for n in range(2, 6)}
    (site.seeds / "001_a.txt").unlink()
    report = site.build()
    archive_writes = sorted(p for p in report.written if p.startswith("archive/"))
    assert archive_writes == ["archive/atom-1.xml", "archive/page-1.html", "archive/rss-1.xml"]
    assert check_archives(site, 11) == 5
    assert all(site.read(f"archive/atom-{n}.xml") == before[n] for n in range(2, 6))

    # deleting a current entry brings the newest archived one back into the feeds
    (site.seeds / "012_a.txt").unlink()
    site.build()
    assert check_archives(site, 10) == 4
    assert not (site.out / "archive" / "atom-5.xml").exists()


def test_backdated_seed_goes_to_the_newest_page(make_site) -> None:  # noqa: ANN001
    site = make_site(max_entries=2, archive_size=2)
    for day in range(2, 12):
        site.write(f"{day:03d}_a.txt", f"2025-12-{day:02d}", f"Day {day}. Text.")
    site.build()
    full = {n: site.read(f"archive/atom-{n}.xml") for n in range(1, 5)}
    site.write("001_a.txt", "2025-12-01", "Day 1. Text.")
    report = site.build()
    archive_writes = sorted(p for p in report.written if p.startswith("archive/"))
    assert archive_writes == ["archive/atom-4.xml", "archive/atom-5.xml",
                              "archive/page-4.html", "archive/page-5.html",
                              "archive/rss-4.xml", "archive/rss-5.xml"]
    assert all(site.read(f"archive/atom-{n}.xml") == full[n] for n in (1, 2, 3))
    assert entry_ids(site, "archive/atom-5.xml")[0].endswith(":001_a")
    assert check_archives(site, 11) == 5


def test_missing_archive_page_is_restored_by_a_full_build(make_site) -> None:  # noqa: ANN001
    site = make_site(max_entries=2, archive_size=2)
    for day in range(1, 9):
        site.write(f"{day:03d}_a.txt", f"2025-12-{day:02d}", f"Day {day}. Text.")
    site.build()
    (site.out / "archive" / "rss-2.xml").unlink()
    report = site.build()
    assert "archive/rss-2.xml" in report.written
    assert check_archives(site, 8, "rss") == 3


def test_edit_in_place_rewrites_only_its_archive_page(make_site) -> None:  # noqa: ANN001
    site = make_site(max_entries=3, archive_size=2)
    for day in range(1, 11):
        site.write(f"{day:03d}_a.txt", f"2025-12-{day:02d}", f"Day {day}. Text.")
    site.build()
    before = {n: site.read(f"archive/atom-{n}.xml") for n in range(1, 5)}
    site.now += dt.timedelta(hours=1)
    site.write("003_a.txt", "2025-12-03", "Day 3. Text, edited.")
    report = site.build({"003_a.txt"})
    assert report.changed == ["003_a.txt"]
    archives = sorted(p for p in report.written if p.startswith("archive/"))
    assert archives == ["archive/atom-2.xml", "archive/page-2.html", "archive/rss-2.xml"]
    assert b"edited" in site.read("archive/atom-2.xml")
    assert all(site.read(f"archive/atom-{n}.xml") == before[n] for n in (1, 3, 4))
    # the same result as a build from scratch
    fresh = make_site(max_entries=3, archive_size=2)
    for path in site.seeds.iterdir():
        (fresh.seeds / path.name).write_bytes(path.read_bytes())
    fresh.now = site.now
    fresh.build()
    for n in (1, 3, 4):
        assert fresh.read(f"archive/atom-{n}.xml") == site.read(f"archive/atom-{n}.xml")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "edit", "delete"]),
                              st.integers(1, 28)), min_size=1, max_size=12))
def test_any_sequence_of_changes_keeps_every_entry_in_exactly_one_document(
        make_site, ops: list[tuple[str, int]]) -> None:  # noqa: ANN001
    site = make_site(max_entries=3, archive_size=2)
    for day in range(1, 9):
        site.write(f"{day:03d}_a.txt", f"2025-12-{day:02d}", f"Day {day}. Text.")
    site.build()
    for op, day in ops:
        path = site.seeds / f"{day:03d}_a.txt"
        if op == "delete":
            path.unlink(missing_ok=True)
        else:
            site.write(path.name, f"2025-12-{day:02d}", f"Day {day} {op}. Text.")
        site.build()
        total = len(list(site.seeds.glob("*.txt")))
        check_archives(site, total)
        check_archives(site, total, "rss")


def test_entry_redated_into_the_future_leaves_its_archive_page(make_site) -> None:  # noqa: ANN001
    site = make_site(max_entries=2, archive_size=2)
    for day in range(1, 6):
        site.write(f"{day:03d}_a.txt", f"2025-12-{day:02d}", f"Day {day}. Text.")
    site.build()
    site.write("001_a.txt", "2027-01-01", "Embargoed secret. Text.")
    site.build()
    assert not any(b"Embargoed" in p.read_bytes() for p in site.out.rglob("*.xml"))
    assert check_archives(site, 4) == 2
