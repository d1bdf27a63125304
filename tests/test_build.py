"""feeder build, in-process: the store, the renderer and the output folder together."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from feeder import output
from feeder.builder import Builder

from .conftest import REAL_SEED, Site

ATOM = "{http://www.w3.org/2005/Atom}"


def parsed(site: Site, rel: str) -> feedparser.FeedParserDict:
    result = feedparser.parse(site.read(rel))
    assert result.bozo == 0, result.get("bozo_exception")
    return result


def ids(site: Site, rel: str = "atom.xml") -> list[str]:
    return [e.id for e in parsed(site, rel).entries]


def test_real_seed_in_all_three_feeds(site: Site) -> None:
    (site.seeds / REAL_SEED.name).write_bytes(REAL_SEED.read_bytes())
    report = site.build()
    assert report.added == [REAL_SEED.name]
    for rel in ("atom.xml", "rss.xml"):
        feed = parsed(site, rel)
        (entry,) = feed.entries
        assert entry.published_parsed[:3] == (2025, 12, 28)
        assert entry.title.startswith("Nel contesto del conflitto ucraino")
        assert "Il ruolo della Corea del Nord nel conflitto" in entry.content[0].value
    atom = etree.fromstring(site.read("atom.xml"))
    assert atom.find(f"{ATOM}entry").get("{http://www.w3.org/XML/1998/namespace}lang") == "it"
    doc = json.loads(site.read("feed.json"))
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["authors"] and doc["language"] == "en"
    (item,) = doc["items"]
    assert item["language"] == "it"
    assert item["date_published"].startswith("2025-12-28")
    assert item["id"] == "tag:127.0.0.1,2025:000_d53b54a01c1a6f6f"
    assert (site.out / "entries" / "000_d53b54a01c1a6f6f.html").exists()


def test_building_twice_rewrites_nothing(site: Site) -> None:
    for i in range(5):
        site.write(f"{i:03d}_a.txt", f"2025-12-0{i + 1}", f"Article {i}. Body text here.")
    first = site.build()
    assert "atom.xml" in first.written and len(first.written) >= 9
    stamps = {p: p.stat().st_mtime_ns for p in site.out.rglob("*")}
    second = site.build()
    assert second.written == [] and second.changed_feeds == []
    assert second.unchanged == 5 and not second.added and not second.changed
    assert {p: p.stat().st_mtime_ns for p in site.out.rglob("*")} == stamps


def test_feeds_newest_first_limited_and_linked(make_site) -> None:  # noqa: ANN001
    site = make_site(max_entries=3, hubs=["http://127.0.0.1:9/hub"])
    for i in range(5):
        site.write(f"{i:03d}_a.txt", f"2025-12-0{i + 1}", f"Article number {i}. Body.")
    site.build()
    feed = parsed(site, "atom.xml")
    assert [e.title for e in feed.entries] == [f"Article number {i}" for i in (4, 3, 2)]
    rels = {(link.rel, link.href) for link in feed.feed.links}
    assert ("self", "http://127.0.0.1:8080/atom.xml") in rels
    assert ("hub", "http://127.0.0.1:9/hub") in rels
    assert ("alternate", "http://127.0.0.1:8080/") in rels
    rss = etree.fromstring(site.read("rss.xml"))
    links = {(e.get("rel"), e.get("href")) for e in rss.iter(f"{ATOM}link")}
    assert ("hub", "http://127.0.0.1:9/hub") in links
    assert ("self", "http://127.0.0.1:8080/rss.xml") in links
    assert rss.findtext("channel/link") == "http://127.0.0.1:8080/"
    assert json.loads(site.read("feed.json"))["hubs"] == [
        {"type": "WebSub", "url": "http://127.0.0.1:9/hub"}]
    for e in feed.entries:
        assert e.link.startswith("http://127.0.0.1:8080/entries/")
        assert (site.out / e.link.removeprefix("http://127.0.0.1:8080/")).exists()
    index = site.read("index.html").decode()
    for kind in ('application/atom+xml', 'application/rss+xml', 'application/feed+json'):
        assert f'rel="alternate" type="{kind}"' in index


def test_edit_changes_updated_not_id_and_delete_removes(site: Site) -> None:
    path = site.write("001_x.txt", "2025-12-01", "First version. Text.")
    site.build()
    (before,) = parsed(site, "atom.xml").entries
    assert before.updated == before.published
    site.now = site.now.replace(hour=13)
    path.write_bytes(b" date 2025-12-01 Second version. Text.")
    report = site.build()
    assert report.changed == ["001_x.txt"]
    (after,) = parsed(site, "atom.xml").entries
    assert after.id == before.id
    assert after.title == "Second version"
    assert after.updated_parsed[:4] == (2026, 11, 27, 13)
    assert after.published == before.published
    # rebuilding the unchanged seed keeps the dates
    site.now = site.now.replace(hour=14)
    site.build()
    assert parsed(site, "atom.xml").entries[0].updated == after.updated
    path.unlink()
    report = site.build()
    assert report.removed == ["001_x.txt"]
    assert parsed(site, "atom.xml").entries == []
    assert not (site.out / "entries" / "001_x.html").exists()


@pytest.mark.parametrize("named", [False, True], ids=["full pass", "named pass"])
def test_feeds_too_small_to_compress_are_written_when_they_change(site: Site,
                                                                  named: bool) -> None:
    """A feed under GZIP_MIN_BYTES (feed.json with no items) gets no .gz sibling, but its
    new bytes are written all the same."""
    path = site.write("001_x.txt", "2025-12-01", "Only entry. Text.")
    site.build()
    for rel in ("feed.json", "lang/en/feed.json"):
        assert json.loads(site.read(rel))["items"], rel
        assert (site.out / f"{rel}.gz").exists(), rel  # removed below, as the feed shrinks
    path.unlink()
    report = site.build({"001_x.txt"} if named else None)
    assert report.removed == ["001_x.txt"]
    for rel in ("feed.json", "lang/en/feed.json"):
        data = site.read(rel)
        assert len(data) < output.GZIP_MIN_BYTES and json.loads(data)["items"] == [], rel
        assert not (site.out / f"{rel}.gz").exists(), rel
    assert parsed(site, "atom.xml").entries == parsed(site, "rss.xml").entries == []


def test_bad_seed_is_reported_and_good_ones_stay(site: Site) -> None:
    site.write("001_good.txt", "2025-12-01", "A good one. Text.")
    bad = site.seeds / "002_bad.txt"
    bad.write_bytes(b"no header here, just text.")
    report = site.build()
    assert [n for n, _ in report.rejected] == ["002_bad.txt"]
    assert "no 'date YYYY-MM-DD' header" in report.rejected[0][1]
    assert len(ids(site)) == 1
    assert site.store.rejected() == [("002_bad.txt", report.rejected[0][1])]
    again = site.build()
    assert again.rejected == []  # reported once, not on every pass
    bad.write_bytes(b" date 2025-12-02 Fixed now. Text.")
    fixed = site.build()
    assert fixed.added == ["002_bad.txt"] and site.store.rejected() == []
    assert len(ids(site)) == 2


def test_touch_without_change_is_not_renormalized(site: Site) -> None:
    path = site.write("001_x.txt")
    site.build()
    os.utime(path, ns=(1, 1))
    report = site.build()
    assert report.unchanged == 1 and not report.changed and report.written == []
    assert site.store.fingerprint("001_x.txt").mtime_ns == 1


def test_future_seed_is_held_back_until_due(site: Site) -> None:
    site.write("001_now.txt", "2025-12-01", "Now. Text.")
    site.write("002_later.txt", "2026-12-01", "Later. Text.")
    report = site.build()
    assert len(ids(site)) == 1
    assert [n for n, _ in report.scheduled] == ["002_later.txt"]
    site.now = site.now.replace(year=2027)
    site.build(names=set())
    assert len(ids(site)) == 2


def test_implausible_dates_rejected(site: Site) -> None:
    site.write("001_far.txt", "2031-01-01", "Far future. Text.")
    site.write("002_old.txt", "1850-01-01", "Old. Text.")
    reasons = dict(site.build().rejected)
    assert "days ahead" in reasons["001_far.txt"]
    assert "before 1900" in reasons["002_old.txt"]


def test_duplicate_stem_is_rejected(make_site) -> None:  # noqa: ANN001
    site = make_site(extensions=[".txt", ".text"])
    site.write("001_x.txt", body="One. Text.")
    site.write("001_x.text", body="Two. Text.")
    report = site.build()
    assert len(ids(site)) == 1
    ((name, reason),) = report.rejected
    assert "same entry id" in reason


def test_symlinks(site: Site, tmp_path) -> None:  # noqa: ANN001
    outside = tmp_path / "passwd.txt"
    outside.write_bytes(b" date 2025-12-01 Secret stuff. Text.")
    inside = site.write("001_real.txt", body="Inside. Text.")
    (site.seeds / "002_link.txt").symlink_to(inside)
    (site.seeds / "003_evil.txt").symlink_to(outside)
    (site.seeds / "004_loop.txt").symlink_to(site.seeds / "004_loop.txt")
    reasons = dict(site.build().rejected)
    assert reasons["003_evil.txt"] == "symlink points outside the seeds folder"
    assert "loop" in reasons["004_loop.txt"]
    titles = [e.title for e in parsed(site, "atom.xml").entries]
    assert titles == ["Inside", "Inside"]
    assert b"Secret" not in site.read("atom.xml")


def test_crash_leftovers_never_served(site: Site) -> None:
    from feeder import output

    site.write("001_x.txt")
    site.build()
    (site.out / ".atom.xml.123.tmp").write_bytes(b"<half")
    assert output.sweep_temp_files(site.out) == 1
    assert not list(site.out.glob(".*.tmp"))


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "a ]]> b", "AT&amp;T & co"])
def test_markup_in_seed_is_text_everywhere(site: Site, text: str) -> None:
    site.write("001_x.txt", body=f"Title here. {text} end.\n\nMore {text}.")
    site.build()
    for rel in ("atom.xml", "rss.xml"):
        entry = parsed(site, rel).entries[0]
        assert entry.summary_detail.type == "text/html" and "<script>" not in entry.summary
        assert text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in (
            entry.content[0].value)
    item = json.loads(site.read("feed.json"))["items"][0]
    assert text in item["summary"]
    page = site.read("entries/001_x.html").decode()
    assert "<script>alert" not in page


def test_file_name_that_is_not_utf8_is_rejected_once(site: Site) -> None:
    site.write("001_ok.txt")
    raw = os.path.join(os.fsencode(site.seeds), b"caf\xe9.txt")
    with open(raw, "wb") as fh:
        fh.write(b" date 2025-12-01 Caf\xc3\xa9 text. More.")
    report = site.build()
    assert report.rejected == [("caf\\xe9.txt", "file name is not valid UTF-8: rename the file")]
    assert site.build().rejected == []
    assert len(ids(site)) == 1


def test_scheduled_entry_page_appears_only_when_due(site: Site) -> None:
    site.write("001_now.txt", "2025-12-01", "Now. Text.")
    site.write("002_later.txt", "2026-12-01", "Later secret. Text.")
    site.build()
    page = site.out / "entries" / "002_later.html"
    assert not page.exists()
    assert b"Later secret" not in b"".join(p.read_bytes() for p in site.out.rglob("*.*"))
    site.now = site.now.replace(year=2027)
    report = site.build(names=set())  # the daemon's timed rebuild names no seed
    assert "entries/002_later.html" in report.written and page.exists()
    # re-dating a published seed into the future withdraws its page again
    site.write("001_now.txt", "2028-06-01", "Now moved. Text.")
    site.build()
    assert not (site.out / "entries" / "001_now.html").exists()


def test_symlink_swapped_in_after_the_scan_is_not_read(site: Site, tmp_path) -> None:  # noqa: ANN001
    from feeder.normalizer import Rules
    from feeder.sync import read_seed

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b" date 2025-12-01 Top secret. Text.")
    path = site.write("001_x.txt")
    path.unlink()
    path.symlink_to(secret)  # swapped in between the scan and the read
    result = read_seed(path, "001_x.txt", 1 << 20, Rules("example.org", "2025"),
                       root=str(site.seeds.resolve()))
    assert result is not None and result.entry is None
    assert "outside the seeds folder" in (result.reason or "")


@pytest.mark.parametrize("threshold", [10**9, 1])  # read in this process, then in workers
@pytest.mark.parametrize("target", ["outside", "inside"])
def test_a_seed_swapped_for_a_symlink_after_the_scan(make_site, tmp_path, monkeypatch,  # noqa: ANN001
                                                     target: str, threshold: int) -> None:
    """The scan saw a regular file; when its chunk is read, a symlink is in its place. One
    leading out of the seeds folder is refused and never read (the chunk opens the seeds
    folder's files with O_NOFOLLOW); one to a file inside the folder is read, as any
    symlink inside it is."""
    from feeder import folder, pool

    from ._daemon import seed_bytes

    monkeypatch.setattr(pool, "POOL_THRESHOLD", threshold)
    site = make_site()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(seed_bytes("2025-12-01", "Top secret. Text."))
    site.write("002_y.txt", "2025-12-02", "Inside text. More.")
    path = site.write("001_x.txt")
    real_scan = folder.Folder.scan

    def scan_then_swap(self: folder.Folder) -> dict:
        found = real_scan(self)
        path.unlink()
        path.symlink_to(secret if target == "outside" else "002_y.txt")
        return found

    monkeypatch.setattr(folder.Folder, "scan", scan_then_swap)
    report = site.build()
    published = b"".join(p.read_bytes() for p in site.out.rglob("*.*") if not p.is_symlink())
    assert b"Top secret" not in published
    if target == "outside":
        assert report.rejected == [("001_x.txt", "symlink points outside the seeds folder")]
        assert report.added == ["002_y.txt"]
    else:
        assert report.rejected == [] and report.added == ["001_x.txt", "002_y.txt"]
        assert b"Inside text" in site.read("entries/001_x.html")


def test_without_proc_a_symlink_is_read_only_where_it_can_be_checked(
        make_site, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Where /proc is missing (a chroot, some containers) nothing can say where an opened
    symlink led. Plain seeds are still read (in the seeds folder opened once, by its
    identity, with O_NOFOLLOW), and so is a symlink to a file directly in the folder (its
    target opened the same way); any other symlink is refused, never read: one swapped in
    after the scan and leading outside was read and published before."""
    from feeder import folder, sync

    from ._daemon import seed_bytes

    monkeypatch.setattr(sync, "_PROC_FD", os.fspath(tmp_path / "no-proc"))
    site = make_site()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(seed_bytes("2025-12-01", "Top secret. Text."))
    site.write("002_y.txt", "2025-12-02", "Inside text. More.")
    (site.seeds / "sub").mkdir()
    (site.seeds / "sub" / "deep.md").write_bytes(seed_bytes("2025-12-03", "Deep text. More."))
    (site.seeds / "003_near.txt").symlink_to("002_y.txt")
    (site.seeds / "004_deep.txt").symlink_to("sub/deep.md")
    path = site.write("001_x.txt")
    real_scan = folder.Folder.scan

    def scan_then_swap(self: folder.Folder) -> dict:
        found = real_scan(self)
        path.unlink()
        path.symlink_to(secret)
        return found

    monkeypatch.setattr(folder.Folder, "scan", scan_then_swap)
    report = site.build()
    published = b"".join(p.read_bytes() for p in site.out.rglob("*.*") if not p.is_symlink())
    assert b"Top secret" not in published
    assert report.added == ["002_y.txt", "003_near.txt"]
    assert sorted(name for name, _reason in report.rejected) == ["001_x.txt", "004_deep.txt"]
    assert all("no /proc" in reason for _name, reason in report.rejected)


def test_rejected_duplicate_is_published_once_its_twin_is_gone(make_site) -> None:  # noqa: ANN001
    site = make_site(extensions=[".txt", ".text"])
    site.write("001_x.txt", body="One. Text.")
    site.write("001_x.text", body="Two. Text.")
    ((twin, _reason),) = site.build().rejected
    owner = ({"001_x.txt", "001_x.text"} - {twin}).pop()
    (site.seeds / owner).unlink()
    report = site.build()
    assert report.added == [twin] and site.store.rejected() == []
    assert len(parsed(site, "atom.xml").entries) == 1


def test_changed_normalizing_settings_renormalize_without_touching_dates(make_site) -> None:  # noqa: ANN001
    import dataclasses

    from feeder.normalizer import Rules

    site = make_site()
    site.write("001_x.txt", body="A rather long first sentence for the title. More.")
    site.build()
    (before,) = parsed(site, "atom.xml").entries
    builder = site.builder()
    builder.config = dataclasses.replace(site.config, title_length=12)
    builder.rules = Rules.from_config(builder.config)
    site.now = site.now.replace(hour=15)
    builder.build()
    (after,) = parsed(site, "atom.xml").entries
    assert after.title == "A rather…" and after.updated == before.updated


def test_pages_survive_a_pass_that_dies_before_publishing(site: Site, monkeypatch) -> None:  # noqa: ANN001
    from feeder.builder import Builder
    from feeder.publish import Publisher

    site.write("001_a.txt", body="Old text. More.")
    site.write("002_b.txt", body="Doomed. More.")
    site.build()
    site.write("001_a.txt", body="New text. More.")
    (site.seeds / "002_b.txt").unlink()

    def crash(*args: object, **kwargs: object) -> bytes:
        raise OSError("disk on fire (test)")

    monkeypatch.setattr(Publisher, "_assign_pages", crash)  # the first step of publishing
    with pytest.raises(OSError):
        site.build()  # the store has the changes; the pages were never written
    monkeypatch.undo()
    # a new process (a fresh Builder on the same state file) finishes the job
    Builder(site.config, site.store, clock=site.clock, progress=False).build()
    assert b"New text" in site.read("entries/001_a.html")
    assert not (site.out / "entries" / "002_b.html").exists()


def test_another_base_url_says_so_in_one_line_and_renders_again(site: Site, caplog) -> None:
    site.write("a.txt", "2025-12-01", "First text. It is here.")
    site.build()
    moved = site.config.replace(base_url="https://news.example.org/")
    builder = Builder(moved, site.store, clock=site.clock, progress=False)
    with caplog.at_level(logging.INFO, logger="feeder"):
        report = builder.build()
    (line,) = [r.getMessage() for r in caplog.records if "base_url" in r.getMessage()]
    assert "https://news.example.org/" in line and "http://127.0.0.1:8080/" in line
    assert "rendering every output again" in line
    assert "atom.xml" in report.written and "entries/a.html" in report.written
    assert b"https://news.example.org/entries/a.html" in site.read("atom.xml")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="feeder"):
        again = builder.build()
    assert again.written == [] and not caplog.records


