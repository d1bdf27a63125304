"""The site half: HTML archive pages, links between entry pages, sitemap.xml and robots.txt.

A crawler follows only ``<a href>`` links from ``/``, served by feeder's own server, and must
reach every entry page; the sitemap is validated against the sitemaps.org 0.9 schema
(tests/data/sitemap.xsd) and must list every entry page once; one new seed must rewrite only
a few HTML pages and only the last sitemap chunks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag

import lxml.etree
import lxml.html
import pytest

from feeder import langfeeds
from feeder import site as site_mod
from feeder.normalizer import Entry
from feeder.server import create_app

from ._servers import http_client, serve_in_thread
from .conftest import REPO, Site

SCHEMA = lxml.etree.XMLSchema(lxml.etree.parse(REPO / "tests" / "data" / "sitemap.xsd"))
NS = {"s": site_mod.SITEMAP_NS}
W3C_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)")
FIRST = dt.date(2020, 1, 1)


def fill(site: Site, count: int, start: int = 0) -> None:
    """``count`` seeds, one a day from FIRST; numbers from ``start``."""
    for n in range(start, start + count):
        day = (FIRST + dt.timedelta(days=n)).isoformat()
        site.write(f"{n:05d}.txt", day, f"Article number {n}. It says {n * 7 % 13} things.")


def entry_pages(out: Path) -> set[str]:
    return {f"entries/{p.name}" for p in (out / "entries").glob("*.html")}


def crawl(base: str, client_base: str) -> Iterator[tuple[str, str, bytes]]:
    """Breadth-first from ``/``, following <a href> only, within ``base`` (the site's own
    URLs) fetched from ``client_base`` (the server); yields (path, content type, body)."""
    seen, queue = {""}, [""]
    with http_client() as client:
        while queue:
            path = queue.pop(0)
            r = client.get(client_base + path)
            assert r.status_code == 200, path
            yield path, r.headers["content-type"], r.content
            if not r.headers["content-type"].startswith("text/html"):
                continue
            for href in lxml.html.fromstring(r.content).xpath("//a/@href"):
                url = urldefrag(href)[0]
                if url.startswith(base) and url[len(base):] not in seen:
                    seen.add(url[len(base):])
                    queue.append(url[len(base):])


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One site of 1,000 entries for the tests that only read it."""
    s = Site(tmp_path_factory.mktemp("thousand"))
    fill(s, 1000)
    report = s.build()
    assert len(report.added) == 1000
    yield s
    s.close()


def test_a_crawler_from_the_index_reaches_every_entry_page(thousand: Site) -> None:
    base, out = thousand.config.base_url, thousand.config.out
    with serve_in_thread(create_app(out, base_url=base)) as served:
        pages = {path: (ctype, body) for path, ctype, body in crawl(base, served)}
    reached = {p for p in pages if p.startswith("entries/")}
    assert reached == entry_pages(out)
    assert len(reached) == 1000
    archive = sorted(p for p in pages if p.startswith("archive/page-"))
    assert len(archive) == 950 // thousand.config.archive_size
    assert pages[archive[0]][0] == "text/html; charset=utf-8"


def test_the_pages_of_the_paginated_index_link_newer_and_older(thousand: Site) -> None:
    base, out = thousand.config.base_url, thousand.config.out
    last = 950 // thousand.config.archive_size

    def rels(rel: str) -> Iterator[str | None]:
        doc = lxml.html.fromstring(path.read_bytes())
        heads = doc.xpath(f"//head/link[@rel='{rel}']/@href")
        bodies = doc.xpath(f"//body//a[@rel='{rel}']/@href")
        assert heads == bodies
        return heads[0][len(base):] if heads else None

    path = out / "index.html"
    assert (rels("prev"), rels("next")) == (None, f"archive/page-{last}.html")
    path = out / f"archive/page-{last}.html"
    assert (rels("prev"), rels("next")) == ("", f"archive/page-{last - 1}.html")
    path = out / "archive/page-1.html"
    assert (rels("prev"), rels("next")) == ("archive/page-2.html", None)
    # an archive page lists the entries of the RFC 5005 page of the same number
    html_links = lxml.html.fromstring((out / "archive/page-3.html").read_bytes()).xpath(
        "//main//li/a/@href")
    atom = lxml.etree.parse(out / "archive/atom-3.xml")
    feed_links = atom.xpath("//a:entry/a:link/@href",
                            namespaces={"a": "http://www.w3.org/2005/Atom"})
    assert html_links == feed_links


