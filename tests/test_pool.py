"""The process pool (reading seeds, writing entry and archive pages) changes no output byte."""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder import folder, pool, sync
from feeder.builder import BuildCancelled
from feeder.errors import WorkerError
from feeder.pool import POOL_THRESHOLD, Pool

from .conftest import Site


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def fill(site: Site) -> None:
    for n in range(40):
        site.write(f"{n:03d}_s.txt", f"2025-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
                   f"Seed number {n}. It has some words in it.\n\nA heading\n\nMore text here.")
    site.write("900_future.txt", "2026-12-01", "Not yet. Scheduled.")
    site.write("901_bad.txt", "1850-01-01", "Too old. A typo.")
    (site.seeds / "902_empty.txt").write_bytes(b"")


@pytest.mark.parametrize("force", [False, True])
def test_pool_and_serial_builds_write_the_same_bytes(make_site, monkeypatch,  # noqa: ANN001
                                                     force: bool) -> None:
    sites = []
    for threshold in (10**9, 1):  # serial, then everything through the pool
        monkeypatch.setattr(pool, "POOL_THRESHOLD", threshold)
        site = make_site(max_entries=5, archive_size=4)
        fill(site)
        report = site.build(force=force)
        sites.append((site, report))
    (serial, r1), (pooled, r2) = sites
    assert r2.entries == r1.entries == 40
    assert sorted(r2.written) == sorted(r1.written)
    assert sorted(r2.rejected) == sorted(r1.rejected)
    assert tree(pooled.out) == tree(serial.out)
    assert "archive/atom-9.xml" in r2.written


@pytest.mark.parametrize("force", [False, True])
def test_workers_read_the_entries_from_the_state_file_or_are_sent_them(
        make_site, monkeypatch, force: bool) -> None:  # noqa: ANN001
    """Through the pool, the workers read the entries of the pages (and the rows of the
    sitemap chunks) they write from the state file themselves; when the file is no longer
    at its path (deleted or moved under a running writer) they are sent the entries, and
    the chunks are made in the parent, as before. The same bytes either way."""
    from feeder import publish
    from feeder import site as site_mod

    monkeypatch.setattr(pool, "POOL_THRESHOLD", 1)
    monkeypatch.setattr(publish, "STREAM_FROM", 1)
    monkeypatch.setattr(site_mod, "CHUNK_URLS", 10)  # sitemap chunks of 2 archive pages
    sources: list[tuple[str, int, int] | None] = []
    real = publish.Publisher._source

    def spying(self, weight: int) -> tuple[str, int, int] | None:  # noqa: ANN001
        sources.append(real(self, weight))
        return sources[-1]

    monkeypatch.setattr(publish.Publisher, "_source", spying)
    sites = [make_site(max_entries=5, archive_size=4) for _ in range(2)]
    for site in sites:
        fill(site)
    sites[0].build(force=force)
    assert sources and all(s is not None and s[0] == os.path.abspath(sites[0].config.state)
                           for s in sources)
    sources.clear()
    sites[1].config.state.rename(sites[1].root / "moved.sqlite3")  # the store keeps its file
    sites[1].build(force=force)
    assert sources and all(s is None for s in sources)
    assert tree(sites[0].out) == tree(sites[1].out)
    assert (sites[0].out / "archive" / "atom-9.xml").exists()
    assert (sites[0].out / "sitemap-5.xml").exists()


def test_full_build_rewrites_missing_pages_through_the_pool(make_site,  # noqa: ANN001
                                                           monkeypatch) -> None:  # noqa: ANN001
    site = make_site(max_entries=5, archive_size=4)
    fill(site)
    site.build()
    before = tree(site.out)
    monkeypatch.setattr(pool, "POOL_THRESHOLD", 1)
    for name in sorted(os.listdir(site.out / "entries"))[:7]:
        (site.out / "entries" / name).unlink()
    (site.out / "archive" / "rss-2.xml").unlink()
    report = site.build()
    assert len([p for p in report.written if p.startswith("entries/")]) == 7
    assert "archive/rss-2.xml" in report.written
    assert tree(site.out) == before
    assert site.build().written == []


def test_entry_and_archive_pages_have_no_gzip_sibling(site: Site) -> None:
    fill(site)
    site.build()
    assert (site.out / "atom.xml.gz").exists()
    assert not list(site.out.glob("entries/*.gz"))
    assert not list(site.out.glob("archive/*.gz"))