def test_a_pass_says_when_its_feeds_are_in_place_before_it_writes_the_rest(
        make_site) -> None:  # noqa: ANN001
    """``on_feeds`` (the daemon's cue to serve the new feeds) comes once the feeds and the
    new entry's page hold the new seed, while the sitemap does not list it yet."""
    s = make_site(max_entries=2, archive_size=2)
    for i in range(5):
        s.write(f"{i:03d}_a.txt", f"2025-12-0{i + 1}", f"Article number {i}. Body text.")
    s.build()
    seen = []

    def on_feeds() -> None:
        seen.append((b"006_a" in s.read("atom.xml"), (s.out / "entries/006_a.html").exists(),
                     b"006_a" in s.read("sitemap.xml")))

    builder = s.builder()
    builder.on_feeds = on_feeds
    s.write("006_a.txt", "2025-12-09", "A new one. Body.")
    builder.build({"006_a.txt"})
    assert seen == [(True, True, False)]
    assert b"006_a" in s.read("sitemap.xml")


def test_a_pass_renders_its_archive_pages_while_its_feeds_are_put_in_place(
        make_site, monkeypatch) -> None:  # noqa: ANN001
    """A pass of one new seed flushes and renames its entry page and feeds on a thread of
    their own while it renders the archive page and sitemap: here the main feed's rename
    waits until an archive page is being rendered (a pass that rendered the archive pages
    only after its feeds were in place would never get there), and the pass still ends with
    every file holding the new seed."""
    from feeder import output, publish

    s = make_site(max_entries=2, archive_size=2)
    for i in range(5):
        s.write(f"{i:03d}_a.txt", f"2025-12-0{i + 1}", f"Article number {i}. Body text.")
    s.build()
    rendering, waited = threading.Event(), []
    render_page = publish.write_archive_page

    def archive_page(*args: object, **kwargs: object) -> list[str]:
        rendering.set()
        return render_page(*args, **kwargs)

    def before_rename(path: Path) -> None:
        if path == s.out / "atom.xml":
            waited.append(rendering.wait(10))

    monkeypatch.setattr(publish, "write_archive_page", archive_page)
    monkeypatch.setattr(output, "before_rename", before_rename)
    s.write("006_a.txt", "2025-12-09", "A new one. Body.")
    s.build({"006_a.txt"})
    assert waited == [True], "the feeds were renamed only after the archive pages"
    assert b"006_a" in s.read("atom.xml") and b"006_a" in s.read("sitemap.xml")
    assert (s.out / "entries/006_a.html").exists()


