"""Seeds -> store: read the seeds that changed and bring the store in line with the folder.

The second stage of a pass (after ``folder.py``, before ``publish.py``). On a full pass, a
seed whose size and mtime match the store's fingerprint is not read; a name the watcher
reported is always read, and compared by content hash. The others are read, hashed, parsed
and normalized by ``read_seed`` (in worker processes when there are many) into a
``ReadResult``, and each result is recorded: an entry, a rejection, or, for the same bytes
under a new stat, only the stat. Seeds gone from the folder lose their entry (their id stays
minted), unless so many are gone at once that it looks like a mistake (an unmounted or
emptied folder): then the removals are held until the operator confirms (``mass_deletion``).

Results are recorded in explicit transactions of up to ``BATCH`` seeds (``BULK_BATCH`` in a
big pass), so a pass that stops keeps what it committed. Each change to an entry marks, in
the store itself (by triggers, in the same transaction), the pages that publishing must
write or remove: publishing writes every entry page, since a page links its neighbours. A
first build marks its new entries' pages once they are all in, with the indexes it goes
without while they come (``Store.bulk_load``: committed or finished after a crash alike).
After a lost state, an entry recovered from the output (``recover.py``) gets back its
``updated`` time and archive page as its seed is recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import hashlib
import itertools
import logging
import operator
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import recover, render
from .config import Config
from .errors import SeedError
from .folder import Folder
from .normalizer import Entry, Rules, normalize, reduce_by_fields
from .pool import Pool, chunks, give_back_heap
from .report import BuildCancelled, BuildReport
from .seed import parse_seed, stray_note
from .store import Fingerprint, FreshLoad, Store

log = logging.getLogger("feeder")

MIN_YEAR = 1900
BATCH = 500  # seeds recorded per transaction
# A big pass (a first build) records in bigger transactions, with a bigger SQLite cache: each
# commit writes every index page it touched, and at 100,000 seeds 500 random inserts touch
# ~500 leaves of each index. Recording 100,000 seeds (bench, CPU): batches of 500 and a 2 MB
# cache 27 s; 2,000 and 12 MB 19 s; 5,000 and 64 MB 16 s, but +55 MB for the batch and cache.
# Into an empty store, without the deferred indexes (Store.bulk_load; CPU of the same
# statements, load 3-6): 2,000 and 12 MB 15.2 s (22.0 s with them); 1,000 and 12 MB 16.3 s;
# 5,000 and 12 MB 13.4 s; 2,000 and 32 MB 12.6 s (+1.3 s to make the indexes again).
BULK_BATCH = 2000  # results held in memory at once: ~8 KB each
BULK_CACHE_MB = 12
# Seeds sent to a worker at a time: from READ_CHUNK, up to MAX_READ_CHUNK in a big pass
# (each chunk's results come back in one message, which this process's pool thread takes
# in and unpickles: at 10,000 seeds its CPU went 0.19 s -> 0.13 s with chunks of 128).
READ_CHUNK = 32
MAX_READ_CHUNK = 128
# ...and at most about this many bytes of seeds (as the scan saw them, each counted up to
# max_seed_bytes): a chunk ends once it holds them. A chunk of 128 seeds at the 4 MB limit
# came back as one message of ~0.5 GB (the worker holds the results and their pickle, this
# process the pickle and the results), and 10 such chunks could be in flight; seeds of the
# usual few KB never reach it (128 seeds of 8 KB).
READ_CHUNK_BYTES = 1024 * 1024
# Seeds in flight per worker while reading: the workers go on reading while this process
# records a batch and commits it (~0.1 s at 2,000 seeds), instead of waiting for new seeds
# after the few they had (10,000 seeds: the workers slept 1.5 s of the read with 2 chunks
# of 32 each ahead, 0.6 s with 16). ~8 KB of results each.
READ_AHEAD = 512
QUIET_ABOVE = 1000  # seeds read in one pass beyond which "added" lines go to debug
MASS_DELETION = 10  # entries removed in one go below which the mass-deletion guard keeps out


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One seed as ``read_seed`` found it: an entry, or the reason it is refused."""

    name: str
    size: int
    mtime_ns: int
    digest: str  # of the bytes read; "size:N" for a seed too large to read; "" if unread
    entry: Entry | None = None
    encoding: str = ""  # of the bytes, when they made an entry
    repaired: tuple[int, ...] = ()  # offsets of stray bytes in otherwise UTF-8 text
    reason: str | None = None  # why they made none

    __reduce__ = reduce_by_fields


