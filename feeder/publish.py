"""Store -> output folder: the entry pages, feeds, index and archive pages that changed.

The last stage of a pass (after ``folder.py`` and ``sync.py``). The store says what to
write: the entry pages it marked stale, the archive pages it marked dirty, and the newest
``max_entries`` entries for the feeds and the index. Outputs whose bytes would not change are
not rewritten (``output.py``). A feed whose bytes are new has its version and its WebSub
pings recorded in the store in one transaction before the file is renamed into place (the
outbox, sent by ``websub.Pinger``), so a crash can neither lose a ping nor send one twice.
The store keeps every output's content hash: a full pass also looks at the folders on
disk, writes the pages that are missing, empty or not as written, and removes entry pages
no entry owns. Each feed and archive document is kept under ``max_feed_bytes``
(``render.fit``); the log names the entries shortened in each document written.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import itertools
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from . import __version__, langfeeds, output, render, site
from .config import Config
from .errors import OutputError
from .normalizer import Entry
from .pool import POOL_THRESHOLD, Pool, chunks, give_back_heap, let_go_of_reading
from .report import BuildCancelled, BuildReport
from .store import Source, Store, Unreadable, entries_named, page_entries, reader, sitemap_rows

log = logging.getLogger("feeder")

PAGE_CHUNK = 200  # entry pages sent to a worker at a time
# Entry pages from which a chunk is written as two batches, the first committed while the
# second renders (``write_entry_pages``); fewer go in one batch.
PIPELINE_PAGES = 50
PIPELINE_ARCHIVES = 4  # the same for a chunk of archive pages (3 files each)
# A full pass's listing of entries/ goes with each job of entry pages up to this many names
# (a cold build's is empty): the pages and .gz siblings not in it are known absent, and not
# looked up (``output.Batch.write``'s ``absent``). A bigger listing, of a site whose pages
# are mostly there, is not sent: those few lookups are not worth it.
LISTING_SENT = 2000
ARCHIVE_CHUNK = 4  # archive pages (3 files each, one flush) sent to a worker at a time
# ...or named to it, when it reads their entries itself (one page's at a time): nothing of
# them is in flight, and each job's one flush (syncfs) covers 48 files, not 12 (at 100k
# seeds, 125 flushes instead of 500)
STORED_ARCHIVE_CHUNK = 16
STREAM_FROM = 400  # pages to write from which all entries are streamed, not looked up each
# Output hashes held before they are recorded in the store, in a big pass: a cold build of
# 100,000 seeds would hold ~30 MB of them until its end.
RECORD_EVERY = 5000
# A page checked by its hash is trusted again, by its stat, only once its last change (ctime)
# is this old: a change within the file system's timestamp granularity of the check could
# leave the stat as it was (git's "racily clean" files).
SETTLED_NS = 2_000_000_000


def render_key(config: Config) -> str:
    """Changes when a setting that shapes every output changes: then all are rendered again."""
    c = config
    parts = (__version__, render.LAYOUT, c.title, c.subtitle, c.author, c.base_url, c.language,
             c.tag_authority, c.tag_date, c.max_entries, c.archive_size, c.hubs,
             c.max_feed_bytes)
    return hashlib.sha1(repr(parts).encode()).hexdigest()


# -- writing pages (runs in the worker processes too) --------------------------------------

Hashes = list[tuple[str, str]]  # (output path, sha256 of its bytes), for the store
Paged = tuple[Entry, render.Neighbour | None, render.Neighbour | None]
Listing = frozenset[str] | None  # the names in entries/ at a full pass's start, if known


def write_entry_page(info: render.FeedInfo, out: Path, entry: Entry,
                     prev: render.Neighbour | None = None,
                     next: render.Neighbour | None = None,  # noqa: A002
                     batch: output.Batch | None = None) -> bool:
    """Render and write one entry page (staged in ``batch`` if given); True if its bytes
    changed."""
    # No .gz sibling: the servers compress an entry page on demand, once per version.
    data = render.render_entry_page(info, entry, prev, next)
    if batch is None:
        return output.write(out / render.entry_path(entry), data, compress=False)
    return batch.write(out / render.entry_path(entry), data, compress=False)


def _absent(listing: Listing, path: str) -> bool:
    """Was neither entry page ``path`` nor its .gz sibling in ``listing`` (of entries/)?"""
    if listing is None:
        return False
    name = path[len("entries/"):]
    return name not in listing and f"{name}.gz" not in listing


def _batch(batch: output.Batch | None) -> contextlib.AbstractContextManager[output.Batch]:
    """``batch`` to stage in (its owner commits it), or a batch of one's own."""
    return output.Batch() if batch is None else contextlib.nullcontext(batch)


