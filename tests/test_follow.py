"""follow.py on real folders: identities, the held output folder, and the Poller."""

from __future__ import annotations

import logging
import os
import shutil
import threading

import pytest

from feeder.follow import HeldFolder, Outputs, Poller, identity


def test_identity_follows_symlinks_and_is_none_for_nothing(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to("a")
    assert identity(tmp_path / "link") == identity(tmp_path / "a") is not None
    assert identity(tmp_path / "missing") is None


def test_a_held_folder_keeps_its_inode_number(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    held = HeldFolder(folder)
    try:
        for _ in range(20):  # a freed number is often the next one given out
            shutil.rmtree(folder)
            folder.mkdir()
            assert identity(folder) != held.identity
    finally:
        held.close()
    assert HeldFolder(tmp_path / "missing").identity is None
    (tmp_path / "file").write_bytes(b"")
    assert HeldFolder(tmp_path / "file").identity is None


def test_poller_logs_a_failing_look_once_and_goes_on(caplog):
    looks = []
    went_on = threading.Event()

    def look() -> None:
        looks.append(1)
        if len(looks) >= 4:
            went_on.set()
        raise OSError("stale file handle")

    poller = Poller("test-poller", look, interval=0.01)
    with caplog.at_level(logging.ERROR, logger="feeder"):
        poller.start()
        try:
            assert went_on.wait(5)
        finally:
            poller.stop()
    assert [r.message for r in caplog.records].count(
        "test-poller: looking at the folder failed; trying again") == 1


class Site:
    """An Outputs on a real folder, with the passes a daemon would run, done by hand."""

    def __init__(self, out) -> None:
        self.out = out
        self.lost = 0
        self.outputs = Outputs(out, self.on_lost)

    def on_lost(self) -> None:
        self.lost += 1

    def publish(self, force_expected: bool) -> None:
        assert self.outputs.pass_starts() is force_expected
        self.write()
        self.outputs.published()

    def write(self) -> None:
        self.out.mkdir(exist_ok=True)
        for name in Outputs.FILES:
            (self.out / name).write_bytes(b"x")


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path / "public")
    yield s
    s.outputs.close()


def test_nothing_is_missing_before_the_first_publish(site):
    site.outputs.look()
    assert site.lost == 0 and site.outputs.problem() is None
    assert site.outputs.pass_starts() is False


def test_deleted_folder_is_reported_once_and_written_again(site):
    site.publish(force_expected=False)
    shutil.rmtree(site.out)
    assert str(site.out) in site.outputs.problem()
    site.outputs.look()
    site.outputs.look()
    assert site.lost == 1
    assert site.outputs.rewriting
    assert site.outputs.pass_starts() is True
    assert site.out.is_dir()  # made before the pass writes
    site.outputs.look()
    assert site.lost == 1  # the folder the pass made is not another loss
    assert "writing every output" in site.outputs.problem()
    site.write()
    site.outputs.published()
    assert not site.outputs.rewriting and site.outputs.problem() is None

    shutil.rmtree(site.out)  # the same loss again is reported again
    site.outputs.look()
    assert site.lost == 2


def test_folder_made_again_at_once_is_a_loss(site):
    site.publish(force_expected=False)
    shutil.rmtree(site.out)
    site.out.mkdir()
    site.outputs.look()
    assert site.lost == 1
    assert site.outputs.pass_starts() is True


def test_file_in_the_way_then_gone(site):
    site.publish(force_expected=False)
    shutil.rmtree(site.out)
    site.out.write_bytes(b"in the way")
    site.outputs.look()
    assert site.lost == 1
    assert site.outputs.pass_starts() is True  # its build fails: no published()
    site.outputs.look()
    assert site.lost == 1
    assert str(site.out) in site.outputs.problem()
    site.out.unlink()
    site.outputs.look()
    assert site.lost == 2
    site.publish(force_expected=True)
    assert site.outputs.problem() is None


def test_a_pass_notices_what_the_looks_missed(site):
    site.publish(force_expected=False)
    shutil.rmtree(site.out)  # no look before the next pass
    site.publish(force_expected=True)
    assert site.lost == 0  # the pass itself covered it: no other pass asked for
    assert not site.outputs.rewriting

    assert site.outputs.pass_starts() is False
    shutil.rmtree(site.out)  # while the pass runs, and no look sees it
    site.write()  # the rest of the pass makes a new folder, part-filled
    site.outputs.published()
    assert site.lost == 1 and site.outputs.rewriting
    site.publish(force_expected=True)
    assert not site.outputs.rewriting


def test_a_deleted_language_folder_is_reported(site):
    (site.out / "lang" / "it").mkdir(parents=True)
    for name in ("atom.xml", "rss.xml", "feed.json", "index.html"):
        (site.out / "lang" / "it" / name).write_bytes(b"x")
    site.publish(force_expected=False)
    assert site.outputs.problem() is None
    shutil.rmtree(site.out / "lang")
    site.outputs.look()
    assert site.lost == 0
    assert site.outputs.problem() == "missing outputs: " + ", ".join(
        str(site.out / "lang" / "it" / name) for name in ("atom.xml", "feed.json", "rss.xml"))


def test_files_deleted_from_the_folder_are_reported_not_acted_on(site):
    site.publish(force_expected=False)
    os.unlink(site.out / "atom.xml")
    site.outputs.look()
    assert site.lost == 0  # an rm -rf may still be emptying the folder
    assert site.outputs.problem() == f"missing outputs: {site.out / 'atom.xml'}"
