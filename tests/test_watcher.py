"""The Watcher against real inotify events in a temp folder (no mocks, no sleeps)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

import pytest

from feeder.watcher import Watcher

from ._daemon import feeder_env

TIMEOUT = 5.0
QUIET = 0.5  # how long "nothing more is reported" is watched for


@pytest.fixture
def watched(tmp_path):
    """(folder, reports queue) with a running Watcher; each report is a set of names."""
    folder = tmp_path / "seeds"
    folder.mkdir()
    reports: queue.Queue[set[str]] = queue.Queue()
    watcher = Watcher(folder, (".txt",), reports.put, settle=1.0)
    watcher.start()
    try:
        yield folder, reports
    finally:
        watcher.stop()


def next_report(reports: queue.Queue) -> set[str]:
    return reports.get(timeout=TIMEOUT)


def reported_within(reports: queue.Queue, timeout: float = QUIET) -> set[str]:
    """Everything reported in the next ``timeout`` seconds (empty if nothing)."""
    names: set[str] = set()
    try:
        names |= reports.get(timeout=timeout)
        while True:
            names |= reports.get_nowait()
    except queue.Empty:
        return names


def write(path, text: str = " date 2026-01-05 Hello.") -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def test_close_after_write_is_reported_once(watched):
    folder, reports = watched
    write(folder / "a.txt")
    assert next_report(reports) == {"a.txt"}
    assert reported_within(reports) == set()


def test_hidden_and_temporary_files_are_ignored(watched):
    folder, reports = watched
    for name in (".x.txt", "x.txt.swp", "x.txt~", "x.part", "x.tmp"):
        write(folder / name)
    write(folder / "marker.txt")  # events arrive in order: once this is in, the rest were seen
    assert next_report(reports) == {"marker.txt"}
    assert reported_within(reports) == set()


def test_rename_into_place_reports_the_destination(watched):
    folder, reports = watched
    write(folder / ".draft.txt")
    os.rename(folder / ".draft.txt", folder / "b.txt")
    assert next_report(reports) == {"b.txt"}


def test_move_in_from_another_folder_is_reported(watched, tmp_path):
    """inotify reports a file moved in from elsewhere as a creation with no close."""
    folder, reports = watched
    elsewhere = tmp_path / "staging"
    elsewhere.mkdir()
    write(elsewhere / "c.txt")
    os.rename(elsewhere / "c.txt", folder / "c.txt")
    assert next_report(reports) == {"c.txt"}


def test_delete_reports_the_name(watched):
    folder, reports = watched
    write(folder / "d.txt")
    assert next_report(reports) == {"d.txt"}
    os.unlink(folder / "d.txt")
    assert next_report(reports) == {"d.txt"}


def test_moving_away_reports_the_source(watched, tmp_path):
    folder, reports = watched
    write(folder / "e.txt")
    assert next_report(reports) == {"e.txt"}
    os.rename(folder / "e.txt", tmp_path / "e.txt")
    assert next_report(reports) == {"e.txt"}


def test_file_written_in_two_parts_is_reported_only_when_closed(watched):
    folder, reports = watched
    with open(folder / "f.txt", "w", encoding="utf-8") as fh:
        fh.write(" date 2026-01-05 First half")
        fh.flush()
        os.fsync(fh.fileno())
        assert reported_within(reports, 1.5) == set()  # longer than the settle interval
        fh.write(" and the second half.")
    assert next_report(reports) == {"f.txt"}


def test_stop_leaves_no_threads(tmp_path):
    before = set(threading.enumerate())
    watcher = Watcher(tmp_path, (".txt",), lambda names: None)
    watcher.start()
    watcher.stop()
    assert set(threading.enumerate()) - before == set()


@pytest.fixture
def following(tmp_path):
    """A factory: start a Watcher on a path; returns (reports, replacements) queues."""
    watchers = []

    def start(path, expect_start_error: bool = False):
        reports: queue.Queue[set[str]] = queue.Queue()
        replaced: queue.Queue[bool] = queue.Queue()
        watcher = Watcher(path, (".txt",), reports.put, settle=1.0,
                          on_replaced=lambda: replaced.put(True))
        watchers.append(watcher)
        if expect_start_error:
            with pytest.raises(OSError):
                watcher.start()
        else:
            watcher.start()
        return reports, replaced

    yield start
    for watcher in watchers:
        watcher.stop()


def test_symlink_swap_is_followed(following, tmp_path):
    release1, release2 = tmp_path / "release1", tmp_path / "release2"
    release1.mkdir()
    release2.mkdir()
    link = tmp_path / "seeds"
    link.symlink_to("release1")
    reports, replaced = following(link)
    write(release1 / "a.txt")
    assert next_report(reports) == {"a.txt"}

    (tmp_path / "seeds.new").symlink_to("release2")
    os.rename(tmp_path / "seeds.new", link)
    assert replaced.get(timeout=TIMEOUT)
    write(release1 / "old.txt")
    write(release2 / "b.txt")
    assert next_report(reports) == {"b.txt"}
    assert reported_within(reports) == set()


def test_folder_deleted_and_made_again_is_followed(following, tmp_path):
    """On ext4 the new folder usually gets the old one's inode number: the watch's own
    deletion event tells them apart."""
    folder = tmp_path / "seeds"
    folder.mkdir()
    reports, replaced = following(folder)
    folder.rmdir()
    folder.mkdir()
    assert replaced.get(timeout=TIMEOUT)
    write(folder / "a.txt")
    assert next_report(reports) == {"a.txt"}


def test_folder_missing_at_start_is_watched_once_made(following, tmp_path):
    folder = tmp_path / "seeds"
    reports, replaced = following(folder, expect_start_error=True)
    folder.mkdir()
    assert replaced.get(timeout=TIMEOUT)
    write(folder / "a.txt")
    assert next_report(reports) == {"a.txt"}


@pytest.mark.slow
def test_the_watcher_does_not_import_the_builder_or_the_renderers() -> None:
    """It needs only ``folder.is_candidate``; feedgen, lxml and Jinja are for building."""
    code = "import sys, feeder.watcher; print(*sorted(sys.modules))"
    loaded = set(subprocess.run([sys.executable, "-c", code], env=feeder_env(), check=True,
                                capture_output=True, text=True, timeout=60).stdout.split())
    assert "feeder.watcher" in loaded
    heavy = {"feeder.builder", "feeder.render", "feeder.publish", "feeder.sync", "feedgen",
             "jinja2", "lxml"}
    assert loaded & heavy == set()
