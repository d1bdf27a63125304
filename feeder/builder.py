"""One pass from the seeds folder to the output folder: scan, sync the store, render, write.

``feeder build`` runs it once over the whole folder; ``feeder run`` runs it for the names the
watcher reports (and over the whole folder at start and on each rescan). Work is
proportional to what changed: unchanged seeds are only stat'ed, unchanged outputs are not
rewritten, and archive pages are re-rendered only from the first page a change touches.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, output, render
from .config import Config
from .errors import OutputError, SeedError
from .normalizer import Entry, Rules, normalize, slug_for
from .seed import parse_seed
from .store import Fingerprint, PingStore, Store

log = logging.getLogger("feeder")

TEMP_SUFFIXES = (".swp", ".swx", ".swo", "~", ".part", ".tmp", ".crdownload", ".partial")
MIN_YEAR = 1900
POOL_THRESHOLD = 400  # seeds to read before a process pool pays for its start-up
BATCH = 500
READ_CHUNK = 32  # seeds sent to a worker at a time
QUIET_ABOVE = 1000  # seeds read in one pass beyond which "added" lines go to debug


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def is_candidate(name: str, extensions: tuple[str, ...]) -> bool:
    """Is this file name a seed? Hidden, temporary and other-extension files are not."""
    if name.startswith((".", "#")) or name.endswith(TEMP_SUFFIXES):
        return False
    return name.lower().endswith(extensions)


@dataclass
class Seen:
    """A seed file as found by the scan: its stat, or why it cannot be read."""

    name: str
    path: Path
    size: int = 0
    mtime_ns: int = 0
    problem: str | None = None


@dataclass
class BuildReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # newly rejected, or rejected for a new reason
    rejected: list[tuple[str, str]] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)  # (name, encoding)
    unchanged: int = 0
    deferred: set[str] = field(default_factory=set)  # still being written: look again later
    written: list[str] = field(default_factory=list)
    deleted_outputs: list[str] = field(default_factory=list)
    changed_feeds: list[str] = field(default_factory=list)
    entries: int = 0
    scheduled: list[tuple[str, dt.datetime]] = field(default_factory=list)
    started: dt.datetime = field(default_factory=utcnow)
    seconds: float = 0.0

    @property
    def seed_changes(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)

    def summary(self) -> str:
        parts = [f"{self.entries} entries"]
        for label, items in (("added", self.added), ("changed", self.changed),
                             ("removed", self.removed), ("rejected", self.rejected)):
            if items:
                parts.append(f"{len(items)} {label}")
        parts.append(f"{len(self.written)} files written")
        if self.scheduled:
            parts.append(f"{len(self.scheduled)} scheduled")
        return f"built in {self.seconds * 1000:.0f} ms: " + ", ".join(parts)


# -- reading seeds (also runs in worker processes) -----------------------------------------

def _opened_inside(fd: int, root: str | None) -> bool:
    """Is the opened file really under ``root``? (A symlink may have been swapped in since
    the scan looked at the name.)"""
    if root is None:
        return True
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc
        return True
    return real.startswith(root.rstrip(os.sep) + os.sep)


def read_seed(path: Path, name: str, max_bytes: int, rules: Rules,
              root: str | None = None) -> tuple:
    """Read, hash, parse and normalize one seed. Returns ("ok", size, mtime_ns, digest,
    entry, encoding) or ("rejected", size, mtime_ns, digest, reason)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not _opened_inside(fh.fileno(), root):
                return ("rejected", 0, 0, "", "symlink points outside the seeds folder")
            if not stat.S_ISREG(st.st_mode):
                return ("rejected", 0, 0, "", "not a regular file")
            if st.st_size > max_bytes:
                reason = f"too large: {st.st_size} bytes (limit {max_bytes})"
                return ("rejected", st.st_size, st.st_mtime_ns, f"size:{st.st_size}", reason)
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        return ("gone",)
    except OSError as exc:
        return ("rejected", 0, 0, "", f"cannot read: {exc.strerror or exc}")
    if len(data) > max_bytes:
        reason = f"too large: {len(data)}+ bytes (limit {max_bytes})"
        return ("rejected", len(data), st.st_mtime_ns, f"size:{len(data)}", reason)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        doc = parse_seed(data, name)
        entry = normalize(doc, Path(name).stem, rules)
    except SeedError as exc:
        return ("rejected", len(data), st.st_mtime_ns, digest, exc.reason)
    return ("ok", len(data), st.st_mtime_ns, digest, entry, doc.encoding)