def hashes_of(out: Path, batch: output.Batch, only: set[Path] | None = None) -> Hashes:
    """``batch``'s hashes (of the paths in ``only``, when given), by path relative to
    ``out``."""
    cut = len(str(out)) + 1
    return [(str(path)[cut:], digest) for path, digest in batch.hashes.items()
            if only is None or path in only]


def write_entry_pages(info: render.FeedInfo, out: Path, items: list[Paged],
                      batch: output.Batch | None = None,
                      listing: Listing = None) -> tuple[list[str], Hashes]:
    """(entry, the entry before, the entry after), written as one batch (or staged in
    ``batch``) -> the paths of the pages whose bytes changed, and every page's hash, as
    ``write_entry_page`` writes them. ``listing``: the names in ``entries/`` at the pass's
    start, if known (a page that was not there, nor its .gz sibling, is not looked for)."""
    paths = [render.entry_path(e) for e, _p, _n in items]  # one string each: pickled once
    written: list[str] = []
    hashes: Hashes = []

    def stage(batch: output.Batch, lo: int, hi: int) -> None:
        for path, (e, prev, next_) in zip(paths[lo:hi], items[lo:hi], strict=True):
            full = out / path  # made and hashed once (3 us a page)
            data = render.render_entry_page(info, e, prev, next_)  # no .gz: as above
            if batch.write(full, data, compress=False, absent=_absent(listing, path)):
                written.append(path)
            hashes.append((path, batch.hashes[full]))

    if batch is not None or len(items) < 2 * PIPELINE_PAGES:
        with _batch(batch) as batch:
            stage(batch, 0, len(items))
        return written, hashes
    half = len(items) // 2
    _in_two_batches(lambda b: stage(b, 0, half), lambda b: stage(b, half, len(items)))
    return written, hashes


def fit_notes(fits: dict[str, render.Fitted], limit: int) -> list[tuple[int, str]]:
    """Log lines (level, message) for written documents kept under ``limit``: one line per
    set of shortened entries, naming the documents and the entries; a warning for each
    document still over the limit."""
    shortened: dict[tuple[str, ...], list[str]] = {}
    for path, fitted in fits.items():
        if fitted.brief:
            shortened.setdefault(tuple(e.stem for e in fitted.brief), []).append(path)
    notes = [(logging.INFO, f"{', '.join(paths)}: {len(stems)} largest "
                            f"{'entry carries' if len(stems) == 1 else 'entries carry'} a "
                            f"summary and link instead of the content, to stay under "
                            f"max_feed_bytes ({limit}): {', '.join(stems)}")
             for stems, paths in shortened.items()]
    notes += [(logging.WARNING, f"{path} is {len(fitted.data)} bytes, over max_feed_bytes "
                                f"({limit}) even with {len(fitted.brief)} entries as summary "
                                "and link; lower max_entries or archive_size")
              for path, fitted in fits.items() if fitted.over]
    return notes


def _neighbour(entry: Entry) -> render.Neighbour:
    return render.Neighbour(entry.title, entry.slug, entry.language)


def with_neighbours(rows: Iterable[tuple[str, Entry]], now: dt.datetime,
                    wanted: Callable[[str, str | None, str | None], bool]) -> Iterator[Paged]:
    """From (name, entry) in (published, name) order: each published entry for which
    ``wanted(name, name before, name after)`` holds, with the published entries just before
    and after it."""
    before: tuple[str, Entry] | None = None
    held: tuple[str, Entry] | None = None

    def paged(after: tuple[str, Entry] | None) -> Iterator[Paged]:
        if held is not None and wanted(held[0], before and before[0], after and after[0]):
            yield (held[1], before and _neighbour(before[1]),
                   after and _neighbour(after[1]))

    for name, entry in rows:
        if entry.published > now:  # the scheduled ones come last
            break
        yield from paged((name, entry))
        before, held = held, (name, entry)
    yield from paged(None)


def named_neighbours(names: Iterable[str], wanted: Callable[[str, str | None, str | None], bool],
                     ) -> Iterator[tuple[str, str | None, str | None]]:
    """``with_neighbours`` by name: from the names of the published entries in (published,
    name) order, (name, name before, name after) of each for which ``wanted`` holds."""
    before: str | None = None
    held: str | None = None
    for name in names:
        if held is not None and wanted(held, before, name):
            yield held, before, name
        before, held = held, name
    if held is not None and wanted(held, before, None):
        yield held, before, None


