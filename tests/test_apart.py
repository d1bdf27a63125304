"""``feeder run``'s cold build in a child process (``feeder/apart.py``): the same outputs and
report as a pass in the daemon, with none of its residue left in the daemon's process."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from feeder import apart, render
from feeder.builder import BuildCancelled, Builder

from .conftest import Site


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def fill(site: Site, n: int = 30) -> None:
    for i in range(n):
        site.write(f"{i:03d}_s.txt", f"2025-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                   f"Seed number {i}. It has some words in it.\n\nMore text here.")
    site.write("901_bad.txt", "1850-01-01", "Too old. A typo.")
    for path in site.seeds.iterdir():  # written before the daemon started: settled
        os.utime(path, (path.stat().st_mtime - 3600,) * 2)


def test_a_build_apart_writes_what_a_build_here_writes(make_site) -> None:  # noqa: ANN001
    sites, reports = [], []
    for apart_ in (False, True):
        site = make_site(max_entries=5, archive_size=4)
        fill(site)
        if apart_:
            render.clear_fragments()
            feeds: list[int] = []
            report = apart.build(site.config, cancel=threading.Event(),
                                 beat=lambda: None, busy=None,
                                 on_feeds=lambda feeds=feeds: feeds.append(1))
            assert feeds == [1]
            # the pass's renderings stayed in the child
            assert not render._fragments._data
        else:
            report = Builder(site.config, site.store, progress=False).build()
        sites.append(site)
        reports.append(report)
    here, there = reports
    assert there.entries == here.entries == 30
    assert sorted(there.written) == sorted(here.written)
    assert there.rejected == here.rejected
    assert tree(sites[1].out) == tree(sites[0].out)
    assert sites[1].store.total() == 30


def test_the_child_asks_the_watcher_which_files_are_being_written(make_site) -> None:  # noqa: ANN001
    site = make_site()
    fill(site, 5)
    asked = []

    def busy() -> set[str]:
        asked.append(threading.get_ident())
        return {"000_s.txt"}  # open for writing: left for a later pass

    report = apart.build(site.config, cancel=threading.Event(),
                         beat=lambda: None, busy=busy, on_feeds=None)
    assert asked
    assert report.entries == 4
    assert "000_s.txt" in report.deferred


def test_a_cancelled_build_apart_stops_and_leaves_no_process(make_site) -> None:  # noqa: ANN001
    site = make_site()
    fill(site, 5)
    cancel = threading.Event()
    cancel.set()  # the daemon is stopping
    children = set(os.listdir("/proc"))
    with pytest.raises(BuildCancelled):
        apart.build(site.config, cancel=cancel, beat=lambda: None, busy=None, on_feeds=None)
    assert not [p for p in set(os.listdir("/proc")) - children
                if p.isdigit() and _parent(p) == os.getpid()]


def test_a_failure_in_the_child_is_raised_in_one_line(make_site) -> None:  # noqa: ANN001
    site = make_site()
    fill(site, 5)
    site.out.write_text("a file where the output folder should be")
    with pytest.raises(apart.ApartError, match=str(site.out)):
        apart.build(site.config, cancel=threading.Event(), beat=lambda: None, busy=None,
                    on_feeds=None)


def _parent(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2:].split()[1])


@pytest.mark.slow
def test_a_first_build_child_killed_in_its_bulk_load_leaves_the_daemon_a_whole_state(
        make_site, tmp_path) -> None:  # noqa: ANN001
    """`feeder run`'s cold build runs in a child (apart.py); killed (kill -9, the OOM killer)
    in the middle of its bulk load, it leaves the deferred indexes and triggers dropped
    (Store.bulk_load). The daemon, whose connection opened the file before the child, retries
    the pass: its state and outputs must end as an uninterrupted build's (every entry placed
    in the archive, languages listed), not with entries recorded without those rows."""
    import signal
    import sqlite3

    from ._daemon import FeederDaemon, seed_bytes

    n = 6000  # a bulk load: 2 * BULK_BATCH seeds at least
    daemon = FeederDaemon(tmp_path / "d")
    site = make_site(base_url=daemon.base_url)
    for i in range(n):
        data = seed_bytes(f"2025-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                          f"Seed number {i}. It has some words in it.\n\nMore text here.")
        for folder in (site.seeds, daemon.seeds):
            (folder / f"{i:05d}_s.txt").write_bytes(data)
            os.utime(folder / f"{i:05d}_s.txt", (1_700_000_000,) * 2)  # settled
    site.build()

    def loading() -> bool:
        try:
            db = sqlite3.connect(f"file:{daemon.state}?mode=ro", uri=True)
            try:
                return bool(db.execute("SELECT 1 FROM meta WHERE key = 'bulk_load'").fetchone()
                            and db.execute("SELECT count(*) FROM entries").fetchone()[0])
            finally:
                db.close()
        except sqlite3.Error:
            return False

    daemon.start(wait=False)
    try:
        daemon.wait_until(loading, timeout=60, what="the child's bulk load to commit a batch")
        procs = daemon.processes()
        child = [p for p, parent in procs.items() if parent == daemon.proc.pid
                 and b"feeder.apart" in Path(f"/proc/{p}/cmdline").read_bytes()]
        os.kill(child[0], signal.SIGKILL)
        daemon.wait_until(lambda: daemon._built() and daemon.health()["entries"] == n
                          and daemon.health()["last_build"].get("ok"), timeout=120,
                          what="the daemon's retry to build every seed")
    finally:
        daemon.stop()
    assert "first build's process ended" in daemon.log_text()
    db = sqlite3.connect(daemon.state)
    rows = {
        "places": "SELECT e.name, p.page FROM entries e JOIN places p ON p.id = e.id",
        "languages": "SELECT code FROM languages",
        "schema": "SELECT type, name FROM sqlite_master",
        "bulk": "SELECT key FROM meta WHERE key = 'bulk_load'",
    }
    for what, query in rows.items():
        assert sorted(db.execute(query)) == sorted(site.store.db.execute(query)), what
    db.close()
    assert sorted(p.relative_to(daemon.out) for p in daemon.out.rglob("*")) == sorted(
        p.relative_to(site.out) for p in site.out.rglob("*"))
