"""Power loss cannot leave an empty or stale page: every output is on disk before its
rename, each folder after its renames, and a full pass rewrites any page whose bytes differ
from the content hash kept in the store."""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from feeder import output
from feeder.errors import OutputError

from ._daemon import feeder_env
from ._servers import wait_until
from .conftest import Site


@pytest.fixture
def archived(make_site) -> Site:  # noqa: ANN001
    site = make_site(max_entries=2, archive_size=2)
    for i in range(6):
        site.write(f"{i:03d}_a.txt", f"2025-12-0{i + 1}", f"Article number {i}. Body text.")
    site.build()
    return site


def test_a_full_pass_rewrites_an_empty_entry_page(archived: Site) -> None:
    page = next((archived.out / "entries").glob("*.html"))
    good = page.read_bytes()
    page.write_bytes(b"")  # what a power loss leaves of a page renamed before it was on disk
    report = archived.build()
    assert page.read_bytes() == good
    assert report.written == [f"entries/{page.name}"]


def test_a_full_pass_rewrites_pages_that_differ_from_their_hash(archived: Site) -> None:
    """Same size, other bytes: found by the content hash, not by existence or size."""
    page = next((archived.out / "entries").glob("*.html"))
    archive = archived.out / "archive" / "atom-1.xml"
    before = {p: p.read_bytes() for p in (page, archive)}
    for p, data in before.items():
        p.write_bytes(data.replace(b"Article", b"ARTICLE"))
    report = archived.build()
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(report.written) == ["archive/atom-1.xml", f"entries/{page.name}"]
    assert archived.build().written == []


def test_a_pass_of_named_changes_does_not_read_every_page(archived: Site) -> None:
    """Only full passes check the pages: the one-seed rebuild stays cheap."""
    page = next((archived.out / "entries").glob("*.html"))
    page.write_bytes(b"")
    archived.write("009_new.txt", "2025-12-09", "A new one. Body.")
    archived.build({"009_new.txt"})
    assert page.read_bytes() == b""


def _calls(lines: list[str]) -> list[tuple[str, str]]:
    """(pid, call) per strace line, a call that another thread interrupted
    (``fdatasync(5 <unfinished ...>`` ... ``<... fdatasync resumed>)     = 0``) joined into
    one, at the place it returned (strace pads a resumed call's result with spaces)."""
    pending: dict[str, str] = {}
    calls = []
    for line in lines:
        pid, _, call = line.partition(" ")
        call = call.strip()
        if call.endswith("<unfinished ...>"):
            pending[pid] = call[: -len("<unfinished ...>")].rstrip()
            continue
        if m := re.match(r"<\.\.\. \w+ resumed>(.*)", call):
            call = pending.pop(pid, "") + m[1]
        calls.append((pid, call))
    return calls


def _traced(tmp_path: Path, args: list[str], name: str) -> list[tuple[str, str]]:
    """Run ``args`` in ``tmp_path`` under strace (its opens, flushes and renames); the
    calls, as ``_calls`` gives them."""
    trace = tmp_path / name
    result = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), "-e",
         "trace=openat,fsync,fdatasync,syncfs,sync,rename,renameat,renameat2", *args],
        cwd=tmp_path, env={**feeder_env(), "FEEDER_MAX_ENTRIES": "4",
                           "FEEDER_ARCHIVE_SIZE": "4"},
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return _calls(trace.read_text().splitlines())


def _check_flushed_then_renamed(calls: list[tuple[str, str]], public: Path) -> tuple[
        dict[str, int], int]:
    """Each rename into ``public`` comes after a flush of its temp file (an fdatasync of
    it, or a syncfs) and is followed by an fsync of its folder; returns the renamed paths
    (with the line of their last rename) and the number of syncfs calls."""
    fd_paths: dict[tuple[str, str], str] = {}
    opened: set[str] = set()  # temp files written so far
    flushed: set[str] = set()
    syncfs_calls = 0
    renamed: dict[str, int] = {}
    last_rename: dict[str, int] = {}  # folder -> line of its last rename into it
    last_fsync: dict[str, int] = {}  # path -> line of its last fsync
    for n, (pid, call) in enumerate(calls):
        if m := re.match(r'openat\(AT_FDCWD, "([^"]+)", .*\)\s+= (\d+)', call):
            fd_paths[pid, m[2]] = m[1]
            opened.add(m[1])
        elif m := re.match(r"f(?:data)?sync\((\d+)\)\s*= 0", call):
            path = fd_paths.get((pid, m[1]), "")
            flushed.add(path)
            last_fsync[path] = n
        elif re.match(r"(syncfs\(\d+\)|sync\(\))\s*= 0", call):
            syncfs_calls += 1
            flushed |= opened
        elif m := re.match(r'rename\w*\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"',
                           call):
            tmp, target = m[1], m[2]
            if not ("/" + target).startswith(("/public/", str(public) + "/")):
                continue
            assert tmp in flushed, f"{target} renamed before it was flushed"
            renamed[target] = last_rename[target.rpartition("/")[0]] = n
    assert last_rename
    for folder, n in last_rename.items():
        assert last_fsync.get(folder, -1) > n, f"{folder} not fsynced after its renames"
    return renamed, syncfs_calls