# -- reading seeds (runs in the worker processes too) --------------------------------------

_PROC_FD = "/proc/self/fd"  # where an opened file's path is read back (Linux's /proc)


def _proc_path(fd: int) -> str | None:
    """The path ``fd`` was opened at, as the kernel resolved it; None without /proc."""
    try:
        return os.readlink(f"{_PROC_FD}/{fd}")
    except OSError:
        return None


def _opened_inside(fd: int, root: str | None) -> bool | None:
    """Is the opened file really under ``root``? (A symlink may have been swapped in since
    the folder was looked at.) None if that cannot be told: no /proc."""
    if root is None:
        return True
    real = _proc_path(fd)
    if real is None:
        return None
    return real.startswith(root.rstrip(os.sep) + os.sep)


_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def _open_folder(root: str | None) -> int | None:
    """The seeds folder at ``root`` opened for a chunk's reads (``_open_seed``), if /proc
    says the folder opened is the one at ``root``; None otherwise (then each seed is opened
    by its path and checked). Should the folder be moved away during the chunk, the rest of
    the chunk is read from it (where each seed was opened by its path, the rest was gone):
    the folder the scan listed, and still no symlink followed out of it."""
    if root is None:
        return None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        real = _proc_path(fd)
        if real == root:
            return fd
        if real is None:  # no /proc: the folder at ``root`` by its identity
            opened, there = os.fstat(fd), os.stat(root)
            if (opened.st_dev, opened.st_ino) == (there.st_dev, there.st_ino):
                return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _open_seed(path: str, name: str, root: str | None, folder: int | None) -> tuple[int, bool]:
    """Open a seed to read it (O_NONBLOCK: a FIFO put in place of a seed since the scan
    would wait for a writer; it has no effect on a regular file's reads); also whether it is
    known to be inside the seeds folder. A seed the scan found directly in the folder is
    opened in ``folder`` (the folder at ``root``, opened for the chunk) with O_NOFOLLOW:
    the file itself, inside the folder, and no symlink swapped in since (one readlink per
    chunk of seeds, not one per seed). One that is a symlink now is followed, as is any
    other seed, and the caller checks where it led (``_opened_inside``). So is a symlinked
    seed whose target the scan found directly in the folder: that target is opened the same
    way (without /proc, the only way a symlinked seed can be checked)."""
    if folder is not None and root is not None:
        parent, _sep, target = path.rpartition(os.sep)
        if parent == root:
            try:
                return os.open(target, _OPEN_FLAGS | os.O_NOFOLLOW, dir_fd=folder), True
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
    return os.open(path, _OPEN_FLAGS), False