@dataclass(frozen=True)
class ReadContext:
    """What reading a seed needs, sent along with each chunk of seeds to a worker."""

    rules: Rules
    max_bytes: int
    root: str | None
    info: render.FeedInfo  # for the entry pages written as new seeds are read
    out: Path
    now: float  # entries published by then get their page at once


def read_and_write_page(ctx: ReadContext, path: Path, name: str, new: bool) -> tuple:
    """``(name, *read_seed(...), page)``. A ``new`` seed (no seed of that name or stem in
    the store or in this pass) that is already published gets its entry page written here,
    in the worker that has the entry in hand: ``page`` is then (path, bytes changed?)."""
    result = read_seed(path, name, ctx.max_bytes, ctx.rules, ctx.root)
    page = None
    if new and result[0] == "ok":
        entry = result[4]
        if entry.published.year >= MIN_YEAR and entry.published.timestamp() <= ctx.now:
            try:
                changed = write_entry_page(ctx.info, ctx.out, entry)
            except OutputError:
                pass  # left to the publishing step, which reports it
            else:
                page = (render.entry_path(entry), changed)
    return (name, *result, page)


def _read_chunk(job: tuple[ReadContext, list[tuple[Path, str, bool]]]) -> list[tuple]:
    ctx, seeds = job
    return [read_and_write_page(ctx, path, name, new) for path, name, new in seeds]


# -- rendering pages (also runs in worker processes) ---------------------------------------

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


def write_entry_page(info: render.FeedInfo, out: Path, entry: Entry) -> bool:
    """Render and write one entry page; True if its bytes changed."""
    # No .gz sibling: the servers compress an entry page on demand, once per version.
    return output.write(out / render.entry_path(entry), render.render_entry_page(info, entry),
                        compress=False)


def write_entry_pages(info: render.FeedInfo, out: Path, entries: list[Entry]) -> list[str]:
    return [render.entry_path(e) for e in entries if write_entry_page(info, out, e)]


def _render_job(job: tuple) -> tuple[int, list[str]]:
    """(units done for the progress bar, paths written)"""
    kind, info, out, payload = job
    if kind == "pages":
        return len(payload), write_entry_pages(info, out, payload)
    return 1, write_archive_page(info, out, *payload)


# -- the builder ---------------------------------------------------------------------------

class BuildCancelled(Exception):
    """The daemon is stopping: the seeds synced so far are committed, the rest wait."""


