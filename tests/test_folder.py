"""folder.py: when a seed is ready to be read. Every pass, named (the watcher's change set)
or full, leaves out a file its writer may not be done with, reports it as deferred, and
reads it once it is ready: closed (the watcher saw it), or unchanged for ``settle`` seconds.

Real files, a real watcher (inotify) and real builds. ``settle`` is long, so that a file
becomes ready by being closed or by back-dating its mtime, never by a test waiting.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.folder import Folder
from feeder.watcher import Watcher

from ._daemon import seed_bytes
from ._servers import wait_until
from .conftest import Site

SETTLE = 60.0
TIMEOUT = 5.0


def back_date(path: Path, seconds: float = SETTLE + 1) -> None:
    """The file has not changed for ``seconds``."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


@pytest.fixture
def watched(site: Site) -> Iterator[tuple[Watcher, queue.Queue[set[str]]]]:
    """A running Watcher on the site's seeds, and the queue of the name sets it reports."""
    reports: queue.Queue[set[str]] = queue.Queue()
    watcher = Watcher(site.seeds, site.config.extensions, reports.put, settle=SETTLE)
    watcher.start()
    try:
        yield watcher, reports
    finally:
        watcher.stop()


def test_a_named_pass_leaves_a_file_open_for_writing_until_it_is_closed(site: Site,
                                                                        watched) -> None:  # noqa: ANN001
    """A writer closes a seed (the watcher reports it) and opens it again to append: the
    pass for that report must not read the second version half-written."""
    watcher, reports = watched
    builder = site.builder(busy=watcher.busy, settle=SETTLE)  # one builder, as in the daemon
    name, path = "001_slow.txt", site.seeds / "001_slow.txt"
    path.write_bytes(seed_bytes("2025-12-28", "Slowly written. FIRSTHALF of it."))
    assert reports.get(timeout=TIMEOUT) == {name}
    assert builder.build({name}).added == [name]
    with open(path, "ab") as fh:
        fh.write(b"\n\nSECOND")
        fh.flush()
        wait_until(lambda: name in watcher.busy(), timeout=TIMEOUT, what="the write to be seen")
        report = builder.build({name})
        assert report.deferred == {name}
        assert (report.changed, report.removed) == ([], [])
        entry = site.store.entry_by_name(name)
        assert entry is not None and "SECOND" not in entry.content_html
        fh.write(b"HALF of it.")
    names = reports.get(timeout=TIMEOUT)
    assert names == {name}
    report = builder.build(names)
    assert report.changed == [name] and report.deferred == set()
    assert b"SECONDHALF" in site.read("atom.xml")


def test_a_file_written_before_the_watcher_started_waits_to_settle(site: Site) -> None:
    """Start-up during a write: the watcher cannot know whether a file that was open before
    it started is done. Neither the start-up pass nor the retry of what it left out reads
    it before it has been unchanged for ``settle``."""
    name, path = "002_early.txt", site.seeds / "002_early.txt"
    reports: queue.Queue[set[str]] = queue.Queue()
    watcher = Watcher(site.seeds, site.config.extensions, reports.put, settle=SETTLE)
    try:
        with open(path, "wb") as fh:
            fh.write(seed_bytes("2025-12-28", "Early writer, stalled. Text."))
            fh.flush()
            watcher.start()
            builder = site.builder(busy=watcher.busy, settle=SETTLE)
            first = builder.build()
            assert first.deferred == {name} and first.added == []
            retry = builder.build(first.deferred)  # the daemon looks again after settle
            assert retry.deferred == {name} and retry.added == []
            assert site.store.entry_by_name(name) is None
        back_date(path)
        report = builder.build({name})
        assert report.added == [name] and report.deferred == set()
    finally:
        watcher.stop()


def test_without_a_watcher_a_named_pass_waits_for_settle(site: Site) -> None:
    builder = site.builder(settle=SETTLE)
    path = site.write("003_fresh.txt", body="Just written. Text.")
    report = builder.build({"003_fresh.txt"})
    assert report.deferred == {"003_fresh.txt"} and report.added == []
    assert site.store.entry_by_name("003_fresh.txt") is None
    back_date(path)
    assert builder.build({"003_fresh.txt"}).added == ["003_fresh.txt"]


