"""The periodic rescan (a full pass by the daemon's one Builder): the seeds folder is scanned
from its directory entries, and the outputs a full pass found as written are trusted by their
stat on the next one, read again only once changed. Real files and real builds."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from feeder import output, publish
from feeder.folder import Folder

from .conftest import Site


def test_a_scan_sees_each_kind_of_file_as_examining_it_by_name_does(tmp_path: Path) -> None:
    """The scan's fast path (a plain file, from its directory entry) and ``examine`` (every
    other kind) give the same Seen for every name."""
    seeds, outside = tmp_path / "seeds", tmp_path / "outside.txt"
    seeds.mkdir()
    outside.write_bytes(b"x")
    (seeds / "plain.txt").write_bytes(b"plain seed")
    (seeds / "empty.md").write_bytes(b"")
    (seeds / "inside.txt").symlink_to(seeds / "plain.txt")
    (seeds / "outside.txt").symlink_to(outside)
    (seeds / "dangling.txt").symlink_to(seeds / "nowhere.txt")
    (seeds / "loop.txt").symlink_to(seeds / "loop.txt")
    (seeds / "dir.txt").mkdir()
    os.mkfifo(seeds / "fifo.txt")
    (seeds / ".hidden.txt").write_bytes(b"x")
    (seeds / "other.jpg").write_bytes(b"x")
    (seeds / os.fsdecode(b"bad\xff.txt")).write_bytes(b"x")
    folder = Folder(seeds, (".txt", ".md"))
    scanned = folder.scan()
    names = [os.fsdecode(n) for n in os.listdir(os.fsencode(seeds))]
    examined = {s.name: s for s in (folder.examine(n) for n in names) if s is not None}
    assert scanned == examined
    assert set(scanned) == {"plain.txt", "empty.md", "inside.txt", "outside.txt",
                            "dangling.txt", "loop.txt", "fifo.txt", "bad\\xff.txt"}
    assert scanned["plain.txt"].problem is None and scanned["plain.txt"].size == 10
    assert scanned["inside.txt"].path == str(seeds.resolve() / "plain.txt")
    assert scanned["fifo.txt"].problem == "not a regular file"


def site_of_pages(site: Site) -> None:
    for day in range(1, 9):
        site.write(f"{day:03d}_a.txt", f"2025-12-{day:02d}", f"Day {day}. Text.")


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages count as settled at once (their ctime is taken as older than the check), as they
    are two seconds after being written: tests do not wait."""
    monkeypatch.setattr(publish, "SETTLED_NS", -10**15)


def test_a_rescan_trusts_unchanged_pages_by_their_stat(make_site, settled) -> None:  # noqa: ANN001
    site = make_site(max_entries=2, archive_size=2)
    site_of_pages(site)
    builder = site.builder()
    builder.build()
    report = builder.build()
    assert report.written == []
    out = os.fspath(site.out)
    entries = {f"{out}/entries/{n:03d}_a.html" for n in range(1, 9)}
    archives = {f"{out}/archive/{kind}-{n}.{ext}" for n in (1, 2, 3)
                for kind, ext in (("atom", "xml"), ("rss", "xml"), ("page", "html"))}
    stamps = set()
    for path in entries | archives:
        st = os.stat(path)
        digest = output.digest(Path(path).read_bytes())  # as recorded in the store
        stamps.add(hash((path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)))
    assert builder.checked == stamps


