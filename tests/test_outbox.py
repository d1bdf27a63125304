"""The ping outbox: a feed's new version and its pings are recorded in one transaction before
the file is renamed into place, so a crash neither loses a ping nor sends one twice; and
``feeder build`` sends them (a real subprocess pinging a real HTTP hub on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from feeder import output, site
from feeder.store import PingStore

from ._daemon import FeederDaemon, feeder_env
from ._servers import serve_in_thread
from .conftest import Site

HUB = "http://127.0.0.1:9/hub"
FEEDS = ("atom.xml", "feed.json", "rss.xml")
# and those of the seeds' language (too short to detect: the default, en)
ALL_FEEDS = sorted([*FEEDS, *(f"lang/en/{feed}" for feed in FEEDS)])


class Crash(Exception):
    """Stands for the process dying at the injected point."""


def pending(site: Site) -> list[tuple[str, str]]:
    """(hub, feed) of the main feeds' pending pings."""
    with PingStore(site.config.state) as pings:
        return sorted((p.hub, p.topic.rpartition("/")[2]) for p in pings.pending_pings()
                      if "/lang/" not in p.topic)


def restart(site: Site) -> None:
    site.store.close()
    site.store = type(site.store)(site.config.state)


@pytest.fixture
def hub_site(make_site) -> Site:  # noqa: ANN001
    site = make_site(hubs=[HUB])
    site.write("001_a.txt", "2025-12-01", "First article. Body.")
    site.build()
    with PingStore(site.config.state) as pings:
        for p in pings.pending_pings():
            pings.ping_done(p.hub, p.topic)
    site.write("002_b.txt", "2025-12-02", "Second article. Body.")
    return site


def test_a_crash_right_after_a_feed_is_renamed_loses_no_ping(hub_site: Site, monkeypatch) -> None:
    """The step after atom.xml's rename dies: after a restart its new version is still
    announced, once (on the old code the ping was queued after the write, and lost)."""
    renamed: list[Path] = []

    def die_after_atom(path: Path) -> None:  # called before each rename
        if renamed[-1:] == [hub_site.out / "atom.xml"]:
            raise Crash
        renamed.append(path)

    monkeypatch.setattr(output, "before_rename", die_after_atom)
    with pytest.raises(Crash):
        hub_site.build()
    assert b"Second article" in hub_site.read("atom.xml")
    monkeypatch.undo()
    restart(hub_site)
    hub_site.build()
    assert pending(hub_site) == [(HUB, f) for f in FEEDS]
    restart(hub_site)
    assert hub_site.build().changed_feeds == []
    assert pending(hub_site) == [(HUB, f) for f in FEEDS]


def test_a_crash_at_the_rename_announces_the_new_version_once(hub_site: Site,
                                                              monkeypatch) -> None:
    """atom.xml's rename dies: its ping is held (no hub may fetch a file not in place),
    then sent once the next pass puts the recorded version in place."""
    def die(path: Path) -> None:
        if path == hub_site.out / "atom.xml":
            raise Crash

    monkeypatch.setattr(output, "before_rename", die)
    with pytest.raises(Crash):
        hub_site.build()
    assert pending(hub_site) == []  # held: atom.xml still has the old version
    assert not list(hub_site.out.glob(".*.tmp"))
    monkeypatch.undo()
    restart(hub_site)
    report = hub_site.build()
    assert "atom.xml" in report.written and report.changed_feeds == []
    assert b"Second article" in hub_site.read("atom.xml")
    assert pending(hub_site) == [(HUB, f) for f in FEEDS]


def test_a_named_pass_whose_feed_rename_fails_holds_its_pings(hub_site: Site,
                                                              monkeypatch) -> None:
    """The same in a pass of one named seed, whose feeds are renamed on a thread of their
    own while the archive page and sitemap render: the error is raised by the pass, and
    the pings stay held (atom.xml still has the old version: a hub pinged now would fetch
    it), until the next pass puts the recorded version in place."""
    def die(path: Path) -> None:
        if path == hub_site.out / "atom.xml":
            raise Crash

    monkeypatch.setattr(output, "before_rename", die)
    with pytest.raises(Crash):
        hub_site.build({"002_b.txt"})
    assert b"Second article" not in hub_site.read("atom.xml")
    assert pending(hub_site) == []
    assert not list(hub_site.out.rglob(".*.tmp"))
    monkeypatch.undo()
    restart(hub_site)
    hub_site.build({"002_b.txt"})
    assert b"Second article" in hub_site.read("atom.xml")
    assert pending(hub_site) == [(HUB, f) for f in FEEDS]


def test_an_identical_rebuild_or_a_lost_feed_announces_nothing(hub_site: Site) -> None:
    hub_site.build()
    with PingStore(hub_site.config.state) as pings:
        for p in pings.pending_pings():
            pings.ping_done(p.hub, p.topic)
    (hub_site.out / "atom.xml").unlink()
    report = hub_site.build()
    assert report.written == ["atom.xml"] and report.changed_feeds == []
    restart(hub_site)
    hub_site.build()
    assert pending(hub_site) == []