def test_a_full_pass_leaves_out_what_is_not_ready_without_removing_it(site: Site) -> None:
    builder = site.builder(settle=SETTLE)
    path = site.write("004_a.txt", body="First version. Text.")
    back_date(path)
    assert builder.build().added == ["004_a.txt"]
    site.write("004_a.txt", body="Second version, being written. Text.")
    report = builder.build()
    assert report.deferred == {"004_a.txt"}
    assert (report.changed, report.removed) == ([], [])
    assert b"First version" in site.read("atom.xml")


# -- Folder.not_ready, with a clock of our own -------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Clock]:
    (tmp_path / "a.txt").write_bytes(b" date 2025-12-28 Text.")
    clock = Clock()
    clock.ns = (tmp_path / "a.txt").stat().st_mtime_ns  # "now" is when it was written
    return tmp_path, clock


def test_a_file_the_watcher_reports_is_ready_at_once(folder) -> None:  # noqa: ANN001
    path, clock = folder
    seeds = Folder(path, (".txt",), settle=SETTLE, busy=set, clock_ns=clock)
    assert seeds.look({"a.txt"})[1] == set()
    assert seeds.look()[1] == {"a.txt"}  # a scan cannot tell whether it was closed


def test_a_file_left_out_unsure_waits_even_when_reported(folder) -> None:  # noqa: ANN001
    path, clock = folder
    busy: set[str] = set()
    seeds = Folder(path, (".txt",), settle=SETTLE, busy=lambda: busy, clock_ns=clock)
    assert seeds.look()[1] == {"a.txt"}
    clock.ns += int(SETTLE / 2 * 1e9)
    assert seeds.look({"a.txt"})[1] == {"a.txt"}  # unchanged since: maybe still open
    busy.add("a.txt")  # written again: the watcher follows it now
    assert seeds.look({"a.txt"})[1] == {"a.txt"}
    busy.clear()  # ... and saw it closed
    assert seeds.look({"a.txt"})[1] == set()


def test_a_file_dated_in_the_future_is_ready_once_unchanged_for_settle(folder) -> None:  # noqa: ANN001
    path, clock = folder
    clock.ns -= int(3600e9)  # the file's mtime is an hour ahead of our clock
    seeds = Folder(path, (".txt",), settle=SETTLE, clock_ns=clock)
    assert seeds.look({"a.txt"})[1] == {"a.txt"}
    clock.ns += int(SETTLE * 1e9)
    assert seeds.look({"a.txt"})[1] == set()


def test_with_no_settle_every_file_is_ready(folder) -> None:  # noqa: ANN001
    path, clock = folder
    clock.ns -= int(3600e9)
    seeds = Folder(path, (".txt",), settle=0.0, clock_ns=clock)
    assert seeds.look() == ({"a.txt": seeds.examine("a.txt")}, set())


def test_a_named_pass_removes_a_seed_only_once_it_has_been_gone_for_settle(site: Site) -> None:
    """A folder emptied by a move loses its files one event at a time: the first deletions
    wait ``settle``, so that the mass-deletion guard sees the whole of it at once."""
    clock = [time.time_ns()]
    for i in range(3):
        back_date(site.write(f"{i}.txt", body=f"Article {i}. Text."))
    builder = site.builder(settle=SETTLE)
    builder.folder.clock_ns = lambda: clock[0]
    builder.build()
    (site.seeds / "0.txt").unlink()
    report = builder.build({"0.txt"})
    assert report.removed == [] and report.deferred == {"0.txt"}
    clock[0] += int(SETTLE * 1e9)
    report = builder.build({"0.txt"})
    assert report.removed == ["0.txt"] and report.deferred == set()


def test_a_seed_back_within_settle_is_not_removed(site: Site) -> None:
    clock = [time.time_ns()]
    path = site.write("a.txt", body="Alpha. Text.")
    back_date(path)
    builder = site.builder(settle=SETTLE)
    builder.folder.clock_ns = lambda: clock[0]
    builder.build()
    data = path.read_bytes()
    path.unlink()
    assert builder.build({"a.txt"}).removed == []
    path.write_bytes(data)
    back_date(path)
    clock[0] += int(SETTLE * 1e9)
    report = builder.build({"a.txt"})
    assert report.removed == [] and report.deferred == set()
