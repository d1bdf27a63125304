"""``feeder run`` follows its folders by path: what operators do to them while it runs.

Every daemon here keeps the default ``rescan_interval`` (300 s), so no rescan can hide a
change that was missed: whatever is served within the timeouts was followed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .._daemon import FeederDaemon
from .._daemon import seed_bytes as seed
from .test_daemon import entry_id, find, write_in_place

pytestmark = pytest.mark.slow

TIMEOUT = 15.0  # generous: the machine is shared; the goal (< 1 s) is measured by bench/follow.py


def served(d: FeederDaemon, name: str) -> bool:
    return find(d.feed(), entry_id(name)) is not None


def swap_symlink(link: Path, target: str) -> None:
    """``ln -s TARGET LINK.new && mv -T LINK.new LINK``: re-point a symlink atomically."""
    new = link.with_name(link.name + ".new")
    new.symlink_to(target)
    os.rename(new, link)


def test_symlink_swap_of_the_seeds_folder_is_followed(daemon_factory, tmp_path):
    release1, release2 = tmp_path / "release1", tmp_path / "release2"
    release1.mkdir()
    write_in_place(release1 / "old.txt", seed("2026-01-04", "From release one. It goes."))
    link = tmp_path / "seeds"
    link.symlink_to("release1")
    d = daemon_factory(seeds=link).start()
    d.wait_until(lambda: served(d, "old.txt"), what="the seed of release one")

    release2.mkdir()
    write_in_place(release2 / "new.txt", seed("2026-01-05", "From release two. It comes."))
    swap_symlink(link, "release2")
    d.wait_until(lambda: served(d, "new.txt") and not served(d, "old.txt"), timeout=TIMEOUT,
                 what="release two served in place of release one")

    write_in_place(release2 / "later.txt", seed("2026-01-06", "Written after the swap. Seen."))
    d.wait_until(lambda: served(d, "later.txt"), timeout=TIMEOUT,
                 what="a seed written into the new target (the watcher follows it)")
    write_in_place(release1 / "stale.txt", seed("2026-01-07", "Into the old release. Unseen."))
    assert d.health()["status"] == "ok"
    write_in_place(release2 / "marker.txt", seed("2026-01-03", "A marker. After the stale one."))
    d.wait_until(lambda: served(d, "marker.txt"), timeout=TIMEOUT, what="the marker seed")
    assert not served(d, "stale.txt")


def test_seeds_folder_deleted_and_made_again(daemon_factory):
    d = daemon_factory().start()
    shutil.rmtree(d.seeds)  # an empty folder: no file's deletion hints at the change
    d.seeds.mkdir()
    write_in_place(d.seeds / "first.txt", seed("2026-01-04", "In the new folder. Served."))
    d.wait_until(lambda: served(d, "first.txt"), timeout=TIMEOUT,
                 what="the seed in the re-made folder")

    shutil.rmtree(d.seeds)
    d.wait_until(lambda: str(d.seeds) in (d.health()["error"] or ""), timeout=TIMEOUT,
                 what="/healthz to report the missing folder")
    assert served(d, "first.txt")  # a missing folder is not a reason to unpublish
    d.seeds.mkdir()
    write_in_place(d.seeds / "second.txt", seed("2026-01-05", "In the third folder. Served."))
    d.wait_until(lambda: served(d, "second.txt") and not served(d, "first.txt"),
                 timeout=TIMEOUT, what="the seed in the folder made again")
    d.wait_until(lambda: d.health()["status"] == "ok", what="/healthz ok again")
    write_in_place(d.seeds / "later.txt", seed("2026-01-06", "Later in the same folder. Seen."))
    d.wait_until(lambda: served(d, "later.txt"), timeout=TIMEOUT, what="a later seed")


ARCHIVED = {"feed": {"max_entries": 2, "archive_size": 2}}  # 5 seeds: 2 archive pages


def remove_output(d: FeederDaemon) -> None:
    """``rm -rf`` of the output folder while the daemon may still be writing into it (the
    archive pages and the sitemap follow the feeds): files that vanish or appear meanwhile
    are tried again until a try meets no file it could not remove."""
    def gone() -> bool:
        missed: list[BaseException] = []
        shutil.rmtree(d.out, onerror=lambda *err: missed.append(err[2][1]))
        return not [e for e in missed if not isinstance(e, FileNotFoundError)]
    d.wait_until(gone, what="the output folder removed")


def site_with_archives(daemon_factory) -> tuple[FeederDaemon, list[str]]:
    """A started daemon whose output has feeds, entry pages and archive pages."""
    d = daemon_factory(config=ARCHIVED)
    for day in range(1, 6):
        write_in_place(d.seeds / f"s{day}.txt", seed(f"2026-01-0{day}", f"Seed {day}. Text."))
    d.start()
    paths = ["atom.xml", "rss.xml", "feed.json", "", "entries/s1.html", "entries/s5.html",
             "archive/atom-1.xml", "archive/rss-2.xml"]
    d.wait_until(lambda: all_served(d, paths), timeout=TIMEOUT, what="every output")
    return d, paths


def all_served(d: FeederDaemon, paths: list[str]) -> bool:
    return all(d.get(p).status_code == 200 for p in paths)


def test_output_folder_deleted_is_written_again(daemon_factory):
    d, paths = site_with_archives(daemon_factory)
    remove_output(d)
    d.wait_until(lambda: all_served(d, paths), timeout=TIMEOUT,
                 what="feeds, entry pages and archives written again")
    d.wait_until(lambda: d.health()["status"] == "ok", what="/healthz ok again")
    assert len(d.feed().entries) == 2
    assert d.running


def test_healthz_tells_while_the_output_folder_cannot_be_made(daemon_factory):
    """A file where the output folder was: no folder can be made, and /healthz says so."""
    d, paths = site_with_archives(daemon_factory)
    remove_output(d)
    d.out.write_bytes(b"in the way")
    assert d.health()["status"] != "ok"
    assert str(d.out) in d.health()["error"]
    body = d.wait_until(lambda: (h := d.health())["last_build"].get("ok") is False and h,
                        timeout=TIMEOUT, what="a pass that tried to write the outputs again")
    assert body["status"] == "error" and str(d.out) in body["error"]
    assert d.get("healthz").status_code == 503
    assert d.get("atom.xml").status_code == 404
    assert d.running

    d.out.unlink()
    d.wait_until(lambda: all_served(d, paths), timeout=TIMEOUT, what="every output again")
    d.wait_until(lambda: d.health()["status"] == "ok", what="/healthz ok again")


def test_healthz_tells_when_the_state_file_is_deleted(daemon_factory):
    """The daemon writes a deleted state file again at once (tests/e2e/test_operator.py);
    until it has, /healthz says 503 and names the file, then ok."""
    d = daemon_factory().start()
    assert d.health()["status"] == "ok"
    for path in (d.state, Path(f"{d.state}-wal"), Path(f"{d.state}-shm")):
        path.unlink(missing_ok=True)
    errors = []

    def restored() -> bool:
        response = d.get("healthz")
        if response.status_code != 200:
            errors.append(response.json()["error"])
        return response.status_code == 200 and d.state.exists()

    d.wait_until(restored, interval=0.005, what="the state file written again")
    assert all(str(d.state) in error and "deleted" in error for error in errors), \
        [e for e in errors if str(d.state) not in e or "deleted" not in e]
    assert d.running