def test_pings_are_released_only_once_the_renamed_feeds_folders_are_synced(
        hub_site: Site, monkeypatch) -> None:
    """A pass of named changes syncs its feeds' folders with its archive pages' (one round):
    the feeds' pings are let go only after an fsync of each folder a feed was renamed into."""
    events: list[tuple[str, Path]] = []
    real_fsync, real_release = output.fsync, hub_site.store.release_pings

    def fsync(path: Path) -> None:
        real_fsync(path)
        events.append(("synced", Path(path)))

    def release(keep: list[str]) -> int:
        events.append(("released", hub_site.out))
        return real_release(keep=keep)

    monkeypatch.setattr(output, "before_rename", lambda path: events.append(("renamed", path)))
    monkeypatch.setattr(output, "fsync", fsync)
    monkeypatch.setattr(hub_site.store, "release_pings", release)
    report = hub_site.build({"002_b.txt"})
    assert sorted(report.changed_feeds) == ALL_FEEDS
    released = events.index(("released", hub_site.out))
    for feed in ALL_FEEDS:
        path = hub_site.out / feed
        renamed = events.index(("renamed", path))
        assert ("synced", path.parent) in events[renamed:released], f"{feed}: folder not synced"
    assert pending(hub_site) == [(HUB, f) for f in FEEDS]


def test_a_pass_whose_archive_pages_fail_still_lets_its_feeds_pings_go(
        hub_site: Site, monkeypatch) -> None:
    """The feeds are in place before the archive pages and the sitemap are written: an
    error there does not hold their pings back."""

    def broken(*args: object, **kw: object) -> None:
        raise Crash

    monkeypatch.setattr(site, "write", broken)
    with pytest.raises(Crash):
        hub_site.build({"002_b.txt"})
    assert b"Second article" in hub_site.read("atom.xml")
    assert pending(hub_site) == [(HUB, f) for f in FEEDS]


# -- feeder build, a real process, and a real hub ---------------------------------------------

class CountingHub:
    """An ASGI hub that answers 202 and keeps the form of each POST."""

    def __init__(self) -> None:
        self.posts: list[bytes] = []
        self.status = 202

    async def __call__(self, scope: dict, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and self.status == 202:
            self.posts.append(body)
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def topics(self) -> list[str]:
        """The topics pinged, as paths under the base URL."""
        return sorted(urlsplit(parse_qs(p.decode())["hub.topic"][0]).path[1:]
                      for p in self.posts)


@pytest.fixture
def counting_hub() -> Iterator[tuple[str, CountingHub]]:
    hub = CountingHub()
    with serve_in_thread(hub) as url:
        yield url + "/hub", hub


def build(root: Path, hub: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**feeder_env(), "FEEDER_HUBS": hub, "FEEDER_PING_BACKOFF": "0.2"}
    return subprocess.run([sys.executable, "-m", "feeder", "build", *args], cwd=root, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60, check=False)


@pytest.mark.slow
def test_feeder_build_pings_the_hub_once_per_new_version(
        tmp_path: Path, counting_hub: tuple[str, CountingHub]) -> None:
    url, hub = counting_hub
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "001_a.txt").write_bytes(b" date 2025-01-02 Hello world. Text.")
    first = build(tmp_path, url, "--no-ping")
    assert first.returncode == 0, first.stderr
    assert hub.posts == []
    second = build(tmp_path, url)  # nothing changed: sends what --no-ping left
    assert second.returncode == 0, second.stderr
    assert hub.topics() == ALL_FEEDS
    third = build(tmp_path, url)
    assert third.returncode == 0, third.stderr
    assert len(hub.posts) == 6  # an identical rebuild announces nothing
    (tmp_path / "seeds" / "002_b.txt").write_bytes(b" date 2025-01-03 Another one. Text.")
    fourth = build(tmp_path, url)
    assert fourth.returncode == 0, fourth.stderr
    assert hub.topics() == sorted(ALL_FEEDS * 2)


@pytest.mark.slow
def test_what_feeder_build_could_not_deliver_feeder_run_delivers(
        tmp_path: Path, counting_hub: tuple[str, CountingHub], daemon_factory) -> None:  # noqa: ANN001
    url, hub = counting_hub
    d: FeederDaemon = daemon_factory(hubs=[url], config={"websub": {"ping_backoff": 0.2}})
    d.write_seed("2025-01-02", "Hello world. Text.")
    hub.status = 503
    result = build(d.root, url, "--seeds", str(d.seeds), "--out", str(d.out),
                   "--state", str(d.state), "--base-url", d.base_url)
    assert result.returncode == 0, result.stderr
    assert "6 pings not delivered yet" in result.stdout
    hub.status = 202
    d.start()
    d.wait_until(lambda: len(hub.posts) >= 6, what="the build's pings")
    assert hub.topics() == ALL_FEEDS
    assert d.pending() == []