@pytest.mark.parametrize("threshold", [10**9, 1])
def test_a_refused_twin_never_leaves_its_page_over_the_owners(make_site, monkeypatch,  # noqa: ANN001
                                                              threshold: int) -> None:
    """New seeds get their entry page as they are read; a twin (same stem, so same id and
    page) written after its owner must not leave its text in the owner's page."""
    monkeypatch.setattr(pool, "POOL_THRESHOLD", threshold)
    site = make_site(extensions=[".txt", ".text"])
    for n in range(30):
        site.write(f"{n:03d}_t.txt", "2025-01-01", f"Owner {n}. Body.")
        site.write(f"{n:03d}_t.text", "2025-01-01", f"Twin {n}. Body.")
    report = site.build()
    assert len(report.rejected) == 30 and report.entries == 30
    for name, _reason in report.rejected:
        stem = name.rsplit(".", 1)[0]
        (owner,) = {f"{stem}.txt", f"{stem}.text"} - {name}
        page = site.read(f"entries/{stem}.html")
        stored = site.store.entry_by_name(owner)
        assert stored is not None
        assert stored.title.encode() in page, name
    assert site.build().written == []


def test_a_new_twin_never_touches_the_published_owners_page(make_site) -> None:  # noqa: ANN001
    """Not even for a moment: readers would see the twin's text at the owner's URL."""
    site = make_site(extensions=[".txt", ".text"])
    site.write("post.txt", "2025-01-01", "Owner text. Body.")
    site.build()
    page = site.out / "entries" / "post.html"
    before = page.stat()
    site.write("post.text", "2025-01-01", "Twin text. Body.")
    report = site.build({"post.text"})
    assert [name for name, _ in report.rejected] == ["post.text"]
    after = page.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert b"Owner text" in page.read_bytes()


def test_pages_of_entries_a_stopped_pass_never_stored_are_removed(make_site,  # noqa: ANN001
                                                                  monkeypatch) -> None:  # noqa: ANN001
    """Entry pages are written in publishing, after the store has the entries (they link
    their neighbours): a pass stopped while reading leaves no page. Pages that an older
    feeder's workers wrote before such a stop, of seeds that then went away, are removed by
    the next full pass."""
    site = make_site()
    for n in range(10):
        site.write(f"n{n:02d}.txt", "2025-02-01", f"Article {n}. Body.")
    monkeypatch.setattr(sync, "BATCH", 1)
    monkeypatch.setattr(sync, "READ_CHUNK", 100)
    stopping = site.builder()
    stopping.cancel.set()  # SIGTERM: stop after the first batch
    with pytest.raises(BuildCancelled):
        stopping.build()
    assert site.store.total() == 1
    assert not list(site.out.glob("entries/*"))
    (site.out / "entries").mkdir()
    for n in range(10):  # as an older feeder's stopped pass left them
        (site.out / "entries" / f"n{n:02d}.html").write_bytes(b"<!doctype html>old")
    for n in range(1, 10, 2):
        (site.seeds / f"n{n:02d}.txt").unlink()
    report = site.build()
    assert sorted(os.listdir(site.out / "entries")) == [f"n{n:02d}.html" for n in range(0, 10, 2)]
    assert sorted(report.deleted_outputs) == [f"entries/n{n:02d}.html" for n in range(1, 10, 2)]
    assert site.build().deleted_outputs == []


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="no process pool on one core")
def test_the_fork_server_stops_with_the_pool(make_site, monkeypatch) -> None:  # noqa: ANN001
    """It holds the preloaded libraries and language model: a daemon must not keep it."""
    from multiprocessing import forkserver

    monkeypatch.setattr(pool, "POOL_THRESHOLD", 1)
    site = make_site()
    fill(site)
    started = []
    real_start = pool.Pool._start

    def start(self):  # noqa: ANN001, ANN202
        executor = real_start(self)
        started.append(executor)
        return executor

    monkeypatch.setattr(pool.Pool, "_start", start)
    site.build()
    assert started and started[0] is not None
    assert forkserver._forkserver._forkserver_pid is None