def test_each_entry_page_links_the_entries_published_before_and_after_it(site: Site) -> None:
    fill(site, 5)
    site.build()

    def links(n: int) -> tuple[str | None, str | None]:
        doc = lxml.html.fromstring(site.read(f"entries/{n:05d}.html"))
        found = []
        for rel in ("prev", "next"):
            href = doc.xpath(f"//a[@rel='{rel}']/@href")
            found.append(href[0].rsplit("/", 1)[1][:-5] if href else None)
        return found[0], found[1]

    assert [links(n) for n in range(5)] == [
        (None, "00001"), ("00000", "00002"), ("00001", "00003"), ("00002", "00004"),
        ("00003", None)]
    (site.seeds / "00002.txt").unlink()  # its neighbours now link each other
    report = site.build()
    assert sorted(p for p in report.written if p.startswith("entries/")) == [
        "entries/00001.html", "entries/00003.html"]
    assert (links(1), links(3)) == (("00000", "00003"), ("00001", "00004"))
    site.write("00000.txt", "2020-01-09", "Article number 0, moved to the end.")
    site.build()
    assert [links(n) for n in (1, 4, 0)] == [(None, "00003"), ("00003", "00000"),
                                              ("00004", None)]


def test_a_scheduled_entry_is_linked_when_it_is_published(site: Site) -> None:
    fill(site, 2)
    site.write("later.txt", "2026-12-01", "Not yet. Soon.")
    site.build()
    newest = lxml.html.fromstring(site.read("entries/00001.html"))
    assert not newest.xpath("//a[@rel='next']")
    site.now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    site.build()
    newest = lxml.html.fromstring(site.read("entries/00001.html"))
    assert newest.xpath("//a[@rel='next']/@href") == [site.config.base_url + "entries/later.html"]


def sitemap_urls(doc: lxml.etree._ElementTree) -> list[tuple[str, str | None]]:
    return [(u.findtext("s:loc", namespaces=NS), u.findtext("s:lastmod", namespaces=NS))
            for u in doc.getroot().iterfind("s:url", NS)]


def test_sitemap_is_valid_and_lists_every_page_once_with_its_updated_date(
        thousand: Site) -> None:
    base, out = thousand.config.base_url, thousand.config.out
    doc = lxml.etree.parse(out / "sitemap.xml")
    SCHEMA.assertValid(doc)
    assert doc.getroot().tag == f"{{{site_mod.SITEMAP_NS}}}urlset"
    urls = sitemap_urls(doc)
    locs = [loc for loc, _mod in urls]
    assert len(locs) == len(set(locs))
    assert all(loc.startswith(base) for loc in locs)
    assert all(W3C_DATETIME.fullmatch(mod or "") for _loc, mod in urls)
    assert {loc[len(base):] for loc in locs if "/entries/" in loc} == entry_pages(out)
    assert set(locs) - {base + p for p in entry_pages(out)} == {base, f"{base}lang/en/"} | {
        f"{base}archive/page-{n}.html" for n in range(1, 20)}
    lastmod = dict(urls)
    entry = thousand.store.entry_by_name("00123.txt")
    assert lastmod[base + "entries/00123.html"] == entry.updated.isoformat(timespec="seconds")
    assert lastmod[base + "lang/en/"] == lastmod[base] == "2022-09-26T00:00:00+00:00"
    assert (out / "robots.txt").read_text() == (
        f"User-agent: *\nDisallow:\n\nSitemap: {base}sitemap.xml\n")