def stored_pages(db: sqlite3.Connection, items: list[tuple[str, str | None, str | None]],
                 ) -> list[Paged]:
    """``named_neighbours`` items as ``Paged``, their entries read from the store ``db``
    (a worker's ``reader``)."""
    named = entries_named(db, {n for item in items for n in item if n is not None})
    return [(named[name], before and _neighbour(named[before]),
             after and _neighbour(named[after])) for name, before, after in items]


def write_archive_pages(info: render.FeedInfo, out: Path,
                        items: Iterable[tuple[int, int, list[Entry]]], count: int = 0,
                        ) -> tuple[list[str], Hashes, list[tuple[int, str]]]:
    """Archive pages (page number, page count, entries oldest first), written as one batch
    (one flush to disk for all, not one per file); return the paths written, the hashes of
    all documents and the log lines of ``fit_notes`` (for the parent process to log).
    ``count``: how many pages ``items`` holds, if known; from ``2 * PIPELINE_ARCHIVES``,
    two batches, the first committed while the second renders (as ``write_entry_pages``)."""
    written: list[str] = []
    fits: dict[str, render.Fitted] = {}
    items = iter(items)

    def stage(batch: output.Batch, some: Iterable[tuple[int, int, list[Entry]]]) -> None:
        for n, pages, entries in some:
            written.extend(write_archive_page(info, out, n, pages, entries, batch, fits))

    if count < 2 * PIPELINE_ARCHIVES:
        with output.Batch() as batch:
            stage(batch, items)
        return written, hashes_of(out, batch), fit_notes(fits, info.max_bytes)
    first, second = _in_two_batches(lambda b: stage(b, itertools.islice(items, count // 2)),
                                    lambda b: stage(b, items))
    return (written, hashes_of(out, first) + hashes_of(out, second),
            fit_notes(fits, info.max_bytes))


def _in_two_batches(first_half: Callable[[output.Batch], None],
                    second_half: Callable[[output.Batch], None],
                    ) -> tuple[output.Batch, output.Batch]:
    """A worker's chunk of pages in two batches: the first half staged, then flushed and
    renamed on the committer thread while the second half renders, so that the worker waits
    for the disk once per chunk, not twice. Returns once both are in place; an error of the
    first is raised (with the second's, if any, as its context)."""
    first = output.Batch()
    try:
        first_half(first)
    except BaseException:
        first.abort()
        raise
    committing = first.commit_behind()
    try:
        with output.Batch() as second:
            second_half(second)
    finally:
        committing.result()
    return first, second


def write_archive_page(info: render.FeedInfo, out: Path, n: int, pages: int,
                       entries: list[Entry], batch: output.Batch,
                       fits: dict[str, render.Fitted]) -> list[str]:
    """Render archive page ``n`` of ``pages`` (entries oldest first) as HTML, Atom and RSS
    into ``batch``; return the paths whose bytes changed, and add the written feeds'
    ``render.fit`` results to ``fits`` (for ``fit_notes``: this may run in a worker)."""
    entries = entries[::-1]  # newest first within the page, like the current feed
    written = []
    page = render.archive_page_path(n)
    if batch.write(out / page, render.render_archive_page(info, n, pages, entries),
                   compress=False):
        written.append(page)
    for kind in ("atom", "rss"):
        current = "atom.xml" if kind == "atom" else "rss.xml"
        links = render.Archive(
            prev=render.archive_path(kind, n - 1) if n > 1 else None,
            next=render.archive_path(kind, n + 1) if n < pages else None,
            current=current, is_archive=True,
        )
        path = render.archive_path(kind, n)
        fitted = render.fit(kind, info, entries, self_path=path, archive=links)
        # No .gz sibling: archive pages change rarely and are fetched rarely.
        if batch.write(out / path, fitted.data, compress=False):
            written.append(path)
            fits[path] = fitted
    return written


def _render_job(job: tuple, db: sqlite3.Connection | None = None,
                ) -> tuple[int, list[str], Hashes, list[tuple[int, str]]] | None:
    """(units done for the progress bar, paths written, hashes of the pages, log lines)"""
    let_go_of_reading()
    kind, info, out, payload = job
    if kind == "pages":  # (Paged items, listing)
        items, listing = payload
        return len(items), *write_entry_pages(info, out, items, listing=listing), []
    if kind in ("stored pages", "stored archive"):  # (store, items[, listing]): read here,
        source, items, *listing = payload  # from ``db`` or the worker's reader of ``source``
        try:
            db = db or reader(source)
        except Unreadable:  # not the writer's file at its path now: the writer renders it
            return None
        if kind == "stored pages":  # named_neighbours items
            return len(items), *write_entry_pages(info, out, stored_pages(db, items),
                                                  listing=listing[0]), []
        # (page, count): each page's entries read as it is written, not all of the job's
        return len(items), *write_archive_pages(
            info, out, ((n, pages, page_entries(db, n)) for n, pages in items), len(items))
    return len(payload), *write_archive_pages(info, out, payload, len(payload))


def _sitemap_job(job: tuple) -> site.Rendered | None:
    """A sitemap chunk (``site.render_chunk``), its rows read from the store here; None if
    the state file is not the writer's any more (``Unreadable``): the writer renders it."""
    let_go_of_reading()
    source, base_url, first, final, current, languages = job
    try:
        db = reader(source)
    except Unreadable:
        return None
    return site.render_chunk(base_url, sitemap_rows(db, first, final), current, languages)


# -- publishing ----------------------------------------------------------------------------

_last_render: dict[str, tuple[tuple, object]] = {}  # path -> (inputs, rendered)


def _keys(entries: list[Entry]) -> Iterator[tuple]:
    """What a render depends on of each entry: equal datetimes may be written with other
    offsets."""
    return ((e, *render.moments(e)) for e in entries)


def _rendered(path: str, inputs: tuple, make: Callable[[], object]) -> Any:
    """``make()``, or what it returned last time for ``path`` if ``inputs`` are equal (the
    renderers are pure): a pass that leaves the newest entries alone, such as an edit of an
    old seed, renders no feed. Only the latest render of each path is kept (~1 MB)."""
    last = _last_render.get(path)
    if last is not None and last[0] == inputs:
        return last[1]
    made = make()
    _last_render[path] = (inputs, made)
    return made


class Publisher:
    """Writes what the store says changed, one ``run`` per pass, and keeps each output's
    content hash in the store. With hubs configured, each new version of a feed gets its
    WebSub pings queued in the store (the outbox), sent by ``websub.Pinger``."""

    def __init__(self, config: Config, store: Store, *, clock: Callable[[], dt.datetime],
                 pool: Pool, cancel: threading.Event,
                 on_feeds: Callable[[], None] | None = None,
                 checked: set[int] | None = None) -> None:
        self.config, self.store, self.clock = config, store, clock
        # the stamps of the outputs the last full pass found as written: a hash of each one's
        # path, stat and recorded hash then (see ``_holds``); the builder's, kept from pass to
        # pass, and replaced at the end of each full pass by the stamps it found (``confirmed``)
        self.checked: set[int] = set() if checked is None else checked
        self.confirmed: set[int] = set()
        self.pool, self.cancel = pool, cancel
        self.on_feeds = on_feeds  # called once the feeds are in place, before the archives
        self.hashes: Hashes = []  # of the pages written or checked this pass
        self.removed: list[str] = []
        self._head: output.Batch | None = None  # the entry pages', staged for the feeds'
        # the head batch's commit, going on beside the tail's rendering, and what to do once
        # it is done (``_feeds_out``)
        self._behind: tuple[concurrent.futures.Future, Callable[[], None]] | None = None
        # entries/ as a full pass found it (if small enough to send: LISTING_SENT)
        self._listing: Listing = None
        self.now: dt.datetime | None = None  # run's, for the hashes it records

    def run(self, report: BuildReport, *, full: bool, force: bool = False) -> None:
        """Write the changed outputs; a ``full`` pass also restores missing pages and removes
        stray ones; ``force`` renders every output again."""
        c, now = self.config, self.clock()
        self.now = now
        self._listing = None  # taken by this pass's own look at entries/, if full
        key = render_key(c)
        force = force or self.store.get_meta("render_key") != key
        visible = self.store.count(now)
        newest = self.store.newest(c.max_entries, now)
        pages = self._assign_pages(newest, now, force=force, full=full)
        info = render.FeedInfo.from_config(c, archive_count=pages)
        small = not (full or force)  # a pass of named changes: a few pages, in this process
        # The entry pages and the feeds go out in one batch, the archive pages and the
        # sitemap in another, with one round of folder syncs for both, after which the
        # feeds' pings are released. Each temp file is written and flushed on a thread of
        # its own while this one renders the next, and the first batch is renamed while
        # this thread renders the second.
        head = self._head = (output.Batch(syncfs=False, sync_folders=False, background=True)
                             if small else None)
        self._behind = None
        self._keep_held: list[str] = []
        try:
            names = self._entry_pages(report, info, now, force=force, full=full)
            languages, staged, blocked = langfeeds.publish(c, self.store, report, info, now,
                                                           force=force, full=full,
                                                           batch=self._head)
            # the feeds of a language left as it was (``report.blocked``) are not in place:
            # pings an earlier pass held for them stay held
            self._keep_held = langfeeds.topics(c, blocked)
            self._feeds(report, info, newest, pages, languages)
        finally:
            if self._head is not None and self._behind is None:
                self._head.abort()  # the temp files of a pass that failed before the feeds
        if not small:  # the entry pages' freed memory, before the archives' workers start
            give_back_heap()
        try:
            dirty = self._tail(report, info, newest, pages, head, force=force, small=small,
                               languages=langfeeds.sitemap_pages(self.store, languages,
                                                                 c.max_entries, now))
        finally:
            if head is not None:  # once the feeds are in place (an error putting them there
                self._feeds_out()  # is raised here), sync their folders (if the tail did
                output.sync_folders(head.folders)  # not), then let their pings go
                report.pings_released = self.store.release_pings(keep=self._keep_held)
        with self.store.transaction():
            langfeeds.rendered(self.store, staged)  # their files are in place now
            self.store.clear_pages(dirty)
            self.store.set_meta("render_key", key)
            self.store.pages_written(names)
            self.store.record_outputs(self.hashes, now)
            self.store.forget_outputs(self.removed)
        report.entries = visible
        report.scheduled = self.store.scheduled(now)
        render.forget_moments()
        if full:  # temp files of killed writers, beside the pages they were writing
            lang = self.config.out / "lang"
            for folder in ("", "archive", *(f"lang/{code}" for code in sorted(_listdir(lang))
                                            if _is_folder(lang / code))):
                self._remove_dead_temps(folder)
            # the stamps of pages changed or gone since go with the last pass's
            self.checked.clear()
            self.checked.update(self.confirmed)

    def _tail(self, report: BuildReport, info: render.FeedInfo, newest: list[Entry],
              pages: int, head: output.Batch | None, *, force: bool, small: bool,
              languages: list[site.Language]) -> list[int]:
        """Write the archive pages that changed and the sitemap, which lists the
        ``languages``' pages too (their batch also syncs the folders ``head`` left unsynced);
        return the dirty pages, to clear."""
        c, out = self.config, self.config.out
        # archive pages (RFC 5005) whose entries or links changed
        dirty = self.store.dirty_pages()
        todo = [n for n in dirty if n <= pages]
        if small and len(todo) * c.archive_size < POOL_THRESHOLD:
            fits: dict[str, render.Fitted] = {}
            written: list[str] = []
            with output.Batch(syncfs=False, background=True) as tail:
                held = {n: self.store.page_entries(n, kept=True) for n in todo}  # sitemap's too
                for n in todo:
                    written += write_archive_page(info, out, n, pages, held[n], tail, fits)
                report.written.extend(site.write(c, self.store, newest, pages, todo,
                                                 force=force, batch=tail, languages=languages,
                                                 entries=held))

                def ready() -> None:  # the feeds, flushed meanwhile, go in place first
                    self._feeds_out()
                    if head is not None:
                        tail.folders.update(head.folders)
                tail.commit(ready)
            paths = {out / p for n in todo for p in (render.archive_page_path(n),
                                                     render.archive_path("atom", n),
                                                     render.archive_path("rss", n))}
            if head is not None:
                head.folders.clear()  # synced with the tail's
            self._rendered(report, (written, hashes_of(out, tail, paths),
                                    fit_notes(fits, info.max_bytes)))
        else:
            self._feeds_out()
            source = self._source(len(todo) * c.archive_size)
            if source is not None:  # the workers read the pages' entries themselves
                jobs = (("stored archive", info, out, (source, chunk))
                        for chunk in chunks(((n, pages) for n in todo), STORED_ARCHIVE_CHUNK))
            else:
                jobs = (("archive", info, out, chunk) for chunk in chunks(
                    ((n, pages, self.store.page_entries(n)) for n in todo), ARCHIVE_CHUNK))
            self._render_all(report, jobs, len(todo), len(todo) * c.archive_size,
                             "archive", "writing archives")
            report.written.extend(site.write(c, self.store, newest, pages, todo, force=force,
                                             render=self._sitemaps(pages), languages=languages))
            # The workers' last job is done: they go now, not after the store has taken
            # this pass's records (the process tree's peak, 100k seeds, was there).
            self.pool.close()
        return dirty

    def _sitemaps(self, pages: int) -> Callable[[list[site.Spec]], Iterable[site.Rendered]]:
        """How ``site.write`` renders its chunks in a big pass: two or more in the workers,
        which read their rows from the store themselves (~0.1 s a chunk, most of it reading
        the entries' ``updated``, stored after their content)."""
        source, base = self._source(pages * self.config.archive_size), self.config.base_url
        here = site.renderer(self.store, base)  # in this process, from the writer's store

        def render(specs: list[site.Spec]) -> Iterable[site.Rendered]:
            if source is None or len(specs) < 2:
                self.pool.close()  # done with: the workers go before the chunks are made
                return list(here(specs))
            made = self.pool.map(_sitemap_job, [(source, base, *spec) for spec in specs],
                                 weight=pages * self.config.archive_size)
            return (chunk if chunk is not None else next(here([spec]))
                    for spec, chunk in zip(specs, made, strict=True))
        return render

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
        stale = frozenset(names)  # the pages beside these (new, edited, now due) link to them
        if full:
            names |= self._check_entry_folder(report, now, force)
        todo: Iterable[Paged]
        streamed = force or len(names) >= STREAM_FROM

        def wanted(name: str, before: str | None, after: str | None) -> bool:
            return force or name in names or before in stale or after in stale

        if streamed:
            todo = with_neighbours(self.store.iter_named_entries(), now, wanted)
        else:
            names |= {row[0] for name in stale for row in self.store.neighbours(name, now)
                      if row}
            todo = filter(None, (self._paged(name, now) for name in sorted(names)))
        count = self.store.total() if force else len(names)
        listing = self._listing
        if self._head is not None and count < POOL_THRESHOLD:
            written, hashes = write_entry_pages(info, out, list(todo), self._head, listing)
            self._rendered(report, (written, hashes, []))
            return names
        source = self._source(count) if streamed else None
        if source is not None:  # the workers read the entries themselves: only names go
            jobs = (("stored pages", info, out, (source, chunk, listing)) for chunk in chunks(
                named_neighbours(self.store.published_names(now), wanted), PAGE_CHUNK))
        else:
            jobs = (("pages", info, out, (chunk, listing)) for chunk in chunks(todo, PAGE_CHUNK))
        self._render_all(report, jobs, count, count, "page", "writing pages")
        return names

    def _source(self, weight: int) -> Source | None:
        """Where the workers can read the store themselves, for jobs of this ``weight`` if
        they run in the workers; None to send them the entries."""
        return self.store.source() if self.pool.in_workers(weight) else None

    def _paged(self, name: str, now: dt.datetime) -> Paged | None:
        """An entry by name, with the published entries before and after it."""
        entry = self.store.entry_by_name(name)
        if entry is None:
            return None
        before, after = (render.Neighbour(*row[1:]) if row else None
                         for row in self.store.neighbours(name, now))
        return entry, before, after

    def _feeds(self, report: BuildReport, info: render.FeedInfo, newest: list[Entry],
               pages: int, languages: list[str]) -> None:
        """The current feeds and the index; queues a ping for each feed that changed."""
        c, out = self.config, self.config.out
        archive = render.Archive(prev=render.archive_path("atom", pages) if pages else None)
        rss_archive = render.Archive(prev=render.archive_path("rss", pages) if pages else None)
        renders = (
            ("atom.xml", "atom", {"archive": archive}),
            ("rss.xml", "rss", {"archive": rss_archive}),
            ("feed.json", "json", {}),
        )
        versions = {path: self.store.output_hashes(path).get(path)
                    for path, _kind, _links in renders}
        # Each feed is hashed, compared with its file and compressed on a helper thread
        # (``output.prepare``) while the next one, then the index, renders.
        made = []
        for path, kind, links in renders:
            fitted = _rendered(path, (kind, info, *_keys(newest), *links.values()),
                               lambda k=kind, kw=links: render.fit(k, info, newest, **kw))
            made.append((path, fitted,
                         output.HELPERS.submit(output.prepare, (out / path, fitted.data))))
        older = render.archive_page_path(pages) if pages else None
        index = _rendered("index.html", (info, *_keys(newest), older, *languages),
                          lambda: render.render_index(info, newest, next_page=older,
                                                      languages=languages))
        todo, fits = [], {}
        for path, fitted, preparing in made:
            digest, _in_place, gz = prepared = preparing.result()
            settled = output.settle(prepared, versions[path])
            if settled is None:
                continue
            write, new = settled
            todo.append((path, fitted.data, digest, new, write, gz))
            fits[path] = fitted
        if todo:  # the outbox: recorded before any rename, so a crash loses no ping
            with self.store.transaction():
                self.store.record_outputs([(t[0], t[2]) for t in todo], self.clock())
                self.store.queue_pings(c.hubs, [c.base_url + t[0] for t in todo if t[3]],
                                       time.time())
        # One batch: the feeds and the index are flushed together, then renamed in order,
        # and their folder synced once. Not by syncfs, which would also wait for whatever
        # other processes have written.
        batch = self._head or output.Batch(syncfs=False)
        try:
            for path, data, digest, new, write, gz in todo:
                if write:
                    batch.write(out / path, data, check=False, gz=gz, hashed=digest)
                    report.written.append(path)
                if new:
                    report.changed_feeds.append(path)
            if batch.write(out / "index.html", index):
                report.written.append("index.html")
        except BaseException:
            batch.abort()
            raise
        wrote = bool(todo or report.written)

        def in_place() -> None:
            if self.on_feeds is not None and wrote:
                self.on_feeds()
            for level, message in fit_notes(fits, info.max_bytes):  # only when written
                log.log(level, message)

        if self._head is not None:  # committed while the tail renders: see ``_feeds_out``
            self._behind = (batch.commit_behind(), in_place)
            return
        batch.commit()
        in_place()
        # Every feed holds its recorded version now: its pings may go (also those held by
        # a pass that stopped between recording and renaming), once the folders are synced
        # (by the caller, with the tail's, when the feeds went out in its head batch).
        report.pings_released = self.store.release_pings(keep=self._keep_held)

    def _feeds_out(self) -> None:
        """Wait until the head batch's commit, begun by ``_feeds``, has put the feeds in
        place, then say so (``on_feeds``); once per pass. If it failed, its error is raised
        by every call: by the one in ``run``'s ``finally`` too, so the pings of feeds not in
        place are not released."""
        if self._behind is not None:
            committing, in_place = self._behind
            committing.result()
            self._behind = None
            in_place()

    def _remove(self, report: BuildReport, path: str) -> None:
        self.removed.append(path)
        if output.remove(self.config.out / path):
            report.deleted_outputs.append(path)

    def _remove_dead_temps(self, folder: str, names: Iterable[str] | None = None) -> None:
        """Remove the temp files left in ``folder`` (of the output) by killed writers."""
        gone = output.remove_dead_temps(self.config.out / folder, names)
        if gone:  # one line a folder: a killed worker leaves one beside each page it wrote
            shown = ", ".join(sorted(gone)[:3]) + (", ..." if len(gone) > 3 else "")
            log.info("removed %d temp file%s in %s left by a writer stopped before its rename"
                     " (%s)", len(gone), "" if len(gone) == 1 else "s",
                     f"{folder}/" if folder else "the output folder", shown)

    def _check_entry_folder(self, report: BuildReport, now: dt.datetime,
                            force: bool) -> set[str]:
        """A full pass looks at the entries folder: returns the names of published entries
        whose page is missing, empty or not what was written (by its hash in the store; none
        when ``force`` renders them all anyway), and removes the pages no published entry
        owns, such as those of seeds that went away after a pass stopped between a worker
        writing their page and the store taking their entry."""
        existing = _listdir(self.config.out / "entries")
        if len(existing) <= LISTING_SENT:  # the pages written from now on look it up here
            self._listing = frozenset(existing)
        self._remove_dead_temps("entries", existing)
        published = self.store.slugs_by_name(now)
        owned = {f"{slug}.html" for _name, slug in published}
        for file in sorted(existing - owned):  # not a loop over 100,000 owned pages
            page = file[:-3] if file.endswith(".html.gz") else file
            if file[0] == "." or not page.endswith(".html"):
                continue
            # An entry page has no .gz sibling: one beside an owned page (an older feeder's,
            # restored with a backup, maybe after this pass's listing) is not its bytes, and
            # nginx's gzip_static would serve it; a page written as known absent leaves it.
            try:
                self._remove(report, f"entries/{file}")
            except OutputError as exc:  # a folder named x.html, say: not worth a failure
                log.warning("cannot remove stray entries/%s: %s", file, exc.reason)
            else:
                log.info("removed entries/%s: %s", file, "entry pages have no .gz sibling"
                         if page in owned else "no entry of that name")
        if force:
            return set()
        folder, recorded = f"{self.config.out}{os.sep}entries", self.store.output_hashes("entries/")
        checked, settled = (self.checked, self.confirmed), time.time_ns() - SETTLED_NS
        todo, damaged = set(), 0
        for name, slug in published:
            file = f"{slug}.html"
            if file not in existing:
                todo.add(name)
            elif not _holds(f"{folder}{os.sep}{file}", recorded.get(f"entries/{file}"),
                            checked, settled):
                todo.add(name)
                damaged += f"entries/{file}" in recorded
        if damaged:
            log.warning("%d entry pages were empty or not as written: writing them again",
                        damaged)
        return todo

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
            placed: list[tuple[int, str]] = []  # (page, id)
            for id_ in store.unpaged(now):
                if id_ in current:
                    continue
                if page == 0 or held >= c.archive_size:
                    if page:
                        store.mark_pages([page])  # it gains a next-archive link
                    page, held = page + 1, 0
                placed.append((page, id_))
                held += 1
            store.place_unpaged(placed)
            pages, _held = store.last_page()
            out = c.out
            if force:
                store.mark_pages(range(1, pages + 1))
            elif full:  # missing, empty, or not as written
                recorded = store.output_hashes("archive/")
                checked, settled = (self.checked, self.confirmed), time.time_ns() - SETTLED_NS
                store.mark_pages(n for n in range(1, pages + 1) if not all(
                    _holds(f"{out}{os.sep}{p}", recorded.get(p), checked, settled)
                    for p in (render.archive_path("atom", n), render.archive_path("rss", n),
                              render.archive_page_path(n))))
            if pages != old_pages and pages:
                store.mark_pages([pages, min(pages, old_pages) or pages])  # links change
            store.set_meta("archive_pages", pages)
        for n in range(pages + 1, old_pages + 1):  # pages left empty at the end
            for kind in ("atom", "rss"):
                output.remove(out / render.archive_path(kind, n))
            output.remove(out / render.archive_page_path(n))
        return pages

    def _rendered(self, report: BuildReport,
                  result: tuple[list[str], Hashes, list[tuple[int, str]]]) -> None:
        """Take in what a render job wrote (its paths, hashes and log lines)."""
        written, hashes, notes = result
        report.written.extend(written)
        self.hashes.extend(hashes)
        if len(self.hashes) >= RECORD_EVERY:  # the files are in place: their hashes are true
            with self.store.transaction():
                self.store.record_outputs(self.hashes, self.now or self.clock())
            self.hashes = []
        for level, message in notes:
            log.log(level, message)

    def _render_all(self, report: BuildReport, jobs: Iterable[tuple], count: int,
                    weight: int, unit: str, desc: str) -> None:
        """Run render jobs (``count`` units for the progress bar, ``weight`` entries in all),
        in the pool when there are many. Only a few jobs are in flight at a time, so the
        entries are streamed from the store, not all held."""
        bar = self.pool.progress(weight, count, unit, desc)
        sent: collections.deque[tuple] = collections.deque()  # in flight, oldest first

        def sending() -> Iterator[tuple]:
            for job in jobs:
                sent.append(job)
                yield job

        took_over = False
        for result in self.pool.map(_render_job, sending(), weight=weight):
            job = sent.popleft()  # the results come in the jobs' order
            if result is None:  # a worker could not read the state file: this process can
                if not took_over:
                    log.info("the workers cannot read the state file at %s (moved or replaced"
                             " during the pass): this process renders their %ss instead",
                             self.config.state, unit)
                took_over = True
                result = _render_job(job, self.store.db)
            assert result is not None
            done, written, hashes, notes = result
            if bar is not None:
                bar.update(done)
            self._rendered(report, (written, hashes, notes))
            if self.cancel.is_set():  # stopping: what is not written stays marked in the store
                raise BuildCancelled
        if bar is not None:
            bar.close()


def _holds(path: str, digest: str | None,
           checked: tuple[set[int], set[int]] | None = None, settled: int = 0) -> bool:
    """Does ``path`` hold bytes (not none) with this recorded hash? (os calls on a str: a
    third of pathlib's cost over 100,000 pages)

    With ``checked`` (the stamps of the pages the last full pass found as written, and the
    set this pass adds its own to), a page whose stamp (a hash of its path, inode, size,
    mtime, ctime and recorded hash) is among the last pass's is not read again: any write,
    truncation, replacement or ``touch`` changes its ctime. A page found as written gets its
    stamp added when its ctime is before ``settled`` (ns); the others are read again next
    time (100,000 entry pages: 1.8 s of hashing -> 0.3 s of stat calls). Stamps, not paths,
    are kept: 8 MB at 106,000 pages where a dict of paths took 19 MB (tracemalloc)."""
    if digest is None:
        return False
    if checked is None:
        return _same(path, digest)
    try:
        st = os.stat(path)
    except OSError:
        return False
    stamp = hash((path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest))
    last, confirmed = checked
    if stamp in last:
        confirmed.add(stamp)
        return True
    if not _same(path, digest):  # read after the stat: a change between is seen next time
        return False
    if st.st_ctime_ns < settled:
        confirmed.add(stamp)
    return True


def _same(path: str, digest: str) -> bool:
    """Does ``path`` hold bytes (not none) with this hash? (read and hashed; not if it is no
    regular file: ``output.read_file``)"""
    data = output.read_file(path)
    return bool(data) and output.digest(data) == digest


def _is_folder(path: Path) -> bool:
    """A folder itself, not a symlink to one (which could lead out of the output)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _listdir(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):  # not there, or a file made in its place
        return set()