def test_a_twin_of_a_rechecked_rejected_seed_never_writes_its_page(make_site,  # noqa: ANN001
                                                                    monkeypatch) -> None:  # noqa: ANN001
    """``a.md`` was refused (bad date) and is fixed in the same pass as a new ``a.txt``
    appears: the store refuses ``a.txt``, and its text is never written to the page
    ``a.md`` owns, not even for a moment."""
    from feeder import output

    site = make_site(extensions=[".txt", ".md"])
    site.write("a.md", "1850-01-01", "First text. Body.")
    site.build()
    site.write("a.md", "2025-01-01", "First text. Body.")
    site.write("a.txt", "2025-01-01", "Second text. Body.")
    writes: list[bytes] = []
    real_write = output.Batch.write

    def spy(self: output.Batch, path: Path, data: bytes, **kw: object) -> bool:
        if path.name == "a.html":
            writes.append(data)
        return real_write(self, path, data, **kw)

    real_scan = folder.Folder.scan

    def md_first(self: folder.Folder) -> dict:
        found = real_scan(self)
        return {"a.md": found.pop("a.md"), **found}  # a.md becomes the owner

    monkeypatch.setattr(output.Batch, "write", spy)  # every page goes through a batch
    monkeypatch.setattr(folder.Folder, "scan", md_first)
    report = site.build()
    assert [(name, "same entry id" in reason) for name, reason in report.rejected] == [
        ("a.txt", True)]
    assert writes and not any(b"Second text" in data for data in writes)


def test_two_stems_with_one_page_name_refuse_the_second(make_site) -> None:  # noqa: ANN001
    """A non-ASCII stem's page is named ``<ascii>-<hash>``; a seed named like that page
    must be refused, not crash every pass on the unique page name."""
    from feeder.normalizer import slug_for

    site = make_site()
    site.write("café.txt", "2025-01-01", "Accented. Body.")
    site.build()
    twin = f"{slug_for('café')}.txt"
    site.write(twin, "2025-01-02", "Plain. Body.")
    report = site.build()
    assert report.rejected == [(twin, f"same page entries/{slug_for('café')}.html as café.txt: "
                                      "rename one of them")]
    assert b"Accented" in site.read(f"entries/{slug_for('café')}.html")
    assert site.build().rejected == []  # said once; the pass goes on


def test_a_stray_folder_in_entries_does_not_stop_publishing(site: Site, caplog) -> None:  # noqa: ANN001
    site.write("001_a.txt", "2025-01-01", "First. Body.")
    site.build()
    (site.out / "entries" / "stray.html").mkdir()
    (site.out / "entries" / "gone.html.gz").write_bytes(b"old")
    site.write("002_b.txt", "2025-01-02", "Second. Body.")
    report = site.build()
    assert "entries/002_b.html" in report.written
    assert b"Second" in site.read("atom.xml")
    assert report.deleted_outputs == ["entries/gone.html.gz"]
    assert "cannot remove stray entries/stray.html" in caplog.text


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_state_file_gone_from_its_path_as_the_workers_start_leaves_the_pages_right(
        make_site, monkeypatch, caplog, how: str) -> None:  # noqa: ANN001
    """The state file deleted (as under a running daemon, which publishes on in the file it
    opened) or replaced by another one after the pass saw it at its path, but before the
    workers open it: the workers must not read another file, nor fail the pass; the pages
    are those of the store the pass writes with. (On 6c12512 a deleted file failed the pass,
    "unable to open database file", and a replaced one had its entries written.)"""
    import shutil

    from feeder import publish
    from feeder import site as site_mod

    monkeypatch.setattr(pool, "POOL_THRESHOLD", 1)
    monkeypatch.setattr(publish, "STREAM_FROM", 1)
    monkeypatch.setattr(site_mod, "CHUNK_URLS", 10)
    sites = [make_site(max_entries=5, archive_size=4) for _ in range(2)]
    for site in sites:
        fill(site)
        site.build()
    old = sites[1].root / "old.sqlite3"
    sites[1].store.db.execute("VACUUM INTO ?", (str(old),))  # the entries before the edits
    for site in sites:
        for n in range(40):
            site.write(f"{n:03d}_s.txt", f"2025-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
                       f"Seed number {n}, edited. Other words now.\n\nA heading\n\nMore.")
    sites[0].build(force=True)
    real, moved = publish.Publisher._source, []

    def then_gone(self, weight: int):  # noqa: ANN001, ANN202 - the file goes just after
        source = real(self, weight)
        if source is not None and not moved:
            moved.append(source)
            state = sites[1].config.state
            if how == "deleted":
                state.unlink()
            else:
                shutil.copy(old, state.with_name("other"))
                state.with_name("other").replace(state)
        return source

    monkeypatch.setattr(publish.Publisher, "_source", then_gone)
    with caplog.at_level(logging.INFO, logger="feeder"):
        sites[1].build(force=True)
    assert moved
    assert tree(sites[0].out) == tree(sites[1].out)
    assert "the workers cannot read the state file" in caplog.text  # said once a render
    assert caplog.text.count("the workers cannot read the state file") <= 3


