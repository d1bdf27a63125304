"""sync.py in-process: the mass-deletion guard, and edits that keep a seed's size and mtime."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from ._daemon import seed_bytes
from .conftest import Site

SEEDS = 12


def fill(site: Site, count: int = SEEDS) -> list[str]:
    names = [f"{i:03d}_a.txt" for i in range(count)]
    for i, name in enumerate(names):
        date = f"2025-{i // 28 + 1:02d}-{i % 28 + 1:02d}"
        site.write(name, date, f"Article {i}. Body text here.")
    site.build()
    return names


def outputs(site: Site) -> dict[str, bytes]:
    return {str(p.relative_to(site.out)): p.read_bytes()
            for p in site.out.rglob("*") if p.is_file()}


def empty(folder: Path, into: Path) -> None:
    """Move every seed away at once (``mv seeds/* elsewhere/``)."""
    into.mkdir(exist_ok=True)
    for path in folder.iterdir():
        os.rename(path, into / path.name)


def held(site: Site) -> object:
    return site.store.get_meta("held_deletions", 0)


def test_an_emptied_folder_keeps_the_site_until_confirmed(site, tmp_path, caplog):
    fill(site)
    before = outputs(site)
    empty(site.seeds, tmp_path / "away")
    with caplog.at_level(logging.ERROR, logger="feeder"):
        report = site.build()
    assert report.removed == [] and report.written == [] and report.changed_feeds == []
    assert outputs(site) == before
    assert held(site) == SEEDS
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"{SEEDS} of {SEEDS} entries" in line and "--allow-mass-delete" in line
    assert "max_delete_fraction" in line

    confirmed = site.builder(allow_mass_delete=True).build()
    assert len(confirmed.removed) == SEEDS and confirmed.entries == 0
    assert held(site) == 0
    assert not list((site.out / "entries").glob("*.html"))


def test_seeds_that_come_back_change_nothing(site, tmp_path):
    fill(site)
    before = outputs(site)
    stamps = {p: p.stat().st_mtime_ns for p in site.out.rglob("*")}
    empty(site.seeds, tmp_path / "away")
    site.build()
    assert held(site) == SEEDS
    empty(tmp_path / "away", site.seeds)  # the volume is mounted again
    report = site.build()
    assert report.seed_changes == 0 and report.written == [] and report.changed_feeds == []
    assert outputs(site) == before
    assert {p: p.stat().st_mtime_ns for p in site.out.rglob("*")} == stamps
    assert held(site) == 0


def test_a_named_pass_of_the_first_deletions_is_held_too(site, tmp_path):
    """The watcher reports a burst of deletions in several passes, the first of them at once
    with one name: the whole folder decides, so not even the first entry goes."""
    names = fill(site)
    empty(site.seeds, tmp_path / "away")
    report = site.build({names[0]})
    assert report.removed == [] and held(site) == SEEDS
    report = site.build(set(names[1:]))
    assert report.removed == [] and site.store.total() == SEEDS


def test_a_symlink_swapped_to_an_empty_release_is_held(site, tmp_path):
    fill(site)
    release1, release2 = tmp_path / "release1", tmp_path / "release2"
    os.rename(site.seeds, release1)
    release2.mkdir()
    site.seeds.symlink_to(release1)
    assert site.build().seed_changes == 0
    new = tmp_path / "seeds.new"
    new.symlink_to(release2)
    os.rename(new, site.seeds)
    assert site.build().removed == [] and held(site) == SEEDS


def test_an_unmounted_seeds_folder_is_held(site):
    """The builder finds nothing at all: every seed is gone at once."""
    fill(site)
    shutil.rmtree(site.seeds)
    site.seeds.mkdir()  # the bare mount point
    assert site.build().removed == [] and held(site) == SEEDS


@pytest.mark.parametrize(("count", "remove", "fraction", "removed"), [
    (12, 6, 0.5, 6),  # half is not more than half
    (24, 13, 0.5, 0),  # more than half
    (12, 9, 1.0, 9),  # the operator raised the setting: never held
    (9, 9, 0.5, 9),  # fewer than 10: a small site may lose all its few entries
    (40, 10, 0.2, 0),  # the setting is a fraction of the entries
], ids=["half", "more-than-half", "raised", "few", "fraction"])
def test_what_is_a_mass_deletion(make_site, count, remove, fraction, removed):
    site = make_site(max_delete_fraction=fraction)
    names = fill(site, count)
    for name in names[:remove]:
        (site.seeds / name).unlink()
    assert len(site.build().removed) == removed
    assert site.store.total() == count - removed


def test_new_seeds_are_published_while_deletions_are_held(site, tmp_path):
    fill(site)
    empty(site.seeds, tmp_path / "away")
    site.write("new.txt", "2025-12-20", "A new one. Published anyway.")
    report = site.build()
    assert report.added == ["new.txt"] and report.removed == []
    assert site.store.total() == SEEDS + 1
    assert b"A new one" in site.read("atom.xml")


def test_an_edit_that_keeps_size_and_mtime_is_found_by_a_named_pass(site):
    path = site.write("a.txt", "2025-12-01", "First text. It is here.")
    site.build()
    st = path.stat()
    path.write_bytes(path.read_bytes().replace(b"First", b"Fixed"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # within the mtime granularity
    assert path.stat().st_size == st.st_size
    report = site.build({"a.txt"})
    assert report.changed == ["a.txt"]
    assert b"Fixed text" in site.read("atom.xml")
    again = site.build({"a.txt"})  # read again, same bytes: nothing to do
    assert again.changed == [] and again.unchanged == 1 and again.written == []


def test_a_big_pass_records_in_bulk_as_a_small_one_would(make_site,  # noqa: ANN001
                                                          monkeypatch) -> None:  # noqa: ANN001
    """A pass of at least 2 * BULK_BATCH seeds is recorded in transactions of BULK_BATCH,
    with a bigger SQLite cache: the store and the outputs are those of small batches, and
    the cache is back to its size after."""
    from feeder import sync

    sites = [make_site(), make_site()]
    for s in sites:
        for i in range(30):
            s.write(f"{i:03d}_b.txt", f"2025-03-{i % 28 + 1:02d}", f"Article {i}. Body text.")
        s.write("000_B.txt", "2025-03-01", "Same date as 000_b. Body.")  # order by name
        s.write("030_b.txt", "1800-01-01", "Too old. Body.")
    commits = []
    real = sites[1].store.transaction

    def counted():  # noqa: ANN202
        commits.append(1)
        return real()

    sites[0].build()
    monkeypatch.setattr(sync, "BULK_BATCH", 5)
    monkeypatch.setattr(sites[1].store, "transaction", counted)
    cache = sites[1].store.db.execute("PRAGMA cache_size").fetchone()[0]
    report = sites[1].build()
    assert len(report.added) == 31 and len(report.rejected) == 1
    assert sites[1].store.db.execute("PRAGMA cache_size").fetchone()[0] == cache
    assert 7 <= len(commits) < 32  # 32 seeds in batches of 5, plus publishing's own
    assert outputs(sites[0]) == outputs(sites[1])
    rows = ("SELECT name, e.id, slug, page, pub_ts FROM entries e JOIN places p ON p.id = e.id"
            " ORDER BY name")
    assert (sites[0].store.db.execute(rows).fetchall()
            == sites[1].store.db.execute(rows).fetchall())


def test_a_seed_is_read_whole_through_short_reads_up_to_the_limit(tmp_path: Path) -> None:
    """read_seed reads with os.read: a read may return less than asked (a pipe here, a file
    that grew since its fstat); it reads on to the end, or to one byte past the limit."""
    import contextlib
    import threading

    from feeder.sync import _read_upto

    data = b" date 2025-01-02 Text. " * 5000  # 115,000 bytes, in pieces
    for limit, expected in ((1 << 20, data), (1000, data[:1000])):
        rd, wr = os.pipe()

        def feed(wr: int = wr) -> None:
            # the reader stops at the limit and closes its end
            with os.fdopen(wr, "wb", buffering=0) as out, contextlib.suppress(BrokenPipeError):
                for i in range(0, len(data), 7000):
                    out.write(data[i:i + 7000])

        writer = threading.Thread(target=feed)
        writer.start()
        try:
            assert _read_upto(rd, 10, limit) == expected
        finally:
            os.close(rd)
            writer.join(timeout=30)


def test_reading_a_folder_for_a_seed_says_so(tmp_path: Path) -> None:
    from feeder.normalizer import Rules
    from feeder.sync import read_seed

    (tmp_path / "x.txt").mkdir()
    result = read_seed(tmp_path / "x.txt", "x.txt", 1 << 20, Rules("example.org", "2025"))
    assert result is not None and result.reason == "cannot read: Is a directory"


DEFERRED = {"entries_order", "entries_language", "entries_page_new", "entries_placed",
            "entries_language_new"}


def schema(db) -> list[tuple]:  # noqa: ANN001
    """The store's tables, indexes and triggers, as a set (re-made ones come later in
    sqlite_master)."""
    return sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))


def test_a_first_big_pass_loads_without_the_deferred_indexes_and_ends_alike(
        make_site, monkeypatch) -> None:  # noqa: ANN001
    """A first build of at least 2 * BULK_BATCH seeds records its entries without the
    secondary indexes of the entries and the stale-page trigger (Store.bulk_load), and ends
    with the schema and the rows of a pass that had them all along."""
    from feeder import sync

    sites = [make_site(), make_site()]
    for s in sites:
        for i in range(30):
            s.write(f"{i:03d}_b.txt", f"2025-03-{i % 28 + 1:02d}", f"Article {i}. Body text.")
        s.write("001_B.txt", "2025-03-02", "Clashes with 001_b's page? No: its own. Body.")
        s.write("030_b.txt", "1800-01-01", "Too old. Body.")
        for path in s.seeds.iterdir():
            os.utime(path, ns=(1_700_000_000 * 10**9,) * 2)  # the same rows in both stores
    sites[0].build()
    monkeypatch.setattr(sync, "BULK_BATCH", 5)
    present: list[set[str]] = []
    record = sync.Sync._record

    def spying(self, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        present.append({n for (n,) in self.store.db.execute("SELECT name FROM sqlite_master")})
        return record(self, *args, **kw)

    monkeypatch.setattr(sync.Sync, "_record", spying)
    sites[1].build()
    assert len(present) == 32 and all(not (DEFERRED & names) for names in present)
    dbs = [s.store.db for s in sites]
    assert schema(dbs[0]) == schema(dbs[1])
    assert {row[1] for row in schema(dbs[1])} >= DEFERRED
    assert sorted(dbs[0].iterdump()) == sorted(dbs[1].iterdump())
    assert sites[1].store.get_meta("bulk_load") is None


@pytest.mark.slow
def test_a_bulk_load_cut_short_by_a_crash_is_finished_at_the_next_opening(make_site) -> None:
    """A first build that dies (os._exit, as kill -9 would) in the middle of its bulk load,
    its deferred indexes and trigger dropped: the next opening of the store makes them again
    and lists the pages of the entries recorded so far as stale, and the next build ends with
    the outputs and rows of an uninterrupted one."""
    import subprocess
    import sys

    from feeder.store import Store

    from ._daemon import feeder_env

    done, cut = make_site(), make_site()
    for s in (done, cut):
        for i in range(40):
            s.write(f"{i:03d}_c.txt", f"2025-04-{i % 28 + 1:02d}", f"Article {i}. Body text.")
    for path in cut.seeds.iterdir():  # the same rows in both stores
        os.utime(path, ns=(1_700_000_000 * 10**9,) * 2)
        os.utime(done.seeds / path.name, ns=(1_700_000_000 * 10**9,) * 2)
    done.build()
    cut.store.close()
    script = (
        "import os, sys\n"
        "from feeder import sync\n"
        "from feeder.cli import main\n"
        "sync.BULK_BATCH = 5\n"
        "calls, record = [], sync.Sync._record\n"
        "def dying(self, *a, **k):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 13:\n"
        "        os._exit(9)\n"
        "    return record(self, *a, **k)\n"
        "sync.Sync._record = dying\n"
        "main(sys.argv[1:])\n")
    args = ["build", "--seeds", str(cut.seeds), "--out", str(cut.out), "--state",
            str(cut.config.state), "--base-url", cut.config.base_url]
    proc = subprocess.run([sys.executable, "-c", script, *args], env=feeder_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 9, proc.stderr
    import sqlite3

    raw = sqlite3.connect(cut.config.state)
    try:  # as the crash left it: two batches in, the deferred objects gone
        assert raw.execute("SELECT count(*) FROM entries").fetchone()[0] == 10
        assert not DEFERRED & {n for (n,) in raw.execute("SELECT name FROM sqlite_master")}
        assert raw.execute("SELECT 1 FROM meta WHERE key = 'bulk_load'").fetchone()
    finally:
        raw.close()
    cut.store = Store.open_locked(cut.config.state)
    db = cut.store.db
    assert schema(db) == schema(done.store.db)
    assert cut.store.get_meta("bulk_load") is None
    names = [n for (n,) in db.execute("SELECT name FROM entries ORDER BY rowid")]
    assert [n for (n,) in db.execute("SELECT name FROM stale_pages ORDER BY rowid")] == names
    assert cut.store.total() == 10
    cut.build()
    assert outputs(cut) == outputs(done)
    rows = ("SELECT name, e.id, slug, page, pub_ts FROM entries e JOIN places p ON p.id = e.id"
            " ORDER BY name")
    assert db.execute(rows).fetchall() == done.store.db.execute(rows).fetchall()


def test_a_big_pass_hands_the_heap_back_after_its_read(make_site, monkeypatch) -> None:  # noqa: ANN001
    """After a big read (its batches and SQLite cache freed), the parent hands its free heap
    back to the system once, before publishing; a small pass does not bother."""
    from feeder import sync

    big, small = make_site(), make_site()
    for i in range(12):
        big.write(f"{i:03d}_t.txt", f"2025-06-{i + 1:02d}", f"Article {i}. Body text.")
    small.write("000_t.txt", "2025-06-01", "Article. Body text.")
    calls: list[int] = []
    monkeypatch.setattr(sync, "BULK_BATCH", 5)
    monkeypatch.setattr(sync, "give_back_heap", lambda: calls.append(big.store.total()),
                        raising=False)
    big.build()
    assert calls == [12]
    small.build()
    assert calls == [12]


def test_a_fifo_put_in_place_of_a_seed_is_rejected_without_waiting(tmp_path: Path) -> None:
    """A seed swapped for a FIFO after the folder's scan (which saw a regular file) is
    opened by read_seed: the open must not wait for a writer that never comes (the pass,
    and with it the daemon, would hang); the seed is rejected as not a regular file."""
    import threading

    from feeder.normalizer import Rules
    from feeder.sync import read_seed

    fifo = tmp_path / "x.txt"
    os.mkfifo(fifo)
    results = []
    reader = threading.Thread(target=lambda: results.append(
        read_seed(fifo, "x.txt", 1 << 20, Rules("example.org", "2025"), str(tmp_path))),
        daemon=True)
    reader.start()
    reader.join(timeout=20)
    stuck = reader.is_alive()
    if stuck:  # let the stuck open go, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=30)
    assert not stuck, "read_seed waited for a writer to the FIFO"
    assert results and results[0] is not None
    assert results[0].reason == "not a regular file"


def test_seeds_are_recorded_in_name_order_whatever_the_folder_order(make_site) -> None:  # noqa: ANN001
    """A pass records its seeds by name, not in the folder's (hash) order: the rows go into
    the store's name-keyed tables one after the other, and of two twins (one stem) the
    same one is always refused."""
    site = make_site(extensions=[".txt", ".text"])
    for i in range(40):
        site.write(f"{(i * 17) % 40:03d}_o.txt", f"2025-05-{i % 28 + 1:02d}", f"Article {i}. Body.")
    site.write("007_o.text", "2025-06-01", "A twin of 007_o.txt: the same stem. Body.")
    report = site.build()
    names = [n for (n,) in site.store.db.execute("SELECT name FROM seeds ORDER BY rowid")]
    assert names == sorted(names) and len(names) == 41
    assert report.added == sorted(report.added)
    assert report.rejected == [
        ("007_o.txt", "same entry id as 007_o.text (file stems must be unique)")]


def test_a_bulk_loads_entry_count_is_right_for_a_reader_after_each_batch(
        make_site, monkeypatch) -> None:  # noqa: ANN001
    """/healthz (the daemon's reader, beside its cold build's child) and `feeder check`
    (read-only, beside a build or after one killed) read the entry count from the state
    file while a bulk load runs: after each committed batch it must be the entries there,
    not 0 until the load ends (and the published count, less the scheduled ones, never
    below 0)."""
    import datetime as dt

    from feeder import sync
    from feeder.store import Store

    site = make_site()
    for i in range(22):
        site.write(f"{i:03d}_n.txt", f"2025-05-{i % 28 + 1:02d}", f"Article {i}. Body text.")
    site.write("022_n.txt", "2026-12-20", "Scheduled. Body text.")  # after the site's now
    monkeypatch.setattr(sync, "BULK_BATCH", 5)
    seen: list[tuple[int, int, int]] = []
    reader = Store(site.config.state, read_only=True)

    class Looking(threading.Event):
        def is_set(self) -> bool:  # the pass looks at it after each committed batch
            if reader.db.execute("SELECT 1 FROM meta WHERE key = 'bulk_load'").fetchone():
                n = reader.db.execute("SELECT count(*) FROM entries").fetchone()[0]
                seen.append((reader.total(), n, reader.count(site.now)))
            return super().is_set()

    builder = site.builder()
    builder.cancel = Looking()
    try:
        builder.build()
    finally:
        reader.close()
    assert len(seen) >= 4  # the load's batches
    assert [(total, n) for total, n, _ in seen] == [(n, n) for _, n, _ in seen]
    assert all(published >= 0 for *_, published in seen)
    assert site.store.total() == 23 and site.store.count(site.now) == 22
    assert dt.datetime(2026, 12, 20, tzinfo=dt.UTC) > site.now


def test_a_big_pass_sends_big_seeds_to_the_workers_in_small_chunks(
        make_site, monkeypatch) -> None:  # noqa: ANN001
    """A big pass sends its seeds to the workers in chunks of up to MAX_READ_CHUNK, whose
    results come back as one message each, several chunks in flight: a run of seeds near
    max_seed_bytes must not make a chunk of that many of them (128 seeds at the 4 MB limit:
    a message of ~0.5 GB, the tree's peak PSS 1.25 GB -> 1.58 GB with 4e7b3da). A chunk ends
    once it holds READ_CHUNK_BYTES of seeds; the results are the same."""
    from feeder import sync

    site = make_site(max_seed_bytes=200_000)
    big = "Long text. " * 9_000  # ~99 KB
    for i in range(40):
        site.write(f"{i:03d}_m.txt", f"2025-05-{i % 28 + 1:02d}",
                   f"Article {i}. " + (big if 10 <= i < 30 else "Body text."))
    monkeypatch.setattr(sync, "READ_CHUNK", 8)
    monkeypatch.setattr(sync, "MAX_READ_CHUNK", 8)
    monkeypatch.setattr(sync, "READ_CHUNK_BYTES", 250_000, raising=False)
    sent: list[int] = []
    read_chunk = sync._read_chunk

    def spying(job):  # noqa: ANN001, ANN202 - the pool's map runs it here (a small pass)
        sent.append(sum(os.stat(path).st_size for path, _name in job[1]))
        return read_chunk(job)

    monkeypatch.setattr(sync, "_read_chunk", spying)
    report = site.build()
    assert len(report.added) == 40
    assert b"Long text." in site.read("entries/015_m.html")
    assert max(sent) < 250_000 + 100_000  # the budget, and the seed that reached it
    assert len(sent) > 40 // 8


def _rows_by_table(db) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Every table's rows in rowid order (their primary key's, for a table without rowids)."""
    found = {}
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        try:
            found[table] = db.execute(f'SELECT rowid, * FROM "{table}" ORDER BY rowid').fetchall()
        except sqlite3.OperationalError:  # WITHOUT ROWID
            found[table] = db.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
    return found


def test_a_first_build_records_its_seeds_as_one_at_a_time_would(make_site,  # noqa: ANN001
                                                                monkeypatch) -> None:  # noqa: ANN001
    """A first bulk load into an empty store records through a FreshLoad: what it would look
    up (minted ids, the owners of ids and pages) is kept in memory, and the rows go in with
    one executemany per table and batch. The store ends with the very rows (rowids
    included), the same rejections and the same outputs as recording seed by seed, clashes
    included: a stem spelled in NFC and NFD (one id), a page name taken by another stem's
    slug, dates out of range, a seed without a date, a Latin-1 seed. And it does: no
    per-seed lookup of a page's owner reaches SQLite."""
    import unicodedata

    from feeder import normalizer, store, sync

    cafe = unicodedata.normalize("NFC", "café")
    seeds = {f"{i:03d}_c.txt": seed_bytes(f"2025-04-{i % 28 + 1:02d}", f"Article {i}. Body.")
             for i in range(24)}
    seeds |= {
        f"{cafe}.txt": seed_bytes("2025-04-03", "Café in NFC. Body."),
        f"{unicodedata.normalize('NFD', cafe)}.txt": seed_bytes("2025-04-04", "In NFD. Body."),
        f"+{cafe}.txt": seed_bytes("2025-04-05", "Its page is cafe-<hash>. Body."),
        f"{normalizer.slug_for('+' + cafe)}.txt": seed_bytes("2025-04-05", "That page. Body."),
        "100_old.txt": seed_bytes("1800-01-01", "Too old. Body."),
        "101_far.txt": seed_bytes("2099-01-01", "Too far ahead. Body."),
        "102_nodate.txt": b"No date line at all.",
        "103_latin1.txt": " date 2025-04-06 Ein Käse, ein Brötchen. Body.".encode("latin-1"),
    }
    sites = [make_site(), make_site()]
    for s in sites:
        for name, data in seeds.items():
            (s.seeds / name).write_bytes(data)
            os.utime(s.seeds / name, ns=(1_700_000_000 * 10**9,) * 2)
    monkeypatch.setattr(sync, "BULK_BATCH", 4)  # a bulk load from 8 seeds
    lookups: list[str] = []
    sites[0].store.db.set_trace_callback(
        lambda sql: lookups.append(sql) if "FROM entries WHERE slug" in sql else None)
    reports = [sites[0].build()]
    sites[0].store.db.set_trace_callback(None)
    monkeypatch.setattr(store.Store, "fresh_load", lambda self: None)  # seed by seed
    reports.append(sites[1].build())
    assert not lookups
    assert [sorted(r.rejected) for r in reports] == [sorted(reports[1].rejected)] * 2
    reasons = " ".join(reason for _name, reason in reports[0].rejected)
    assert len(reports[0].rejected) == 5 and len(reports[0].added) == 27, reports[0].rejected
    assert [r.converted for r in reports] == [[("103_latin1.txt", "cp1252")]] * 2
    assert "same entry id as" in reasons and "same page" in reasons
    assert _rows_by_table(sites[0].store.db) == _rows_by_table(sites[1].store.db)
    assert outputs(sites[0]) == outputs(sites[1])
