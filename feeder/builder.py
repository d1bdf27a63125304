"""One pass from the seeds folder to the output folder: folder -> sync -> publish.

``feeder build`` runs it once over the whole folder; ``feeder run`` runs it for the names the
watcher reports (and over the whole folder at start and on each rescan). Work is
proportional to what changed: unchanged seeds are only stat'ed (``folder.py``), only changed
ones are read into the store (``sync.py``), unchanged outputs are not rewritten, and archive
pages are re-rendered only from the first page a change touches (``publish.py``). Big passes
run in worker processes (``pool.py``). Before its first pass a builder pins the ids' tag
authority and date, recovering a lost state from the output first (``recover.py``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable

from . import recover
from .config import Config
from .folder import Folder
from .normalizer import Rules
from .pool import POOL_THRESHOLD, Pool
from .publish import Publisher, render_key
from .report import BuildCancelled, BuildReport, utcnow
from .store import Store
from .sync import Sync

__all__ = ["BuildCancelled", "BuildReport", "Builder", "utcnow"]

log = logging.getLogger("feeder")


class Builder:
    """Runs passes over one seeds folder, output folder and store.

    ``busy`` (the watcher's: the files being written) and ``settle`` decide when a file is
    ready to be read (see ``Folder``). ``cancel`` stops a pass at its next batch
    (``BuildCancelled``). ``allow_mass_delete`` confirms a mass deletion the guard would hold
    (``sync.py``).
    """

    def __init__(self, config: Config, store: Store, *,
                 clock: Callable[[], dt.datetime] = utcnow, progress: bool | None = None,
                 busy: Callable[[], set[str]] | None = None, settle: float = 0.0,
                 allow_mass_delete: bool = False) -> None:
        self.config = config
        self.allow_mass_delete = allow_mass_delete
        self.store = store
        self.clock = clock
        self.cancel = threading.Event()
        self.rules = Rules.from_config(config)
        self.folder = Folder(config.seeds, config.extensions, settle=settle, busy=busy)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.pinned: Config | None = None  # config with the pinned tag authority and date
        self.on_feeds: Callable[[], None] | None = None  # each pass's new feeds are in place
        # the outputs full passes found as written, by their stat (``publish._holds``): a
        # rescan reads again only those that changed since
        self.checked: set[int] = set()

    def build(self, names: Iterable[str] | None = None, force: bool = False) -> BuildReport:
        """Sync ``names`` (or the whole folder) into the store, then publish what changed;
        returns what happened."""
        t0 = time.perf_counter()
        report = BuildReport(started=self.clock())
        self.config.out.mkdir(parents=True, exist_ok=True)
        # a first build's child (apart.py) killed in its bulk load left the deferred indexes
        # and triggers dropped: a pass here would record entries without their rows of
        # places, stale pages and languages
        self.store.finish_bulk_load()
        with Pool(progress=self.progress) as pool:
            if names is None and self.first_big_pass():
                pool.warm()  # every seed will be read in the workers
            pinned = self._pin()
            if self.store.get_meta("render_key") is None and self.store.total() == 0:
                # A first build: pages written from now on follow the current settings, so
                # publishing need not render all of them again.
                with self.store.transaction():
                    self.store.set_meta("render_key", render_key(pinned))
            self._note_base_url()
            t1 = time.perf_counter()
            self._sync(pool).run(report, names)
            t2 = time.perf_counter()
            self._publisher(pool).run(report, full=names is None, force=force)
            log.debug("pass: %.3f s to start, %.3f s reading seeds into the store, %.3f s "
                      "publishing", t1 - t0, t2 - t1, time.perf_counter() - t2)
        if self.store.get_meta("base_url") != self.config.base_url:
            with self.store.transaction():
                self.store.set_meta("base_url", self.config.base_url)
        report.seconds = time.perf_counter() - t0
        return report

    def sync(self) -> BuildReport:
        """Read the whole folder into the store and write no output (``feeder check``)."""
        report = BuildReport(started=self.clock())
        with Pool(progress=self.progress) as pool:
            self._sync(pool).run(report)
        return report

    def _pin(self) -> Config:
        """Once per builder (each start, each reload): recover a lost state from the output,
        pin the tag authority and date, and warn about a loopback one."""
        if self.pinned is None:
            if recover.needed(self.config, self.store):
                recover.recover(self.config, self.store)
            self.pinned = recover.pin(self.config, self.store)
            recover.warn_loopback(self.pinned)
        return self.pinned

    def first_big_pass(self) -> bool:
        """An empty store and a seeds folder of at least ``POOL_THRESHOLD`` files?"""
        if self.store.total():
            return False
        try:
            with os.scandir(self.config.seeds) as it:
                return sum(1 for _ in itertools.islice(it, POOL_THRESHOLD)) >= POOL_THRESHOLD
        except OSError:
            return False

    def _note_base_url(self) -> None:
        """Say so, in one line, when the output was built with another base URL: every
        output is rendered again (``render_key`` holds it), which takes a while."""
        old, new = self.store.get_meta("base_url"), self.config.base_url
        if old is not None and old != new:
            log.warning("base_url is %s, but the output was built with %s: rendering every "
                        "output again with the new URLs (set base_url in the config to keep "
                        "one; feeder build without one reuses the stored URL)", new, old)

    def _sync(self, pool: Pool) -> Sync:
        c = self.pinned or self.config  # ``feeder check`` pins nothing
        rules = Rules.from_config(c) if c is not self.config else self.rules
        return Sync(c, self.store, self.folder, rules, clock=self.clock, pool=pool,
                    cancel=self.cancel, allow_mass_delete=self.allow_mass_delete)

    def _publisher(self, pool: Pool) -> Publisher:
        return Publisher(self.pinned or self.config, self.store, clock=self.clock, pool=pool,
                         cancel=self.cancel, on_feeds=self.on_feeds, checked=self.checked)