def _read_upto(fd: int, size: int, limit: int) -> bytes:
    """The bytes of ``fd`` to its end, at most ``limit``; ``size`` (from fstat) is the first
    read's length. (A buffered file object asks isatty and seeks, and reading ``limit`` bytes
    at once allocates, maps and shrinks a buffer of that size: half the cost of a read.)"""
    chunks, total, want = [], 0, size + 1
    while total < limit:
        chunk = os.read(fd, min(want, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        want = 1 << 16
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _stem(name: str) -> str:
    """``Path(name).stem``, without making a Path for a plain file name. A name that starts
    or ends with a dot goes to pathlib: Python 3.14 changed its rule for those ("a." -> "a",
    "..a" -> "..a"; "a." and "." before), and for no other name."""
    if os.sep in name or name[:1] == "." or name[-1:] == ".":
        return Path(name).stem
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def read_seed(path: Path | str, name: str, max_bytes: int, rules: Rules,
              root: str | None = None, folder: int | None = None) -> ReadResult | None:
    """Read, hash, parse and normalize one seed; None if the file is gone. ``root`` is the
    seeds folder's real path, ``folder`` that folder opened (``_open_folder``), if known."""
    try:
        fd, inside = _open_seed(os.fspath(path), name, root, folder)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):  # as open() says it
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            where = True if inside else _opened_inside(fd, root)
            if where is None:  # no /proc to read where it led: a symlink is not followed
                return ReadResult(name, 0, 0, "", reason=(
                    "a symlink whose target cannot be checked (no /proc): link only to "
                    "files directly in the seeds folder, or copy it in"))
            if not where:
                return ReadResult(name, 0, 0, "", reason="symlink points outside the seeds folder")
            if not stat.S_ISREG(st.st_mode):
                return ReadResult(name, 0, 0, "", reason="not a regular file")
            if st.st_size > max_bytes:
                reason = f"too large: {st.st_size} bytes (limit {max_bytes})"
                return ReadResult(name, st.st_size, st.st_mtime_ns, f"size:{st.st_size}",
                                  reason=reason)
            data = _read_upto(fd, st.st_size, max_bytes + 1)
        finally:
            os.close(fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return ReadResult(name, 0, 0, "", reason=f"cannot read: {exc.strerror or exc}")
    if len(data) > max_bytes:
        reason = f"too large: {len(data)}+ bytes (limit {max_bytes})"
        return ReadResult(name, len(data), st.st_mtime_ns, f"size:{len(data)}", reason=reason)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        doc = parse_seed(data, name)
        entry = normalize(doc, _stem(name), rules)
    except SeedError as exc:
        return ReadResult(name, len(data), st.st_mtime_ns, digest, reason=exc.reason)
    return ReadResult(name, len(data), st.st_mtime_ns, digest, entry, doc.encoding,
                      doc.repaired)


@dataclass(frozen=True)
class ReadContext:
    """What reading a seed needs, sent along with each chunk of seeds to a worker."""

    rules: Rules
    max_bytes: int
    root: str | None


def _chunks(seeds: Iterable[tuple[str, str, int]], size: int,
            max_bytes: int) -> Iterator[list[tuple[str, str]]]:
    """(path, name) of ``seeds`` ((path, name, size as scanned)) in chunks of ``size``, each
    ended sooner once it holds ``READ_CHUNK_BYTES`` (a seed counted up to ``max_bytes``)."""
    chunk: list[tuple[str, str]] = []
    held = 0
    for path, name, length in seeds:
        chunk.append((path, name))
        held += min(length, max_bytes)
        if len(chunk) >= size or held >= READ_CHUNK_BYTES:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def _read_chunk(job: tuple[ReadContext, list[tuple[str, str]]]) -> list[ReadResult | None]:
    ctx, seeds = job
    folder = _open_folder(ctx.root)
    try:
        return [read_seed(path, name, ctx.max_bytes, ctx.rules, ctx.root, folder)
                for path, name in seeds]
    finally:
        if folder is not None:
            os.close(folder)


# -- recording them ------------------------------------------------------------------------

class Sync:
    """Brings the store in line with the seeds folder, one ``run`` per pass."""

    def __init__(self, config: Config, store: Store, folder: Folder, rules: Rules, *,
                 clock: Callable[[], dt.datetime], pool: Pool,
                 cancel: threading.Event, allow_mass_delete: bool = False) -> None:
        self.config, self.store, self.folder, self.rules = config, store, folder, rules
        self.clock, self.pool, self.cancel = clock, pool, cancel
        self.recovering = False  # entries recovered from the output wait for their seeds
        self.allow_mass_delete = allow_mass_delete
        # where seeds are recorded: the store, or a first build's FreshLoad over it
        self.rec: Store | FreshLoad = store

    def run(self, report: BuildReport, names: Iterable[str] | None = None) -> None:
        """Sync the seeds of ``names`` (the watcher's change set), or of the whole folder.
        Entry pages are left to publishing: a page links its neighbours in publishing
        order, known only once the store has every seed of the pass."""
        full = names is None
        names = None if names is None else set(names)
        fps = self.store.fingerprints(names)  # not all 100k of them for one change
        found, waiting = self.folder.look(names)
        report.deferred |= waiting
        gone = sorted(n for n in fps if n not in found and n not in waiting)
        if not full:
            gone, later = self.folder.settled_deletions(gone)
            report.deferred |= later
        now = self.clock()
        rules_key = hashlib.sha1(repr(self.rules).encode()).hexdigest()
        renormalize = full and self.store.get_meta("rules_key", rules_key) != rules_key
        if renormalize:
            log.info("normalizing settings changed: reading every seed again")
        # (path, name) of the seeds to read: not the Seen, whose Path objects would be held
        # through the whole read (~40 MB at 100,000 seeds)
        to_read: list[tuple[str, str]] = []
        unreadable: list[ReadResult] = []
        for name, seen in found.items():
            fp = fps.get(name)
            if seen.problem is not None:
                if fp is None or fp.reason != seen.problem:
                    unreadable.append(ReadResult(name, seen.size, seen.mtime_ns, "",
                                                 reason=seen.problem))
                continue
            # A full pass looks again at rejected seeds (a duplicate's owner may be gone, a
            # far date may have come near) and, after a change of the normalizing settings,
            # at every seed.
            # A name the watcher reported is compared by content: an edit may keep the size
            # and fall within the file system's mtime granularity.
            recheck = renormalize or not full or (fp is not None and fp.reason is not None)
            if (fp is not None and fp.size == seen.size and fp.mtime_ns == seen.mtime_ns
                    and not recheck):
                report.unchanged += 1
                continue
            to_read.append((os.fspath(seen.path), name, seen.size))
        del found
        # By name, not in the folder's order (a hash order on most file systems): the rows go
        # into the store's tables and indexes, all keyed by name, id or stem, one after the
        # other, not at random, so each batch's commit writes a few pages of each, not every
        # one (recording 100,000 seeds, CPU of the parent: 9.5 -> 5.6 s). A name's twin (the
        # same stem) is also always refused after the same seed, whatever the file system.
        to_read.sort(key=operator.itemgetter(1))
        if self._hold_deletions([n for n in gone if fps[n].reason is None], full):
            gone = [n for n in gone if fps[n].reason is not None]  # rejected seeds still go
        with self.store.transaction():
            for result in unreadable:
                self._reject(report, result, result.reason or "", fps.get(result.name), now)
            removed = [name for name in gone if self.store.forget(name) is not None]
        for name in removed:
            report.removed.append(name)
            log.info("removed %s", name)
        self.recovering = recover.pending(self.store)
        self._read(report, to_read, fps, now, renormalize=renormalize)
        if full:
            with self.store.transaction():
                self.store.set_meta("rules_key", rules_key)
                if self.recovering and not report.deferred:
                    recover.done(self.store)

    def _hold_deletions(self, doomed: list[str], full: bool) -> bool:
        """Should the entries of ``doomed`` (seeds gone in this pass) be kept? Yes when the
        seeds folder as a whole has lost a mass of them (``mass_deletion``) and the operator
        has not confirmed it. Keeps ``held_deletions`` in the store up to date (0 once the
        seeds are back or the removal is confirmed), for /healthz."""
        before = self.store.get_meta("held_deletions", 0)
        if not doomed and not before:
            return False
        # A named pass sees only the watcher's names: a burst of deletions may come in
        # several, so the whole folder is what counts.
        missing = len(doomed) if full else missing_entries(self.store, self.folder.root)
        total = self.store.total()
        hold = (not self.allow_mass_delete
                and mass_deletion(missing, total, self.config.max_delete_fraction))
        if hold and doomed:
            log.error("holding the removal of %d of %d entries, whose seeds are gone from %s "
                      "(more than max_delete_fraction = %g of them): the feeds and pages keep "
                      "them. If this is meant, confirm with `feeder build --allow-mass-delete` "
                      "(feeder run stopped) or set max_delete_fraction = 1 and reload "
                      "(SIGHUP); if not, put the seeds back", missing, total,
                      self.folder.root, self.config.max_delete_fraction)
        held = missing if hold else 0
        if held != before:
            with self.store.transaction():
                self.store.set_meta("held_deletions", held)
        return hold

    def _read(self, report: BuildReport, seeds: list[tuple[str, str, int]],
              fps: dict[str, Fingerprint], now: dt.datetime, *, renormalize: bool) -> None:
        """Read ``seeds`` ((path, name, size as scanned); in the pool when there are many)
        and record the results, one transaction per batch; a cancelled pass stops after the
        batch it committed."""
        if not seeds:
            return
        c = self.config
        ctx = ReadContext(self.rules, c.max_seed_bytes, str(self.folder.root))
        size = max(READ_CHUNK, min(MAX_READ_CHUNK, len(seeds) // 64))
        jobs = ((ctx, chunk) for chunk in _chunks(seeds, size, c.max_seed_bytes))
        results = itertools.chain.from_iterable(self.pool.map(
            _read_chunk, jobs, weight=len(seeds), ahead=max(2, READ_AHEAD // size)))
        bar = self.pool.progress(len(seeds), len(seeds), "seed", "reading seeds")
        # one line per seed for the daemon's changes; a big first build only counts them
        level = logging.INFO if len(seeds) <= QUIET_ABOVE else logging.DEBUG
        bulk = len(seeds) >= 2 * BULK_BATCH
        # a first build: without the indexes and trigger made again after (Store.bulk_load)
        loading = self.store.bulk_load() if bulk else contextlib.nullcontext()
        aside = self.store.checkpoints_aside() if bulk else contextlib.nullcontext()
        # ... and, into a store with no entries yet, recorded batch by batch (FreshLoad)
        fresh = (self.store.fresh_load() if bulk and not self.recovering
                 and not any(name in fps for _path, name, _size in seeds) else None)
        self.rec = fresh or self.store
        try:
            with self.store.cache(BULK_CACHE_MB if bulk else None), loading, aside:
                self._record_all(report, results, fps, now, fresh, renormalize=renormalize,
                                 level=level, size=BULK_BATCH if bulk else BATCH, bar=bar)
        finally:
            self.rec = self.store
            fresh = None  # its maps go before the heap is handed back
        if bar is not None:
            bar.close()
        if bulk:
            give_back_heap()

    def _record_all(self, report: BuildReport, results: Iterable[ReadResult | None],
                    fps: dict[str, Fingerprint], now: dt.datetime, fresh: FreshLoad | None, *,
                    renormalize: bool, level: int, size: int, bar) -> None:  # noqa: ANN001
        """Record ``results`` in transactions of ``size``."""
        for batch in chunks(results, size):
            with self.store.transaction():
                for result in batch:
                    if result is not None:  # else gone since the folder was looked at
                        self._record(report, result, fps.get(result.name), now,
                                     renormalize=renormalize, level=level)
                if fresh is not None:
                    fresh.flush()
            if bar is not None:
                bar.update(len(batch))
            if self.cancel.is_set():
                raise BuildCancelled

    def _record(self, report: BuildReport, result: ReadResult, fp: Fingerprint | None,
                now: dt.datetime, *, renormalize: bool, level: int) -> None:
        """Record one seed as read (in the caller's transaction)."""
        name = result.name
        if (fp is not None and fp.hash == result.digest and fp.reason is None
                and not renormalize):
            self.store.touch(name, result.size, result.mtime_ns)
            report.unchanged += 1
            return
        if result.entry is None:
            self._reject(report, result, result.reason or "", fp, now)
            return
        entry, problem = self._check(result.entry, name, now)
        if problem:
            self._reject(report, result, problem, fp, now)
            return
        if result.encoding not in ("utf-8", "ascii"):
            report.converted.append((name, result.encoding))
            log.info("converted %s from %s to UTF-8", name, result.encoding)
        if result.repaired:
            log.info("repaired %s: %s", name, stray_note(result.repaired, result.encoding))
        old = self.store.entry_by_name(name) if fp is not None else None
        if old is not None and fp is not None and fp.hash == result.digest:
            entry = dataclasses.replace(entry, updated=old.updated)  # same text
        else:
            entry = _with_history(entry, old, now)
        page = None
        if old is None and self.recovering:
            entry, page = self._recovered(entry, now)
        self.rec.put_entry(name, result.size, result.mtime_ns, result.digest, entry, now)
        if page is not None:
            self.store.put_in_pages([(page, entry.id)])
        if old is None:
            report.added.append(name)
            log.log(level, "added %s: %s (%s, %s)", name, entry.title,
                    entry.published.date(), entry.language)
        else:
            report.changed.append(name)
            log.log(level, "changed %s", name)

    def _recovered(self, entry: Entry, now: dt.datetime) -> tuple[Entry, int | None]:
        """A new entry as it was published before the state was lost: its updated time
        (or now, if edited since) and its archive page."""
        found = recover.restore(self.store, entry)
        if found is None:
            return entry, None
        updated, page = found
        if updated is None:
            return _with_history(entry, entry, now), page
        return dataclasses.replace(entry, updated=updated), page

    def _check(self, entry: Entry, name: str, now: dt.datetime) -> tuple[Entry, str | None]:
        """Refuse implausible dates and id clashes; give the entry its stored id."""
        if entry.published.year < MIN_YEAR:
            return entry, f"date {entry.published.date()} is before {MIN_YEAR}: probably a typo"
        horizon = now + dt.timedelta(days=self.config.max_future_days)
        if entry.published > horizon:
            return entry, (f"date {entry.published.date()} is more than "
                           f"{self.config.max_future_days} days ahead: probably a typo")
        minted, fresh = self.rec.mint_id(entry.stem, entry.id)
        owner = None if fresh else self.rec.owner_of(minted)  # a fresh id has no owner yet
        if owner is not None and owner != name:
            return entry, f"same entry id as {owner} (file stems must be unique)"
        owner = self.rec.slug_owner(entry.slug)  # e.g. "café" and a seed named "cafe-<hash>"
        if owner is not None and owner != name:
            return entry, f"same page {render.entry_path(entry)} as {owner}: rename one of them"
        if minted == entry.id:  # a fresh id: the entry as it is (no copy per seed)
            return entry, None
        return dataclasses.replace(entry, id=minted), None

    def _reject(self, report: BuildReport, result: ReadResult, reason: str,
                fp: Fingerprint | None, now: dt.datetime) -> None:
        """Record the rejection (in the caller's transaction); report and log it unless
        ``fp`` (the previous record) said the same."""
        self.rec.reject(result.name, result.size, result.mtime_ns, result.digest, reason, now)
        if fp is None or fp.reason != reason:
            report.rejected.append((result.name, reason))
            log.warning("rejected %s: %s", result.name, reason)


def mass_deletion(missing: int, total: int, fraction: float) -> bool:
    """Would removing ``missing`` of ``total`` entries be a mass deletion, to be held? More
    than ``fraction`` of them, and at least ``MASS_DELETION`` (a small site may lose half of
    its few entries on purpose)."""
    return missing >= MASS_DELETION and missing > fraction * total


def missing_entries(store: Store, root: Path) -> int:
    """How many of the store's entries have no file of their name in ``root`` (all of them
    when ``root`` cannot be listed: an unmounted or vanished folder)."""
    try:
        present = set(os.listdir(root))
    except OSError:
        present = set()
    return sum(1 for name in store.entry_names() if name not in present)


def _with_history(entry: Entry, old: Entry | None, now: dt.datetime) -> Entry:
    """``updated`` stays ``published`` until the text changes, then it is when we saw it."""
    if old is None:
        return entry
    return dataclasses.replace(entry, updated=max(now.astimezone(entry.published.tzinfo),
                                                  entry.published))