@pytest.mark.parametrize("threshold", [10**9, 1])
def test_a_stray_gz_beside_a_page_written_for_the_first_time_is_removed(
        make_site, monkeypatch, threshold: int) -> None:  # noqa: ANN001
    """A full pass lists entries/ and does not look for the pages, nor the .gz siblings,
    that its listing does not hold. A .gz that IS in it, beside a page that is not (left by
    an older version, or put there), must still go when the page is written, serially or in
    the workers: nginx's gzip_static would serve it for the page."""
    from feeder import publish

    monkeypatch.setattr(pool, "POOL_THRESHOLD", threshold)
    monkeypatch.setattr(publish, "STREAM_FROM", 1)  # the workers read the entries themselves
    site = make_site(max_entries=5, archive_size=4)
    fill(site)
    entries = site.out / "entries"
    entries.mkdir(parents=True)
    (entries / "003_s.html.gz").write_bytes(b"stale")  # no page yet
    (entries / "004_s.html").write_bytes(b"old page")
    (entries / "004_s.html.gz").write_bytes(b"stale")
    report = site.build()
    assert {"entries/003_s.html", "entries/004_s.html"} <= set(report.written)
    assert sorted(p.name for p in entries.glob("*.gz")) == []
    (entries / "005_s.html").unlink()  # a later full pass: a page gone, a .gz in its place
    (entries / "005_s.html.gz").write_bytes(b"stale")
    report = site.build()
    assert [p for p in report.written if p.startswith("entries/")] == ["entries/005_s.html"]
    assert sorted(p.name for p in entries.glob("*.gz")) == []
    assert b"Seed number 5." in site.read("entries/005_s.html")


@pytest.mark.parametrize("threshold", [10**9, 1])
def test_a_forced_full_pass_leaves_the_pages_in_its_listing_alone(
        make_site, monkeypatch, threshold: int) -> None:  # noqa: ANN001
    """The pages a full pass found in entries/ are compared before they are written: a forced
    pass renders every page again and replaces none whose bytes are the same."""
    from feeder import publish

    monkeypatch.setattr(pool, "POOL_THRESHOLD", threshold)
    monkeypatch.setattr(publish, "STREAM_FROM", 1)
    site = make_site(max_entries=5, archive_size=4)
    fill(site)
    site.build()
    inodes = {p.name: p.stat().st_ino for p in (site.out / "entries").iterdir()}
    report = site.build(force=True)
    assert [p for p in report.written if p.startswith("entries/")] == []
    assert {p.name: p.stat().st_ino for p in (site.out / "entries").iterdir()} == inodes


def test_pool_map_takes_jobs_ahead_within_its_bound() -> None:
    """The workers get ``ahead`` jobs each (plus two) before the first result is taken, so
    they go on while the caller is busy; never more, so the results held stay bounded."""
    taken: list[int] = []

    def jobs() -> Iterator[int]:
        for n in range(200):
            taken.append(n)
            yield n

    with Pool() as workers:
        if not workers.in_workers(POOL_THRESHOLD):
            pytest.skip("one core: no workers")
        for ahead in (2, 16):
            taken.clear()
            results = workers.map(abs, jobs(), weight=POOL_THRESHOLD, ahead=ahead)
            assert next(results) == 0
            assert len(taken) == ahead * workers.workers + 2
            assert list(results) == list(range(1, 200))


def test_a_worker_that_dies_ends_the_pass_with_one_clear_error() -> None:
    """A worker killed mid-job (here it exits at once: ``os._exit``) is a WorkerError, which
    ``feeder build`` prints as one line, not multiprocessing's BrokenProcessPool traceback
    (an operator's kill -9 of a worker once gave 44 lines)."""
    with Pool() as workers:
        if not workers.in_workers(POOL_THRESHOLD):
            pytest.skip("one core: no worker processes")
        with pytest.raises(WorkerError, match="worker process ended abruptly"):
            list(workers.map(os._exit, [9, 9], weight=POOL_THRESHOLD))


def stale_siblings(entries) -> list[str]:  # noqa: ANN001
    """The .gz files in entries/ that are not the gzip of the page beside them."""
    return sorted(gz.name for gz in entries.glob("*.gz")
                  if not gz.with_suffix("").exists()
                  or gzip.decompress(gz.read_bytes()) != gz.with_suffix("").read_bytes())


