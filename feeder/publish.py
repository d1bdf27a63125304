"""Store -> output folder: the entry pages, feeds, index and archive pages that changed.

The last stage of a pass (after ``folder.py`` and ``sync.py``). The store says what to
write: the entry pages it marked stale, the archive pages it marked dirty, and the newest
``max_entries`` entries for the feeds and the index. Outputs whose bytes would not change are
not rewritten (``output.py``), and a feed that did change gets a WebSub ping queued at once
(``PingStore``), so that a later failure in the pass cannot lose it. A full pass also looks
at the folders on disk: it writes the pages that are missing and removes entry pages no
entry owns.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from . import __version__, output, render
from .config import Config
from .errors import OutputError
from .normalizer import Entry
from .pool import Pool, chunks
from .report import BuildCancelled, BuildReport
from .store import PingStore, Store

log = logging.getLogger("feeder")

PAGE_CHUNK = 200  # entry pages sent to a worker at a time
STREAM_FROM = 400  # pages to write from which all entries are streamed, not looked up each


def render_key(config: Config) -> str:
    """Changes when a setting that shapes every output changes: then all are rendered again."""
    c = config
    parts = (__version__, c.title, c.subtitle, c.author, c.base_url, c.language,
             c.tag_authority, c.tag_date, c.max_entries, c.archive_size, c.hubs)
    return hashlib.sha1(repr(parts).encode()).hexdigest()


# -- writing pages (runs in the worker processes too) --------------------------------------

def write_entry_page(info: render.FeedInfo, out: Path, entry: Entry) -> bool:
    """Render and write one entry page; True if its bytes changed."""
    # No .gz sibling: the servers compress an entry page on demand, once per version.
    return output.write(out / render.entry_path(entry), render.render_entry_page(info, entry),
                        compress=False)


def write_entry_pages(info: render.FeedInfo, out: Path, entries: list[Entry]) -> list[str]:
    return [render.entry_path(e) for e in entries if write_entry_page(info, out, e)]


def write_archive_page(info: render.FeedInfo, out: Path, n: int, pages: int,
                       entries: list[Entry]) -> list[str]:
    """Render archive page ``n`` of ``pages`` (entries oldest first) as Atom and RSS."""
    entries = entries[::-1]  # newest first within the page, like the current feed
    written = []
    for kind, fn in (("atom", render.render_atom), ("rss", render.render_rss)):
        current = "atom.xml" if kind == "atom" else "rss.xml"
        links = render.Archive(
            prev=render.archive_path(kind, n - 1) if n > 1 else None,
            next=render.archive_path(kind, n + 1) if n < pages else None,
            current=current, is_archive=True,
        )
        path = render.archive_path(kind, n)
        # No .gz sibling: archive pages change rarely and are fetched rarely.
        if output.write(out / path, fn(info, entries, self_path=path, archive=links),
                        compress=False):
            written.append(path)
    return written


def _render_job(job: tuple) -> tuple[int, list[str]]:
    """(units done for the progress bar, paths written)"""
    kind, info, out, payload = job
    if kind == "pages":
        return len(payload), write_entry_pages(info, out, payload)
    return 1, write_archive_page(info, out, *payload)


# -- publishing ----------------------------------------------------------------------------

class Publisher:
    """Writes what the store says changed, one ``run`` per pass. With ``pings``, a WebSub
    ping is queued for each feed whose bytes changed."""

    def __init__(self, config: Config, store: Store, *, clock: Callable[[], dt.datetime],
                 pool: Pool, cancel: threading.Event, pings: PingStore | None = None) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.pool, self.cancel, self.pings = pool, cancel, pings

    def run(self, report: BuildReport, *, full: bool, force: bool = False) -> None:
        """Write the changed outputs; a ``full`` pass also restores missing pages and removes
        stray ones; ``force`` renders every output again."""
        c, out, now = self.config, self.config.out, self.clock()
        key = render_key(c)
        force = force or self.store.get_meta("render_key") != key
        visible = self.store.count(now)
        newest = self.store.newest(c.max_entries, now)
        pages = self._assign_pages(newest, now, force=force, full=full)
        info = render.FeedInfo.from_config(c, archive_count=pages)
        names = self._entry_pages(report, info, now, force=force, full=full)
        self._feeds(report, info, newest, pages)
        # archive pages (RFC 5005) whose entries or links changed
        dirty = self.store.dirty_pages()
        todo = [n for n in dirty if n <= pages]
        jobs = (("archive", info, out, (n, pages, self.store.page_entries(n))) for n in todo)
        self._render_all(report, jobs, len(todo), len(todo) * c.archive_size,
                         "archive", "writing archives")
        with self.store.transaction():
            self.store.clear_pages(dirty)
            self.store.set_meta("render_key", key)
            self.store.pages_written(names)
        report.entries = visible
        report.scheduled = self.store.scheduled(now)

    def _entry_pages(self, report: BuildReport, info: render.FeedInfo, now: dt.datetime, *,
                     force: bool, full: bool) -> set[str]:
        """Write the stale entry pages (and, on a full pass, the missing ones), remove those
        of removed entries; return the names of the entries whose page was written."""
        out = self.config.out
        for slug in self.store.gone_pages():
            self._remove(report, f"entries/{slug}.html")
        with self.store.transaction():
            self.store.pages_removed()
        # A scheduled (future-dated) entry gets its page when it is published, not before.
        names = set()
        for name, due in self.store.stale_pages(now):
            if due:
                names.add(name)
                continue
            entry = self.store.entry_by_name(name)
            if entry is not None:
                self._remove(report, render.entry_path(entry))
        if full:
            names |= self._check_entry_folder(report, now, force)
        if force or len(names) >= STREAM_FROM:
            todo: Iterable[Entry] = (e for name, e in self.store.iter_named_entries()
                                     if (force and e.published <= now) or name in names)
        else:
            todo = filter(None, map(self.store.entry_by_name, sorted(names)))
        count = self.store.total() if force else len(names)
        jobs = (("pages", info, out, chunk) for chunk in chunks(todo, PAGE_CHUNK))
        self._render_all(report, jobs, count, count, "page", "writing pages")
        return names

    def _feeds(self, report: BuildReport, info: render.FeedInfo, newest: list[Entry],
               pages: int) -> None:
        """The current feeds and the index; queues a ping for each feed that changed."""
        c, out = self.config, self.config.out
        archive = render.Archive(prev=render.archive_path("atom", pages) if pages else None)
        rss_archive = render.Archive(prev=render.archive_path("rss", pages) if pages else None)
        renders = (
            ("atom.xml", lambda: render.render_atom(info, newest, archive=archive)),
            ("rss.xml", lambda: render.render_rss(info, newest, archive=rss_archive)),
            ("feed.json", lambda: render.render_json(info, newest)),
        )
        # zlib and fsync let go of the GIL: each changed feed is compressed and written (two
        # fsyncs) in a thread while the next feed renders, and the feeds' fsyncs overlap, so
        # a busy disk delays a one-seed pass by about one fsync rather than six
        with concurrent.futures.ThreadPoolExecutor(len(renders)) as writer:
            changed = []
            try:
                for path, make in renders:
                    data = make()
                    if not output.unchanged(out / path, data):
                        changed.append((path, writer.submit(output.write, out / path, data,
                                                            durable=True, check=False)))
            finally:  # a feed written before a failure gets its ping all the same
                failure = None
                for path, written in changed:
                    if written.exception() is not None:
                        failure = failure or written.exception()
                        continue
                    report.written.append(path)
                    report.changed_feeds.append(path)
                    if self.pings is not None and c.hubs:  # now: a later failure cannot lose it
                        self.pings.add_pings(c.hubs, [c.base_url + path], time.time())
                if failure is not None:
                    raise failure
        if output.write(out / "index.html", render.render_index(info, newest)):
            report.written.append("index.html")

    def _remove(self, report: BuildReport, path: str) -> None:
        if output.remove(self.config.out / path):
            report.deleted_outputs.append(path)

    def _check_entry_folder(self, report: BuildReport, now: dt.datetime,
                            force: bool) -> set[str]:
        """A full pass looks at the entries folder: returns the names of published entries
        whose page is missing (none when ``force`` renders them all anyway), and removes the
        pages no published entry owns, such as those of seeds that went away after a pass
        stopped between a worker writing their page and the store taking their entry."""
        existing = _listdir(self.config.out / "entries")
        published = self.store.slugs_by_name(now)
        owned = {f"{slug}.html" for _name, slug in published}
        for file in sorted(existing):
            page = file[:-3] if file.endswith(".html.gz") else file
            if file[0] == "." or not page.endswith(".html") or page in owned:
                continue
            try:
                self._remove(report, f"entries/{file}")
            except OutputError as exc:  # a folder named x.html, say: not worth a failure
                log.warning("cannot remove stray entries/%s: %s", file, exc.reason)
            else:
                log.info("removed entries/%s: no entry of that name", file)
        if force:
            return set()
        return {name for name, slug in published if f"{slug}.html" not in existing}

    def _assign_pages(self, newest: list[Entry], now: dt.datetime, *, force: bool,
                      full: bool) -> int:
        """Give every published entry outside the current feeds an archive page; mark the
        pages to render (on a ``full`` pass, also those missing on disk); return how many
        pages there are.

        Entries go to the newest page, oldest first, in the order they leave the current
        feeds; a page is closed once it holds ``archive_size`` entries. So a new article
        touches only the newest page, a full page changes only when one of its own entries
        is edited or deleted, and a deletion never shifts other pages.
        """
        c, store = self.config, self.store
        with store.transaction():
            old_pages = int(store.get_meta("archive_pages", 0) or 0)
            current = {e.id for e in newest}
            store.unarchive(current)
            store.unarchive_scheduled(now)
            page, held = store.last_page()
            placed: list[tuple[int, str]] = []
            for id_ in store.unpaged(now):
                if id_ in current:
                    continue
                if page == 0 or held >= c.archive_size:
                    if page:
                        store.mark_pages([page])  # it gains a next-archive link
                    page, held = page + 1, 0
                placed.append((page, id_))
                held += 1
            store.put_in_pages(placed)
            pages, _held = store.last_page()
            out = c.out
            if force:
                store.mark_pages(range(1, pages + 1))
            elif full:
                present = {f"archive/{name}" for name in _listdir(out / "archive")}
                store.mark_pages(n for n in range(1, pages + 1)
                                 if render.archive_path("atom", n) not in present
                                 or render.archive_path("rss", n) not in present)
            if pages != old_pages and pages:
                store.mark_pages([pages, min(pages, old_pages) or pages])  # links change
            store.set_meta("archive_pages", pages)
        for n in range(pages + 1, old_pages + 1):  # pages left empty at the end
            for kind in ("atom", "rss"):
                output.remove(out / render.archive_path(kind, n))
        return pages

    def _render_all(self, report: BuildReport, jobs: Iterable[tuple], count: int,
                    weight: int, unit: str, desc: str) -> None:
        """Run render jobs (``count`` units for the progress bar, ``weight`` entries in all),
        in the pool when there are many. Only a few jobs are in flight at a time, so the
        entries are streamed from the store, not all held."""
        bar = self.pool.progress(weight, count, unit, desc)
        for done, written in self.pool.map(_render_job, jobs, weight=weight):
            if bar is not None:
                bar.update(done)
            report.written.extend(written)
            if self.cancel.is_set():  # stopping: what is not written stays marked in the store
                raise BuildCancelled
        if bar is not None:
            bar.close()


def _listdir(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()
