"""Shared fixtures: a temporary site (seeds, output, state) and a seed writer; daemons."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from feeder import config as config_mod
from feeder.builder import Builder, BuildReport
from feeder.store import Store

from ._daemon import REPO, FeederDaemon, seed_bytes

# The user's own article, byte for byte as delivered (also in seeds/).
REAL_SEED = REPO / "tests" / "data" / "000_d53b54a01c1a6f6f.txt"


@pytest.fixture(scope="session", autouse=True)
def language_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The unpacked language model (``feeder/language.py``) goes to one temp folder for the
    session, and the daemons started by tests inherit it, instead of the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(folder))
    yield folder
    patch.undo()


class Site:
    """A seeds folder, an output folder and a state file under tmp_path, built in-process."""

    def __init__(self, root: Path, **settings: object) -> None:
        self.root = root
        self.seeds = root / "seeds"
        self.out = root / "public"
        self.seeds.mkdir(parents=True, exist_ok=True)
        settings.setdefault("base_url", "http://127.0.0.1:8080/")
        self.config = config_mod.load(None, env={}, seeds=self.seeds, out=self.out,
                                      state=root / "state.sqlite3", **settings)
        self.store = Store(self.config.state)
        self.now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)

    def clock(self) -> dt.datetime:
        return self.now

    def write(self, name: str, date: str = "2025-12-28", body: str = "Hello world. More.") -> Path:
        path = self.seeds / name
        path.write_bytes(seed_bytes(date, body))
        return path

    def builder(self, **kw: object) -> Builder:
        return Builder(self.config, self.store, clock=self.clock, progress=False, **kw)

    def build(self, names: set[str] | None = None, force: bool = False) -> BuildReport:
        return self.builder().build(names, force=force)

    def read(self, rel: str) -> bytes:
        return (self.out / rel).read_bytes()

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(**settings: object) -> Site:
        s = Site(tmp_path / f"site{len(sites)}", **settings)
        sites.append(s)
        return s

    yield make
    for s in sites:
        s.close()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., FeederDaemon]]:
    """Make FeederDaemon objects (not started), under tmp_path unless given a root; every one
    still running at the end is stopped with SIGTERM and must exit 0 within 5 s."""
    made: list[FeederDaemon] = []

    def make(root: Path | None = None, **kwargs: Any) -> FeederDaemon:
        kwargs.setdefault("name", f"daemon{len(made)}")
        d = FeederDaemon(root or tmp_path, **kwargs)
        made.append(d)
        return d

    yield make
    try:
        for d in made:
            d.stop()
    finally:
        for d in made:
            d.kill()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves non-daemon threads running (as watchdog's own suite does)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate()
              if t not in before and t.is_alive() and not t.daemon]
    for t in leaked:
        t.join(timeout=5)
    leaked = [t for t in leaked if t.is_alive()]
    assert not leaked, f"leaked threads: {leaked}"