def _chunk_of_pages(site: Site) -> tuple[list, object]:
    from feeder import publish, render

    for i in range(6):
        site.write(f"{i:03d}_a.txt", f"2025-12-0{i + 1}", f"Article number {i}. Body text.")
    site.build()
    items = list(publish.with_neighbours(site.store.iter_named_entries(), site.now,
                                         lambda *_: True))
    for page in site.out.glob("entries/*.html"):  # to be written again
        page.unlink()
    return items, render.FeedInfo.from_config(site.config)


def test_a_chunk_of_pages_goes_in_place_in_two_halves(site: Site, monkeypatch) -> None:  # noqa: ANN001
    """A worker's chunk of entry pages is written as two batches: the first half's pages
    are flushed and renamed while the second half renders (here the last page's render
    waits until a page of the first half is being renamed: one batch for the whole chunk
    would never get there), and every page ends up in place with the hash returned for it."""
    import hashlib

    from feeder import output, publish, render

    items, info = _chunk_of_pages(site)
    monkeypatch.setattr(publish, "PIPELINE_PAGES", 3)
    first = {site.out / render.entry_path(e) for e, _p, _n in items[:3]}
    renaming, waited = threading.Event(), []
    render_page = render.render_entry_page

    def entry_page(info, entry, prev, next_):  # noqa: ANN001, ANN202
        if entry is items[-1][0]:
            waited.append(renaming.wait(10))
        return render_page(info, entry, prev, next_)

    def before_rename(path: Path) -> None:
        if path in first:
            renaming.set()

    monkeypatch.setattr(render, "render_entry_page", entry_page)
    monkeypatch.setattr(output, "before_rename", before_rename)
    written, hashes = publish.write_entry_pages(info, site.out, items)
    assert waited == [True], "the first half was renamed only after the second rendered"
    assert sorted(written) == sorted(path for path, _h in hashes) and len(written) == 6
    for path, digest in hashes:
        assert hashlib.sha256((site.out / path).read_bytes()).hexdigest() == digest
    assert not list(site.out.glob("entries/.*.tmp"))