@pytest.mark.parametrize("threshold", [10**9, 1])
@pytest.mark.parametrize("force", [False, True])
def test_an_old_output_restored_during_a_pass_leaves_no_stale_gz(
        make_site, monkeypatch, threshold: int, force: bool) -> None:  # noqa: ANN001
    """An operator restores an old backup of the output (from a feeder that wrote a .gz
    beside each entry page) while a first build runs, after the build looked at entries/.
    The build writes the pages; no .gz that is not its page's may stay beside one, at the
    latest after the next full pass (forced or not): nginx's gzip_static would serve it."""
    from feeder import publish

    monkeypatch.setattr(pool, "POOL_THRESHOLD", threshold)
    monkeypatch.setattr(publish, "STREAM_FROM", 1)
    site = make_site(max_entries=5, archive_size=4)
    fill(site)
    entries = site.out / "entries"
    real = publish.Publisher._check_entry_folder

    def look_then_restore(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        found = real(self, *args, **kwargs)
        entries.mkdir(parents=True, exist_ok=True)
        for n in range(40):  # the backup: an older page and its .gz
            old = f"old page {n}".encode()
            (entries / f"{n:03d}_s.html").write_bytes(old)
            (entries / f"{n:03d}_s.html.gz").write_bytes(gzip.compress(old))
        monkeypatch.setattr(publish.Publisher, "_check_entry_folder", real)  # once
        return found

    monkeypatch.setattr(publish.Publisher, "_check_entry_folder", look_then_restore)
    site.build()
    site.build(force=force)  # the next full pass
    assert stale_siblings(entries) == []
    assert b"Seed number 5." in site.read("entries/005_s.html")


@pytest.mark.parametrize("threshold", [10**9, 1])
@pytest.mark.parametrize("force", [False, True])
def test_a_gz_beside_a_page_as_written_goes_at_the_next_full_pass(
        make_site, monkeypatch, threshold: int, force: bool) -> None:  # noqa: ANN001
    """Entry pages have no .gz sibling; one beside a page that is as written (left by an
    older feeder, restored with a backup) goes at the next full pass, even though the page
    itself is not written again."""
    from feeder import publish

    monkeypatch.setattr(pool, "POOL_THRESHOLD", threshold)
    monkeypatch.setattr(publish, "STREAM_FROM", 1)
    site = make_site(max_entries=5, archive_size=4)
    fill(site)
    site.build()
    entries = site.out / "entries"
    (entries / "005_s.html.gz").write_bytes(gzip.compress(b"an older page"))
    page = site.read("entries/005_s.html")
    site.build(force=force)
    assert sorted(p.name for p in entries.glob("*.gz")) == []
    assert site.read("entries/005_s.html") == page


def _model_mapped() -> bool:
    """Does this process map the unpacked language model (``feeder.language``)?"""
    with open("/proc/self/maps") as fh:
        return "/langid-" in fh.read()


def _reading(text: str) -> tuple[int, bool]:
    """A worker's reading job, as far as the language model goes."""
    from feeder import language

    language.identifier(()).classify(text)
    return os.getpid(), _model_mapped()


def _publishing(job: tuple) -> tuple[int, bool]:
    """A worker's publishing job (an archive job with no pages)."""
    from feeder import publish

    publish._render_job(job)
    return os.getpid(), _model_mapped()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc")
def test_workers_let_go_of_the_language_model_once_they_publish(site: Site) -> None:
    """A cold build's peak memory is while its pages are written: the workers then hold
    nothing of the model that their reading mapped (100,000 seeds: ~25 MB each)."""
    from feeder import render

    info = render.FeedInfo.from_config(site.config, archive_count=0)
    with Pool() as workers:
        if not workers.in_workers(POOL_THRESHOLD):
            pytest.skip("one core: no workers")
        read = list(workers.map(_reading, ["Some words of English text, enough of them."] * 40,
                                weight=POOL_THRESHOLD))
        if not all(mapped for _pid, mapped in read):
            pytest.skip("no cache folder: the model is loaded, not mapped")
        jobs = [("archive", info, site.out, [])] * 40
        wrote = list(workers.map(_publishing, jobs, weight=POOL_THRESHOLD))
    assert {pid for pid, _m in wrote} <= {pid for pid, _m in read}  # the same workers
    assert not any(mapped for _pid, mapped in wrote)