class Builder:
    """Runs build passes. ``busy`` names seeds a watcher knows are still being written, and
    ``settle`` makes full scans leave alone files modified in the last ``settle`` seconds
    (the watcher reports them when they are closed). With ``pings``, a WebSub ping is queued
    for each feed a pass changes."""

    def __init__(self, config: Config, store: Store, *,
                 clock: Callable[[], dt.datetime] = utcnow, progress: bool | None = None,
                 busy: Callable[[], set[str]] | None = None, settle: float = 0.0,
                 pings: PingStore | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.busy = busy
        self.settle = settle
        self.cancel = threading.Event()
        self.pings = pings
        self.rules = Rules.from_config(config)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._building = False

    # scanning -----------------------------------------------------------------------------
    def _seeds_root(self) -> Path:
        return Path(os.path.realpath(self.config.seeds))

    def examine(self, name: str, root: Path | None = None) -> Seen | None:
        """Stat one seed by name; None if it does not exist (or is not a seed at all).
        ``root`` is the seeds folder's real path, when the caller already has it."""
        root = root or self._seeds_root()
        path = root / name
        if not is_candidate(name, self.config.extensions) or "/" in name:
            return None
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in the name (os.fsdecode escapes them)
            shown = os.fsencode(name).decode("utf-8", "backslashreplace")
            return Seen(shown, path, problem="file name is not valid UTF-8: rename the file")
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return Seen(name, path, problem=f"cannot stat: {exc.strerror or exc}")
        if stat.S_ISLNK(st.st_mode):
            try:
                real = path.resolve(strict=True)
            except RuntimeError:
                return Seen(name, path, problem="symlink loop")
            except FileNotFoundError:
                return Seen(name, path, problem="dangling symlink")
            except OSError as exc:
                if exc.errno == 40:  # ELOOP
                    return Seen(name, path, problem="symlink loop")
                return Seen(name, path, problem=f"cannot follow symlink: {exc.strerror or exc}")
            if real.parent != root and root not in real.parents:
                return Seen(name, path, problem="symlink points outside the seeds folder")
            path = real
            st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            return None
        if not stat.S_ISREG(st.st_mode):
            return Seen(name, path, problem="not a regular file")
        return Seen(name, path, st.st_size, st.st_mtime_ns)

    def scan(self) -> dict[str, Seen]:
        """Every seed in the folder (not recursive), by name."""
        root = self._seeds_root()
        found: dict[str, Seen] = {}
        with os.scandir(root) as it:
            names = [e.name for e in it if is_candidate(e.name, self.config.extensions)]
        for name in names:
            seen = self.examine(name, root)
            if seen is not None:
                found[seen.name] = seen
        return found

    # syncing the store ----------------------------------------------------------------------
    def sync(self, report: BuildReport, names: Iterable[str] | None = None) -> None:
        """Bring the store in line with the folder (``names``, or all of it); the changes
        it makes mark the pages to render in the store itself."""
        if names is None:
            fps = self.store.fingerprints()
            found = self.scan()
            gone = [n for n in fps if n not in found]
            skip = self.busy() if self.busy else set()
            if self.settle:
                recent = time.time_ns() - int(self.settle * 1e9)
                skip |= {n for n, s in found.items() if s.mtime_ns > recent}
            for name in skip:
                if found.pop(name, None) is not None:
                    report.deferred.add(name)
        else:
            names = set(names)
            fps = self.store.fingerprints(names)  # not all 100k of them for one change
            found, gone = {}, []
            root = self._seeds_root()
            for name in names:
                seen = self.examine(name, root)
                if seen is None:
                    if name in fps:
                        gone.append(name)
                else:
                    found[name] = seen
        now = self.clock()
        rules_key = hashlib.sha1(repr(self.rules).encode()).hexdigest()
        renormalize = names is None and self.store.get_meta("rules_key", rules_key) != rules_key
        if renormalize:
            log.info("normalizing settings changed: reading every seed again")
        to_read: list[Seen] = []
        for name, seen in found.items():
            fp = fps.get(name)
            if seen.problem is not None:
                if fp is None or fp.reason != seen.problem:
                    self._reject(report, name, seen.size, seen.mtime_ns, "", seen.problem, now,
                                 fp)
                continue
            # A full pass looks again at rejected seeds (a duplicate's owner may be gone, a
            # far date may have come near) and, after a change of the normalizing settings,
            # at every seed.
            recheck = renormalize or (names is None and fp is not None and fp.reason is not None)
            if (fp is not None and fp.size == seen.size and fp.mtime_ns == seen.mtime_ns
                    and not recheck):
                report.unchanged += 1
                continue
            to_read.append(seen)
        for name in sorted(gone):
            with self.store.transaction():
                old = self.store.forget(name)
            if old is not None:
                report.removed.append(name)
                log.info("removed %s", name)
        # one line per seed for the daemon's changes; a big first build only counts them
        level = logging.INFO if len(to_read) <= QUIET_ABOVE else logging.DEBUG
        for result in self._read_all(to_read, fps, now):
            name, status, *rest, page = result
            if status == "gone":
                continue
            if page is not None and page[1]:
                report.written.append(page[0])
            size, mtime_ns, digest = rest[0], rest[1], rest[2]
            fp = fps.get(name)
            if fp is not None and fp.hash == digest and fp.reason is None and not renormalize:
                self.store.touch(name, size, mtime_ns)
                report.unchanged += 1
                continue
            if status == "rejected":
                self._reject(report, name, size, mtime_ns, digest, rest[3], now, fp)
                continue
            entry, encoding = rest[3], rest[4]
            entry, problem = self._check(entry, name, now)
            if problem:
                self._reject(report, name, size, mtime_ns, digest, problem, now, fp)
                continue
            if encoding not in ("utf-8", "ascii"):
                report.converted.append((name, encoding))
                log.info("converted %s from %s to UTF-8", name, encoding)
            old = self.store.entry_by_name(name) if fp is not None else None
            if old is not None and fp is not None and fp.hash == digest:
                entry = dataclasses.replace(entry, updated=old.updated)  # same text
            else:
                entry = self._with_history(entry, old, now)
            self.store.put_entry(name, size, mtime_ns, digest, entry, now)
            if page is not None:  # written before this commit: nothing left to do for it
                self.store.pages_written([name])
            if old is None:
                report.added.append(name)
                log.log(level, "added %s: %s (%s, %s)", name, entry.title,
                        entry.published.date(), entry.language)
            else:
                report.changed.append(name)
                log.log(level, "changed %s", name)
        if names is None:
            self.store.set_meta("rules_key", rules_key)

    def _read_all(self, seeds: list[Seen], fps: dict[str, Fingerprint],
                  now: dt.datetime) -> Iterator[tuple]:
        """Read and normalize seeds, in a process pool when there are many; commits in batches.
        Only a few chunks are in flight, so entries are streamed, not all held."""
        c = self.config
        ctx = ReadContext(self.rules, c.max_seed_bytes, str(self._seeds_root()),
                          render.FeedInfo.from_config(c), c.out, now.timestamp())
        writable = self._writable_pages(seeds, fps) if self._building else set()
        work = ((s.path, s.name, s.name in writable) for s in seeds)
        jobs = ((ctx, chunk) for chunk in _chunks(work, READ_CHUNK))
        bar = self._bar(len(seeds) >= POOL_THRESHOLD, len(seeds), "seed", "reading seeds")
        pool = self._pool() if len(seeds) >= POOL_THRESHOLD else None
        if pool is not None:
            try:
                chunks = _bounded(pool, _read_chunk, jobs, 2 * pool._max_workers + 2)
                yield from self._batched(itertools.chain.from_iterable(chunks), bar)
            finally:
                if not self._building:  # sync() alone (``feeder check``): nothing else to pool
                    self.close_pool()
        else:
            results = itertools.chain.from_iterable(map(_read_chunk, jobs))
            yield from self._batched(results, bar)
        if bar is not None:
            bar.close()

    def _writable_pages(self, seeds: list[Seen], fps: dict[str, Fingerprint]) -> set[str]:
        """Names of new seeds whose entry page the reading worker may write at once: not a
        seed's twin (same stem, so same id and page) in this pass or in the store, whose page
        it would overwrite before the store refuses it. Twins and edited seeds get their
        page when publishing, from the store."""
        slugs = {s.name: slug_for(Path(s.name).stem) for s in seeds}
        seen = collections.Counter(slugs.values())  # rechecked rejected seeds included
        taken = self.store.slugs_taken(seen) if self.store.total() else set()
        return {name for name, slug in slugs.items()
                if name not in fps and seen[slug] == 1 and slug not in taken}

    def _batched(self, results: Iterable[tuple], bar) -> Iterator[tuple]:  # noqa: ANN001
        it = iter(results)
        while True:
            with self.store.transaction():
                n = 0
                for result in it:
                    yield result
                    n += 1
                    if bar is not None:
                        bar.update(1)
                    if n >= BATCH:
                        break
                else:
                    return
            if self.cancel.is_set():
                raise BuildCancelled

    def _check(self, entry: Entry, name: str, now: dt.datetime) -> tuple[Entry, str | None]:
        """Refuse implausible dates and id clashes; give the entry its stored id."""
        if entry.published.year < MIN_YEAR:
            return entry, f"date {entry.published.date()} is before {MIN_YEAR}: probably a typo"
        horizon = now + dt.timedelta(days=self.config.max_future_days)
        if entry.published > horizon:
            return entry, (f"date {entry.published.date()} is more than "
                           f"{self.config.max_future_days} days ahead: probably a typo")
        minted, fresh = self.store.mint_id(entry.stem, entry.id)
        owner = None if fresh else self.store.owner_of(minted)  # a fresh id has no owner yet
        if owner is not None and owner != name:
            return entry, f"same entry id as {owner} (file stems must be unique)"
        owner = self.store.slug_owner(entry.slug)  # e.g. "café" and a seed named "cafe-<hash>"
        if owner is not None and owner != name:
            return entry, f"same page {render.entry_path(entry)} as {owner}: rename one of them"
        return dataclasses.replace(entry, id=minted), None

    def _with_history(self, entry: Entry, old: Entry | None, now: dt.datetime) -> Entry:
        """``updated`` stays ``published`` until the text changes, then it is when we saw it."""
        if old is None:
            return entry
        return dataclasses.replace(entry, updated=max(now.astimezone(entry.published.tzinfo),
                                                      entry.published))

    def _reject(self, report: BuildReport, name: str, size: int, mtime_ns: int, digest: str,
                reason: str, now: dt.datetime, fp: Fingerprint | None) -> None:
        """Record the rejection; log it unless ``fp`` (the previous record) said the same."""
        in_tx = self.store.db.in_transaction
        with contextlib.nullcontext() if in_tx else self.store.transaction():
            self.store.reject(name, size, mtime_ns, digest, reason, now)
        if fp is None or fp.reason != reason:
            report.rejected.append((name, reason))
            log.warning("rejected %s: %s", name, reason)

    # rendering -------------------------------------------------------------------------------
    def _render_key(self) -> str:
        c = self.config
        parts = (__version__, c.title, c.subtitle, c.author, c.base_url, c.language,
                 c.tag_authority, c.tag_date, c.max_entries, c.archive_size, c.hubs)
        return hashlib.sha1(repr(parts).encode()).hexdigest()

    def publish(self, report: BuildReport, force: bool = False) -> None:
        c, out, now = self.config, self.config.out, self.clock()
        key = self._render_key()
        force = force or self.store.get_meta("render_key") != key
        visible = self.store.count(now)
        newest = self.store.newest(c.max_entries, now)
        pages = self._assign_pages(newest, now, force)
        info = render.FeedInfo.from_config(c, archive_count=pages)

        # entry pages: the stale ones (kept in the store until written), plus (on full
        # builds) any that are missing; pages of removed entries go
        for slug in self.store.gone_pages():
            self._remove(report, f"entries/{slug}.html")
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
        if self._full:
            names |= self._check_entry_folder(report, now, force)
        if force or len(names) >= POOL_THRESHOLD:  # stream them all rather than look each up
            todo: Iterable[Entry] = (e for name, e in self.store.iter_named_entries()
                                     if (force and e.published <= now) or name in names)
        else:
            todo = filter(None, map(self.store.entry_by_name, sorted(names)))
        count = self.store.total() if force else len(names)
        jobs = (("pages", info, out, chunk) for chunk in _chunks(todo, 200))
        for written in self._render_all(jobs, count, count, "writing pages"):
            report.written.extend(written)

        # current feeds and the index
        archive = render.Archive(prev=render.archive_path("atom", pages) if pages else None)
        rss_archive = render.Archive(prev=render.archive_path("rss", pages) if pages else None)
        renders = (
            ("atom.xml", lambda: render.render_atom(info, newest, archive=archive)),
            ("rss.xml", lambda: render.render_rss(info, newest, archive=rss_archive)),
            ("feed.json", lambda: render.render_json(info, newest)),
        )
        # zlib lets go of the GIL: each changed feed's .gz sibling is compressed in a thread
        # while the next feed renders (a third of a one-seed rebuild, done on the other core)
        with concurrent.futures.ThreadPoolExecutor(len(renders)) as compressor:
            changed = []
            for path, make in renders:
                data = make()
                if not output.unchanged(out / path, data):
                    changed.append((path, data, compressor.submit(output.gzip_bytes, data)))
            for path, data, gz in changed:
                output.write(out / path, data, durable=True, check=False, gz=gz.result())
                report.written.append(path)
                report.changed_feeds.append(path)
                if self.pings is not None and c.hubs:  # now: a later failure cannot lose it
                    self.pings.add_pings(c.hubs, [c.base_url + path], time.time())
        if output.write(out / "index.html", render.render_index(info, newest)):
            report.written.append("index.html")

        # archive pages (RFC 5005) whose entries or links changed
        dirty = self.store.dirty_pages()
        todo_pages = [n for n in dirty if n <= pages]
        jobs = (("archive", info, out, (n, pages, self.store.page_entries(n)))
                for n in todo_pages)
        weight = len(todo_pages) * c.archive_size
        for written in self._render_all(jobs, len(todo_pages), weight, "writing archives"):
            report.written.extend(written)
        self.store.clear_pages(dirty)
        self.store.set_meta("render_key", key)
        self.store.pages_written(names)
        report.entries = visible
        report.scheduled = self.store.scheduled(now)

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

    def _assign_pages(self, newest: list[Entry], now: dt.datetime, force: bool) -> int:
        """Give every published entry outside the current feeds an archive page; mark the
        pages to render; return how many pages there are.

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
            elif self._full:
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

    def _render_all(self, jobs: Iterable[tuple], count: int, weight: int,
                    label: str) -> Iterator[list[str]]:
        """Run render jobs (``count`` units for the progress bar, ``weight`` entries in all),
        in the process pool when there are many; yields the paths written. Only a few jobs
        are in flight at a time, so the entries are streamed from the store, not all held."""
        big = weight >= POOL_THRESHOLD
        bar = self._bar(big, count, label.split()[-1][:-1], label)
        pool = self._pool() if big else None
        if pool is None:
            results: Iterable[tuple[int, list[str]]] = map(_render_job, jobs)
        else:
            results = _bounded(pool, _render_job, jobs, 2 * pool._max_workers + 2)
        for done, written in results:
            if bar is not None:
                bar.update(done)
            yield written
            if self.cancel.is_set():  # stopping: what is not written stays marked in the store
                raise BuildCancelled
        if bar is not None:
            bar.close()

    def _bar(self, big: bool, total: int, unit: str, desc: str):  # noqa: ANN202
        """A progress bar on a terminal for big passes; None otherwise."""
        if not (self.progress and big):
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr)

    def close_pool(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
            _stop_fork_server()

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor | None:
        """One process pool per build, started on first need; None on a single core."""
        if self._executor is None:
            workers = min(os.cpu_count() or 1, 8)
            if workers < 2:
                return None
            import multiprocessing

            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["feeder.preload"])  # before the fork server starts
            self._executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx)
        return self._executor

    # the whole pass ------------------------------------------------------------------------
    def build(self, names: Iterable[str] | None = None, force: bool = False) -> BuildReport:
        """Sync ``names`` (or the whole folder) and publish; returns what happened."""
        t0 = time.perf_counter()
        report = BuildReport(started=self.clock())
        self._full = names is None
        self._building = True
        try:
            self.config.out.mkdir(parents=True, exist_ok=True)
            if self.store.get_meta("render_key") is None and self.store.total() == 0:
                # A first build: pages written from now on follow the current settings, so
                # publishing need not render all of them again.
                with self.store.transaction():
                    self.store.set_meta("render_key", self._render_key())
            self.sync(report, names)
            self.publish(report, force=force)
        finally:
            self._building = False
            self.close_pool()
        report.seconds = time.perf_counter() - t0
        return report


def _stop_fork_server() -> None:
    """The fork server keeps the preloaded libraries and language model (~100 MB): stop it
    with the pool, so a long-running daemon does not hold them between big passes. The next
    pool starts a new one. (``_stop`` is private, but has been there since Python 3.4.)"""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        with contextlib.suppress(OSError):  # already reaped, or its socket cleaned away
            stop()


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bounded(pool: concurrent.futures.Executor, fn: Callable, jobs: Iterable,
             window: int) -> Iterator:
    """``pool.map`` that takes jobs lazily, keeping at most ``window`` in flight."""
    pending: collections.deque = collections.deque()
    for job in jobs:
        pending.append(pool.submit(fn, job))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _listdir(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()