def test_a_chunk_of_archive_pages_goes_in_place_in_two_halves(make_site, monkeypatch) -> None:  # noqa: ANN001
    """As for entry pages: a worker's chunk of archive pages is written as two batches, the
    first half renamed while the second renders, and every file ends up as hashed."""
    import hashlib

    from feeder import output, publish, render

    s = make_site(max_entries=1, archive_size=1)
    for i in range(5):
        s.write(f"{i:03d}_a.txt", f"2025-12-0{i + 1}", f"Article number {i}. Body text.")
    s.build()
    monkeypatch.setattr(publish, "PIPELINE_ARCHIVES", 2)
    for page in s.out.glob("archive/*"):
        page.unlink()
    info = render.FeedInfo.from_config(s.config, archive_count=4)
    items = [(n, 4, s.store.page_entries(n)) for n in range(1, 5)]
    first = {s.out / p for n in (1, 2) for p in (render.archive_page_path(n),
                                                 render.archive_path("atom", n),
                                                 render.archive_path("rss", n))}
    renaming, waited = threading.Event(), []
    render_page = publish.write_archive_page

    def archive_page(info, out, n, *rest):  # noqa: ANN001, ANN002, ANN202
        if n == 4:
            waited.append(renaming.wait(10))
        return render_page(info, out, n, *rest)

    def before_rename(path: Path) -> None:
        if path in first:
            renaming.set()

    monkeypatch.setattr(publish, "write_archive_page", archive_page)
    monkeypatch.setattr(output, "before_rename", before_rename)
    written, hashes, _notes = publish.write_archive_pages(info, s.out, iter(items), len(items))
    assert waited == [True], "the first half was renamed only after the second rendered"
    assert len(written) == len(hashes) == 12
    for path, digest in hashes:
        assert hashlib.sha256((s.out / path).read_bytes()).hexdigest() == digest
    assert not list(s.out.glob("archive/.*.tmp"))