NAMED_PASS = """
from feeder.builder import Builder
from feeder.config import load
from feeder.store import Store

cfg = load(None)
with Store.open_locked(cfg.state, output=cfg.out) as store:
    Builder(cfg, store).build(names={"new.txt"})
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_every_output_is_flushed_before_its_rename_and_its_folder_after(tmp_path: Path) -> None:
    """``feeder build`` under strace, then a pass of one new seed (the daemon's, whose
    files are written and flushed on threads while it renders, and whose feeds go in place
    while it renders its archive page and sitemap): each rename into the output folder comes
    after a flush (fdatasync of that temp file, or a syncfs) and is followed by an fsync of
    a folder before the process exits."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for i in range(12):
        (seeds / f"{i:03d}_a.txt").write_bytes(
            f" date 2025-01-{i + 1:02d} Article {i}. Text.".encode())
    calls = _traced(tmp_path, [sys.executable, "-m", "feeder", "build"], "build.trace")
    _renamed, syncfs_calls = _check_flushed_then_renamed(calls, tmp_path / "public")
    assert syncfs_calls  # 12 new pages: one syncfs for their batch
    (seeds / "new.txt").write_bytes(b" date 2025-02-01 A new article. Text.")
    calls = _traced(tmp_path, [sys.executable, "-c", NAMED_PASS], "pass.trace")
    renamed, syncfs_calls = _check_flushed_then_renamed(calls, tmp_path / "public")
    assert not syncfs_calls
    names = {target.partition("public/")[2] for target in renamed}
    assert {"entries/new.html", "atom.xml", "atom.xml.gz", "sitemap.xml",
            "archive/atom-3.xml"} <= names, names