def test_pages_that_changed_since_a_rescan_trusted_them_are_restored(make_site, settled) -> None:  # noqa: ANN001
    site = make_site(max_entries=2, archive_size=2)
    site_of_pages(site)
    builder = site.builder()
    builder.build()
    builder.build()  # each page checked and trusted from now on by its stat
    pages = ["entries/001_a.html", "entries/002_a.html", "entries/003_a.html",
             "archive/atom-2.xml"]
    before = {p: site.read(p) for p in pages}
    (site.out / "entries/001_a.html").write_bytes(b"")  # emptied
    (site.out / "entries/002_a.html").unlink()  # deleted
    damaged = site.out / "entries/003_a.html"  # replaced: same size, same mtime
    st = damaged.stat()
    other = site.out / "entries/other"
    other.write_bytes(b"x" * st.st_size)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, damaged)
    with open(site.out / "archive/atom-2.xml", "ab") as f:  # edited in place
        f.write(b"<!-- more -->")
    (site.out / "entries/stray.html").write_bytes(b"stray")
    report = builder.build()
    assert sorted(p for p in report.written if p in before) == sorted(pages)
    assert {p: site.read(p) for p in pages} == before
    assert not (site.out / "entries/stray.html").exists()
    assert builder.build().written == []


def test_a_full_pass_removes_the_temp_files_of_killed_writers_only(
        make_site, caplog, monkeypatch) -> None:  # noqa: ANN001
    """A writer killed between its write and its rename leaves ``.NAME.PID-N.tmp`` beside
    the page; a full pass removes those of processes that are gone, and keeps those of live
    ones (a pass in flight, its pool's workers) and hidden files of other shapes. It says so
    in one line a folder (a killed worker once gave 156 lines, one a page)."""
    monkeypatch.setattr(logging.getLogger("feeder"), "propagate", True)  # see cli
    caplog.set_level(logging.INFO, logger="feeder")
    site = make_site(max_entries=2, archive_size=2)
    site_of_pages(site)
    builder = site.builder()
    builder.build()
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # its pid names no process now
    dead = [f"entries/.001_a.html.{gone.pid}-3.tmp", f"archive/.atom-1.xml.{gone.pid}-7.tmp",
            f".atom.xml.gz.{gone.pid}-12.tmp",
            *(f"entries/.00{i}_b.html.{gone.pid}-{20 + i}.tmp" for i in range(1, 5))]
    kept = [f"entries/.002_a.html.{os.getpid()}-5.tmp", "entries/.keep.tmp",
            f"entries/.x.{gone.pid}.tmp", f"entries/.x.html.{gone.pid}-1.tmp.gz"]
    (site.out / f"archive/.page-1.html.{gone.pid}-2.tmp").mkdir()  # not a file: left
    (site.out / "lang/yy").mkdir(parents=True, exist_ok=True)  # a language's folder
    dead.append(f"lang/yy/.atom.xml.{gone.pid}-9.tmp")
    outside = site.root / "outside"  # a symlink out of the output is not followed
    outside.mkdir()
    (site.out / "lang/zz").symlink_to(outside)
    elsewhere = outside / f".atom.xml.{gone.pid}-4.tmp"
    for path in [*(site.out / rel for rel in dead + kept), elsewhere]:
        path.write_bytes(b"half a page")
    caplog.clear()
    builder.build()
    assert [rel for rel in dead if (site.out / rel).exists()] == []
    said = [r.getMessage() for r in caplog.records if "temp file" in r.getMessage()]
    assert sorted(said) == sorted([
        f"removed 5 temp files in entries/ left by a writer stopped before its rename "
        f"(.001_a.html.{gone.pid}-3.tmp, .001_b.html.{gone.pid}-21.tmp, "
        f".002_b.html.{gone.pid}-22.tmp, ...)",
        f"removed 1 temp file in archive/ left by a writer stopped before its rename "
        f"(.atom-1.xml.{gone.pid}-7.tmp)",
        f"removed 1 temp file in the output folder left by a writer stopped before its "
        f"rename (.atom.xml.gz.{gone.pid}-12.tmp)",
        f"removed 1 temp file in lang/yy/ left by a writer stopped before its rename "
        f"(.atom.xml.{gone.pid}-9.tmp)"]), said
    assert [rel for rel in kept if not (site.out / rel).exists()] == []
    assert (site.out / f"archive/.page-1.html.{gone.pid}-2.tmp").is_dir()
    assert elsewhere.exists()