@pytest.mark.parametrize("half", [0, 1], ids=["first half", "second half"])
def test_a_chunk_whose_half_fails_to_go_in_place_says_so_and_leaves_no_temp_file(
        site: Site, monkeypatch, half: int) -> None:  # noqa: ANN001
    """A rename failing in either half of a chunk of pages raises OutputError naming the
    page, once the other half is done with, and leaves no temp file behind."""
    from feeder import output, publish, render
    from feeder.errors import OutputError

    items, info = _chunk_of_pages(site)
    monkeypatch.setattr(publish, "PIPELINE_PAGES", 3)
    doomed = site.out / render.entry_path(items[3 * half + 1][0])

    def before_rename(path: Path) -> None:
        if path == doomed:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(output, "before_rename", before_rename)
    with pytest.raises(OutputError, match=doomed.name):
        publish.write_entry_pages(info, site.out, items)
    assert not list(site.out.glob("entries/.*.tmp"))


def test_a_big_pass_records_its_pages_hashes_as_they_are_written(make_site, monkeypatch) -> None:
    """A pass that writes many pages records their hashes in the store every RECORD_EVERY
    (not all held to its end: ~30 MB at 100,000 seeds): a pass that fails in its archive
    pages has the hashes of the entry pages it wrote, and one that ends records the same
    rows as with one record at the end."""
    from feeder import publish

    whole, cut = make_site(), make_site()
    for s in (whole, cut):
        for i in range(60):
            s.write(f"{i:03d}_h.txt", f"2025-05-{i % 28 + 1:02d}", f"Article {i}. Body text.")
    whole.build()
    monkeypatch.setattr(publish, "RECORD_EVERY", 7, raising=False)
    monkeypatch.setattr(publish, "PAGE_CHUNK", 5)

    def failing(*args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(publish, "write_archive_pages", failing)
    with pytest.raises(OSError):
        cut.build()
    recorded = cut.store.output_hashes("entries/")
    assert len(recorded) >= 60 - 7
    monkeypatch.undo()
    monkeypatch.setattr(publish, "RECORD_EVERY", 7, raising=False)
    cut.build()
    rows = "SELECT path, sha256, time FROM outputs ORDER BY path"
    assert (cut.store.db.execute(rows).fetchall()
            == whole.store.db.execute(rows).fetchall())