def test_sitemap_becomes_an_index_of_its_chunks_beyond_the_url_limit(
        make_site, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(site_mod, "CHUNK_URLS", 100)  # 1 archive page of 50 (+1) a chunk
    monkeypatch.setattr(site_mod, "MAX_URLS", 200)
    s = make_site()
    fill(s, 150)
    s.build()
    out, base = s.config.out, s.config.base_url
    assert sitemap_urls(lxml.etree.parse(out / "sitemap.xml"))  # 153 URLs: one sitemap
    fill(s, 100, start=150)
    s.build()
    index = lxml.etree.parse(out / "sitemap.xml")
    SCHEMA.assertValid(index)
    assert index.getroot().tag == f"{{{site_mod.SITEMAP_NS}}}sitemapindex"
    chunks = index.xpath("//s:sitemap/s:loc/text()", namespaces=NS)
    assert chunks == [f"{base}sitemap-{k}.xml" for k in range(1, 5)]
    locs = []
    for k in range(1, 5):
        doc = lxml.etree.parse(out / f"sitemap-{k}.xml")
        SCHEMA.assertValid(doc)
        locs += [loc for loc, _mod in sitemap_urls(doc)]
    assert sorted(locs) == sorted({base, f"{base}lang/en/"} | {base + p for p in entry_pages(out)}
                                  | {f"{base}archive/page-{n}.html" for n in range(1, 5)})


def test_one_new_seed_rewrites_a_few_pages_and_the_last_sitemap_chunks(
        make_site, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(site_mod, "CHUNK_URLS", 100)  # one chunk per archive page
    s = make_site()
    fill(s, 250)
    s.build()
    report = s.build()
    assert report.written == []
    fill(s, 1, start=250)  # the newest: one entry leaves the feeds for archive page 5
    report = s.build()
    html = sorted(p for p in report.written if p.endswith(".html"))
    assert html == ["archive/page-4.html", "archive/page-5.html", "entries/00249.html",
                    "entries/00250.html", "index.html", "lang/en/index.html"]
    assert sorted(p for p in report.written if p.startswith(("sitemap", "robots"))) == [
        "sitemap-4.xml", "sitemap-5.xml", "sitemap.xml"]
    fill(s, 1, start=251)  # page 5 has room: its chunk is now the last
    report = s.build()
    assert sorted(p for p in report.written if p.startswith("sitemap")) == [
        "sitemap-5.xml", "sitemap.xml"]
    assert len([p for p in report.written if p.endswith(".html")]) == 5  # + lang/en/


def test_the_sitemap_lists_each_language_page_with_its_newest_update(site: Site) -> None:
    """Each language with a published entry has its page ``lang/<code>/`` in the sitemap,
    its lastmod the newest ``updated`` of the entries it lists; a language whose entries are
    gone, or not published yet, is not listed."""
    english = "The harvest began early this year. Farmers were glad of the sun and the rain."
    german = "Die Ernte begann dieses Jahr früher. Die Bauern freuten sich über Sonne und Regen."
    site.write("001_en.txt", "2025-03-01", english)
    site.write("002_de.txt", "2025-03-02", german)
    site.write("003_en.txt", "2025-03-05", english)
    site.write("004_de.txt", "2099-01-01", german)  # scheduled: not on the page yet
    site.build()
    base = site.config.base_url

    def listed() -> dict[str, str | None]:
        doc = lxml.etree.parse(site.out / "sitemap.xml")
        SCHEMA.assertValid(doc)
        return {loc[len(base):]: mod for loc, mod in sitemap_urls(doc)
                if loc.startswith(base + "lang/")}

    assert listed() == {"lang/de/": "2025-03-02T00:00:00+00:00",
                        "lang/en/": "2025-03-05T00:00:00+00:00"}
    (site.seeds / "002_de.txt").unlink()
    site.build({"002_de.txt"})  # a named pass: the last chunk is spliced
    assert listed() == {"lang/en/": "2025-03-05T00:00:00+00:00"}
    site.write("002_de.txt", "2025-03-09", german)
    site.build({"002_de.txt"})
    assert listed() == {"lang/de/": "2025-03-09T00:00:00+00:00",
                        "lang/en/": "2025-03-05T00:00:00+00:00"}


def test_the_server_serves_the_site_files_with_their_types(site: Site) -> None:
    fill(site, 60)
    site.build()
    with serve_in_thread(create_app(site.config.out, base_url=site.config.base_url)) as url, \
            http_client() as client:
        for path, ctype in (("robots.txt", "text/plain"), ("sitemap.xml", "application/xml"),
                            ("sitemap-1.xml", "application/xml"),
                            ("archive/page-1.html", "text/html")):
            r = client.get(url + path)
            assert (r.status_code, r.headers["content-type"]) == (200, ctype + "; charset=utf-8")
            assert r.content == site.read(path)
        for path in ("sitemap-0.xml", "sitemap-x.xml", "archive/page-0.html",
                     "archive/page-1.htm"):
            assert client.get(url + path).status_code == 404


def test_a_named_pass_splices_its_sitemap_chunks_as_a_full_render_would_write_them(
        make_site, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Adds, edits and deletions (old and newest, across chunk boundaries): after each
    one-seed pass every chunk holds the bytes rendered from all its rows, though the pass
    read from the store only the rows of the archive pages it changed."""
    monkeypatch.setattr(site_mod, "CHUNK_URLS", 9)  # 3 archive pages of 2 (+1) a chunk
    s = make_site(max_entries=2, archive_size=2)
    fill(s, 30)
    s.build()
    asked: list[tuple[int, int]] = []
    rows = s.store.sitemap_rows

    def spy(first: int, last: int) -> list:
        asked.append((first, last))
        return rows(first, last)

    monkeypatch.setattr(s.store, "sitemap_rows", spy)
    steps = [("add", 30), ("add", 31), ("edit", 4), ("edit", 17), ("delete", 9),
             ("delete", 31), ("delete", 30), ("delete", 29), ("delete", 28), ("delete", 27),
             ("add", 40), ("add", 41), ("add", 42), ("add", 43), ("edit", 0), ("delete", 0)]
    for what, n in steps:
        name = f"{n:05d}.txt"
        if what == "delete":
            (s.seeds / name).unlink()
        elif what == "edit":
            s.write(name, (FIRST + dt.timedelta(days=n)).isoformat(), f"Edited {n}. Text.")
        else:
            fill(s, 1, start=n)
        asked.clear()
        s.build({name})
        assert all(first == last for first, last in asked), (what, n, asked)
        c = s.config
        per = site_mod.pages_per_chunk(c.archive_size)
        pages = int(s.store.get_meta("archive_pages"))
        last = max(1, -(-pages // per))
        newest = s.store.newest(c.max_entries, s.now)
        languages = langfeeds.sitemap_pages(s.store, langfeeds.listed(s.store, s.now),
                                            c.max_entries, s.now)
        chunks = []
        for k in range(1, last + 1):
            data, count, mod = site_mod.render_chunk(
                c.base_url, rows((k - 1) * per + 1, min(k * per, pages)),
                *((newest, languages) if k == last else (None,)))
            assert s.read(site_mod.chunk_path(k)) == data, (what, n, k)
            chunks.append([count, mod])
        assert s.store.get_meta("sitemap_chunks") == chunks
        assert not (s.out / site_mod.chunk_path(last + 1)).exists()


def test_a_chunk_is_spliced_only_if_every_line_is_one_this_module_writes() -> None:
    """splice_chunk keeps whole blocks of an old chunk without splitting them into lines,
    but still refuses (None: the chunk is rendered from the store) a chunk in which any
    line before ``/`` is not a page's or an entry's, or whose first line is not a page's;
    a sound chunk comes back as its bytes, with its URL count."""
    base = "https://example.org/blog/"
    rows = [(page, f"{page:02d}_{i}", f"2025-01-{page:02d}T00:00:00+00:00")
            for page in (1, 2, 3) for i in range(3)]
    data, count, _mod = site_mod.render_chunk(base, rows, None)
    assert count == 12
    assert site_mod.splice_chunk(data, base, range(1, 4), {}, None) == \
        site_mod.render_chunk(base, rows, None)
    kept = site_mod.splice_chunk(data, base, range(2, 4), {}, None)
    assert kept == site_mod.render_chunk(base, rows[3:], None)
    text = data.decode()
    lines = text.splitlines(keepends=True)
    foreign = "<url><loc>https://evil.example/</loc></url>\n"
    for damaged in (
            "".join([*lines[:4], foreign, *lines[4:]]),  # inside a block
            "".join([*lines[:2], lines[3], lines[2], *lines[4:]]),  # an entry before a page
            "".join([*lines[:-2], lines[-2].rstrip("\n"), lines[-1]]),  # a line cut short
            "".join([*lines[:6], foreign, *lines[6:]])):  # at a block's end
        assert site_mod.splice_chunk(damaged.encode(), base, range(1, 4), {}, None) is None


def test_a_language_page_keeps_its_own_sites_lastmod_beside_another_site(make_site) -> None:  # noqa: ANN001
    """The lastmod of a language's page is worked out when its feeds are rendered and
    reused while the store's recorded Atom feed of that language is the one rendered then:
    another site in the same process, with the same language and other dates, is not
    taken for it, and an edit moves it (to the time of the pass that saw it)."""
    english = "The harvest began early this year. Farmers were glad of the sun and the rain."
    german = "Die Ernte begann dieses Jahr früher. Die Bauern freuten sich über Sonne und Regen."
    one, two = make_site(), make_site()
    one.write("001_en.txt", "2025-03-01", english)
    two.write("001_en.txt", "2025-04-01", english)
    one.build()
    two.build()

    def listed(s: Site) -> dict[str, str | None]:
        doc = lxml.etree.parse(s.out / "sitemap.xml")
        return {loc[len(s.config.base_url):]: mod for loc, mod in sitemap_urls(doc)
                if loc.startswith(s.config.base_url + "lang/")}

    one.write("002_de.txt", "2025-03-02", german)  # English is not rendered in this pass
    one.build({"002_de.txt"})
    assert listed(one) == {"lang/de/": "2025-03-02T00:00:00+00:00",
                           "lang/en/": "2025-03-01T00:00:00+00:00"}
    two.write("002_en.txt", "2025-04-03", english)
    two.build({"002_en.txt"})
    assert listed(two) == {"lang/en/": "2025-04-03T00:00:00+00:00"}
    one.write("003_de.txt", "2025-03-03", german)
    one.build({"003_de.txt"})
    assert listed(one) == {"lang/de/": "2025-03-03T00:00:00+00:00",
                           "lang/en/": "2025-03-01T00:00:00+00:00"}
    one.write("001_en.txt", "2025-03-01", english + " Edited.")
    one.build({"001_en.txt"})
    assert listed(one)["lang/en/"] == one.now.isoformat(timespec="seconds")


def test_a_chunk_spliced_from_the_last_splice_is_what_reading_it_through_gives() -> None:
    """``splice_chunk`` splices the chunk it made last from the spans it kept of it, not by
    reading it through: the same bytes, URL count and lastmod as ``_splice`` (which reads
    any chunk through), whatever pages are kept, replaced, added or dropped; a chunk on disk
    that is not the one made last (another chunk, or the same one damaged) is read
    through again."""
    base = "https://example.org/blog/"

    def rows(page: int, day: int) -> list[tuple[int, str, str]]:
        return [(page, f"{page:02d}_{i}", f"2025-01-{day:02d}T0{i}:00:00+00:00") for i in range(3)]

    def entry(day: int) -> Entry:
        moment = dt.datetime(2025, 2, day, tzinfo=dt.UTC)
        return Entry(id=f"tag:x,2025:{day}", stem=f"c{day}", slug=f"c{day}", title="T",
                     summary="S.", content_html="<p>C.</p>", published=moment,
                     updated=moment, language="en")

    data, _count, _mod = site_mod.render_chunk(
        base, [r for page in (1, 2, 3) for r in rows(page, page)], [entry(1)], [("en", None)])
    steps = [  # pages, fresh pages (page, day), current entries, languages
        (range(1, 5), [(3, 9), (4, 10)], [entry(2), entry(1)],
         [("de", "2025-03-01T00:00:00+00:00")]),
        (range(1, 5), [(4, 11)], [entry(3)], []),
        (range(2, 6), [(5, 12)], [entry(4)], [("en", "2025-01-01T00:00:00+00:00")]),
        (range(2, 6), [], None, []),
        (range(1, 7), [(1, 1), (6, 2)], [entry(5)], []),
    ]
    for pages, fresh_pages, current, languages in steps:
        fresh = {}
        for page, day in fresh_pages:
            fresh.update(site_mod._page_blocks(base, rows(page, day)))
        expected = site_mod._splice(data, base, pages, fresh, current, languages)
        assert expected is not None
        made = site_mod.splice_chunk(data, base, pages, fresh, current, languages)
        assert made == expected, (pages, fresh_pages)
        data = made[0]
    assert site_mod._made[0] is data and site_mod._made[2] is not None  # from its spans
    other, _count, _mod = site_mod.render_chunk(base, rows(7, 7), None)
    assert site_mod.splice_chunk(other, base, range(7, 8), {}, None) == \
        site_mod._splice(other, base, range(7, 8), {}, None)
    made = site_mod.splice_chunk(other, base, range(7, 8), {}, None)
    assert made is not None
    damaged = made[0].replace(b"07_1", b"07_1</loc></url>\n<url><loc>https://evil.example/")
    assert site_mod.splice_chunk(damaged, base, range(7, 8), {}, None) is None
