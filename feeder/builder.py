"""One pass from the seeds folder to the output folder: folder -> sync -> publish.

``feeder build`` runs it once over the whole folder; ``feeder run`` runs it for the names the
watcher reports (and over the whole folder at start and on each rescan). Work is
proportional to what changed: unchanged seeds are only stat'ed (``folder.py``), only changed
ones are read into the store (``sync.py``), unchanged outputs are not rewritten, and archive
pages are re-rendered only from the first page a change touches (``publish.py``). Big passes
run in worker processes (``pool.py``).
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Callable, Iterable

from .config import Config
from .folder import Folder
from .normalizer import Rules
from .pool import Pool
from .publish import Publisher, render_key
from .report import BuildCancelled, BuildReport, utcnow
from .store import PingStore, Store
from .sync import Sync

__all__ = ["BuildCancelled", "BuildReport", "Builder", "utcnow"]


class Builder:
    """Runs passes over one seeds folder, output folder and store.

    ``busy`` (the watcher's: the files being written) and ``settle`` decide when a file is
    ready to be read (see ``Folder``). With ``pings``, publishing queues a WebSub ping for
    each feed it changes. ``cancel`` stops a pass at its next batch (``BuildCancelled``).
    """

    def __init__(self, config: Config, store: Store, *,
                 clock: Callable[[], dt.datetime] = utcnow, progress: bool | None = None,
                 busy: Callable[[], set[str]] | None = None, settle: float = 0.0,
                 pings: PingStore | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.pings = pings
        self.cancel = threading.Event()
        self.rules = Rules.from_config(config)
        self.folder = Folder(config.seeds, config.extensions, settle=settle, busy=busy)
        self.progress = sys.stderr.isatty() if progress is None else progress

    def build(self, names: Iterable[str] | None = None, force: bool = False) -> BuildReport:
        """Sync ``names`` (or the whole folder) into the store, then publish what changed;
        returns what happened."""
        t0 = time.perf_counter()
        report = BuildReport(started=self.clock())
        self.config.out.mkdir(parents=True, exist_ok=True)
        if self.store.get_meta("render_key") is None and self.store.total() == 0:
            # A first build: pages written from now on follow the current settings, so
            # publishing need not render all of them again.
            with self.store.transaction():
                self.store.set_meta("render_key", render_key(self.config))
        with Pool(progress=self.progress) as pool:
            # No entry page as a seed is read: a page links its neighbours in publishing
            # order, known only once the store has every seed of the pass.
            self._sync(pool).run(report, names, write_pages=False)
            self._publisher(pool).run(report, full=names is None, force=force)
        report.seconds = time.perf_counter() - t0
        return report

    def sync(self) -> BuildReport:
        """Read the whole folder into the store and write no output (``feeder check``)."""
        report = BuildReport(started=self.clock())
        with Pool(progress=self.progress) as pool:
            self._sync(pool).run(report, write_pages=False)
        return report

    def _sync(self, pool: Pool) -> Sync:
        return Sync(self.config, self.store, self.folder, self.rules, clock=self.clock,
                    pool=pool, cancel=self.cancel)

    def _publisher(self, pool: Pool) -> Publisher:
        return Publisher(self.config, self.store, clock=self.clock, pool=pool,
                         cancel=self.cancel, pings=self.pings)