def _open_copies(path: Path) -> list[str]:
    """This process's descriptors open on ``path`` (or on a file renamed over it)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [link for link in links if link.startswith(str(path))]


def test_a_replaced_file_is_let_go_after_the_rename(tmp_path: Path) -> None:
    """A batch holds the file a rename replaces open (so the rename does not free its
    blocks) and closes it on a helper thread: no descriptor is left behind."""
    path = tmp_path / "page.html"
    for text in (b"one", b"two", b"three"):
        with output.Batch() as batch:
            batch.write(path, text, compress=False)
    assert path.read_bytes() == b"three"
    wait_until(lambda: not _open_copies(path), what=f"{_open_copies(path)} closed")


def test_a_fifo_at_an_output_path_is_replaced_without_blocking(tmp_path: Path) -> None:
    """Opening what a rename replaces must not wait for a writer (a FIFO left there)."""
    path = tmp_path / "index.html"
    os.mkfifo(path)
    done = threading.Event()

    def commit() -> None:
        with output.Batch() as batch:
            batch.write(path, b"<p>page</p>", compress=False, check=False)
        done.set()

    threading.Thread(target=commit, daemon=True).start()
    assert done.wait(30), "the commit blocked on the FIFO"
    assert path.read_bytes() == b"<p>page</p>"


def test_a_sibling_that_fails_to_compress_leaves_the_old_files(tmp_path: Path) -> None:
    """A ``.gz`` sibling compressed on a helper thread is staged at commit: if compressing
    fails, nothing is renamed and no temp file is left."""
    path = tmp_path / "atom.xml"
    data = b"<feed>" + b"x" * 1000 + b"</feed>"
    output.write(path, data)
    old_gz = (tmp_path / "atom.xml.gz").read_bytes()
    failed: concurrent.futures.Future = concurrent.futures.Future()
    failed.set_exception(MemoryError())
    with pytest.raises(MemoryError), output.Batch() as batch:
        batch.write(path, data + b"\n", gz=failed)
    assert path.read_bytes() == data and (tmp_path / "atom.xml.gz").read_bytes() == old_gz
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atom.xml", "atom.xml.gz"]


def test_a_batch_writing_in_the_background_replaces_its_files_or_leaves_them(
        tmp_path: Path) -> None:
    """``background=True`` writes the temp files on the helper threads: the commit puts
    every file in place with its bytes (in a folder made for it too); an error writing one
    is raised by the commit, as an OutputError for its path, with nothing renamed; an error
    of the caller's before the commit leaves no temp file either, though the helpers were
    still writing them."""
    old = {tmp_path / "atom.xml": b"<feed>old</feed>" * 100, tmp_path / "index.html": b"<p>old"}
    for path, data in old.items():
        output.write(path, data)
    new = {tmp_path / "atom.xml": b"<feed>new</feed>" * 100, tmp_path / "index.html": b"<p>new",
           tmp_path / "lang" / "de" / "index.html": b"<p>neu"}
    with output.Batch(background=True) as batch:
        for path, data in new.items():
            assert batch.write(path, data)
    assert {path: path.read_bytes() for path in new} == new
    # the sibling holds the file's bytes (ISA-L does not always give the same compressed bytes)
    assert gzip.decompress((tmp_path / "atom.xml.gz").read_bytes()) == new[tmp_path / "atom.xml"]
    assert not list(tmp_path.rglob("*.tmp"))
    (tmp_path / "blocker").write_bytes(b"a file where a folder should be")
    with pytest.raises(OutputError) as caught, output.Batch(background=True) as batch:
        batch.write(tmp_path / "atom.xml", b"<feed>newer</feed>" * 100)
        batch.write(tmp_path / "blocker" / "index.html", b"<p>x", compress=False)
    assert caught.value.path == tmp_path / "blocker" / "index.html"
    assert (tmp_path / "atom.xml").read_bytes() == new[tmp_path / "atom.xml"]
    assert not list(tmp_path.rglob("*.tmp"))
    big = b"<feed>" + b"y" * (2 << 20) + b"</feed>"  # maybe still being written at the abort
    with pytest.raises(KeyError), output.Batch(background=True) as batch:
        for i in range(4):
            batch.write(tmp_path / f"big-{i}.xml", big, compress=False)
        raise KeyError("the caller's")
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.glob("big-*"))


def test_a_background_batch_puts_a_compressed_file_in_a_folder_it_makes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first file of a new folder (a named pass's first seed in a new language:
    lang/xx/atom.xml and its .gz) in a background batch: the file and its .gz sibling are
    staged on two threads, and the sibling's must make the folder if the file's has not made
    it yet. (It failed the pass, "cannot write lang/en/atom.xml.gz: No such file or
    directory", when the helpers were slow: seen with the suite on two processes.) Here the
    file waits until its sibling is staged."""
    staged_gz = threading.Event()
    stage = output._stage

    def staging(path: Path, data: bytes, flush: bool = False) -> str:
        if not path.name.endswith(".gz"):
            assert staged_gz.wait(30), "the .gz sibling was never staged"
        try:
            return stage(path, data, flush)
        finally:
            if path.name.endswith(".gz"):
                staged_gz.set()

    monkeypatch.setattr(output, "_stage", staging)
    path, data = tmp_path / "lang" / "en" / "atom.xml", b"<feed>new</feed>" * 100
    with output.Batch(background=True) as batch:
        assert batch.write(path, data)
    assert path.read_bytes() == data
    assert gzip.decompress((tmp_path / "lang" / "en" / "atom.xml.gz").read_bytes()) == data
    assert not list(tmp_path.rglob("*.tmp"))


def test_outputs_are_readable_by_all_whatever_the_umask(tmp_path: Path) -> None:
    """The web server must read every output: 0o644 even under a strict umask (where the
    file is made 0o600, and only the fchmod after the fstat puts it right)."""
    old = os.umask(0o077)
    try:
        with output.Batch() as batch:
            batch.write(tmp_path / "new.html", b"<p>new</p>", compress=False)
            batch.write(tmp_path / "feed.xml", b"<feed/>" * 100)  # and its .gz sibling
    finally:
        os.umask(old)
    for name in ("new.html", "feed.xml", "feed.xml.gz"):
        assert (tmp_path / name).stat().st_mode & 0o7777 == 0o644, name


def test_the_flushes_of_a_batch_are_all_in_flight_at_once() -> None:
    """``_flush_all`` and the folder syncs go through ``FLUSHERS.map``: each of a pass's ~20
    fdatasyncs runs on a thread of its own at the same time, so the file system commits them
    in one or two journal commits, not in rounds of four each waiting behind the disk. Each
    call here waits for all the others at a barrier: run a few at a time, they never meet."""
    calls = 20
    barrier = threading.Barrier(calls, timeout=10)  # the timeout only ends a failing run

    def meet(i: int) -> int:
        barrier.wait()
        return i

    assert output.FLUSHERS.map(meet, list(range(calls))) == list(range(calls))
