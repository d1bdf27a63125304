"""Atomic replacement of rendered files, with a precomputed gzip sibling.

A file is replaced by writing a temp file in the same folder and renaming it over the old
one, so a reader only ever sees the old or the new complete file. The temp file is flushed
to disk before the rename and the folder after it (``Batch`` does both once for many files),
so a power loss cannot leave an empty or partial file either. A file whose bytes would not
change is not touched at all, so its mtime and ETag stay put.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import errno
import hashlib
import itertools
import logging
import os
import queue
import re
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from isal import igzip

from .errors import OutputError

log = logging.getLogger("feeder")

GZIP_MIN_BYTES = 512
GZIP_LEVEL = 2  # ISA-L's: 7x faster than zlib's level 4 on a 50-entry feed, 6% larger
_serial = itertools.count()
SYNCFS_FROM = 8  # files in a batch from which one syncfs is cheaper than an fdatasync each
_LIBC = ctypes.CDLL(None, use_errno=True)


_pid = os.getpid()  # in the temp files' names (os.getpid is a system call each time)


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def _stage(path: Path, data: bytes, flush: bool = False) -> str:
    """Write ``data`` to a new temp file beside ``path`` (and ``flush`` it to disk); return
    the temp file's name."""
    # A temp name of our own (pid + counter), and an fchmod only where the file was not made
    # 0o644 (it dirties the inode): a third of mkstemp's cost, which counts when a first
    # build writes 100,000 entry pages.
    while True:
        tmp = f"{path.parent}{os.sep}.{path.name}.{_pid}-{next(_serial)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            break
        except FileExistsError:  # left by a killed process of the same pid: not ours to touch
            continue
    try:
        try:
            if os.fstat(fd).st_mode & 0o7777 != 0o644:  # the umask or a default ACL
                os.fchmod(fd, 0o644)  # whatever they say: the web server must read it
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if flush:
                os.fdatasync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def gzip_bytes(data: bytes) -> bytes:
    """The ``.gz`` sibling's bytes (no time stamp). Not always the same bytes for the same
    data: ISA-L's output varied once between two calls in one test run (and may vary with
    the CPU). Nothing compares them: the store hashes the uncompressed file, and a sibling
    is checked by decompressing it (``_sibling_holds``)."""
    return igzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def digest(data: bytes) -> str:
    """The content hash the store keeps of each output (sha256, hex)."""
    return hashlib.sha256(data).hexdigest()


def prepare(job: tuple[Path, bytes]) -> tuple[str, bool, bytes | None]:
    """(a file, its new bytes) -> the bytes' ``digest``, whether the file holds them
    already, and, if it does not, the ``.gz`` sibling's bytes (None below
    ``GZIP_MIN_BYTES``). For ``HELPERS``: hashing, reading the file and compressing let go
    of the GIL, so a document is made ready while the caller renders the next."""
    path, data = job
    in_place = unchanged(path, data)
    gz = None if in_place or len(data) < GZIP_MIN_BYTES else gzip_bytes(data)
    if gz is not None:  # a folder where its sibling goes would fail the batch, later
        _stat_file(path.with_name(path.name + ".gz"))
    return digest(data), in_place, gz


def settle(prepared: tuple[str, bool, bytes | None],
           known: str | None) -> tuple[bool, bool] | None:
    """What to do with a document ``prepare`` made ready, given the hash recorded for its
    path (``known``, the outbox's): None if its file holds the recorded version (nothing to
    record), else (write it, it is a new version to announce).

    A file found in place under another recorded hash is written again, with its ``.gz``
    sibling: the pass that recorded that version stopped between renaming the sibling
    (first) and the file, so the sibling may hold it, which gzip_static would serve. A
    version recorded already was announced already, whatever became of the file; one found
    in place with none recorded (a file from before the outbox) was too."""
    digest, in_place, _gz = prepared
    if in_place and known == digest:
        return None
    return (not in_place or known is not None,
            known != digest and not (known is None and in_place))


def unchanged(path: Path, data: bytes) -> bool:
    """Does ``path`` hold exactly ``data`` already?"""
    return _holds(path, data) is True


def _stat_file(path: Path) -> os.stat_result | None:
    """``path``'s stat, None if there is nothing there. Something there that is not a file
    (a folder made where a feed was) raises ``OutputError`` at once, before a pass records
    a version to announce: no rename could replace it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(path, os.strerror(errno.EISDIR) if stat.S_ISDIR(st.st_mode)
                          else "not a regular file")
    return st


def _holds(path: Path, data: bytes) -> bool | None:
    """Does ``path`` hold exactly ``data`` already? None if there is no ``path``; raises
    ``OutputError`` if it is no file (``_stat_file``)."""
    st = _stat_file(path)
    if st is None:
        return None
    try:
        return st.st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc


def read_file(path: str | Path) -> bytes | None:
    """The bytes of the regular file at ``path``; None if there is none, it cannot be read,
    or it is no regular file: opened without blocking, so that a FIFO made at an output's
    path does not hold the pass until something writes into it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _sibling_holds(path: Path, data: bytes) -> bool:
    """Does ``path``'s ``.gz`` sibling decompress to ``data``? Not when a pass stopped
    between renaming the sibling (first) and the file: the sibling holds the version that
    never went in place, which gzip_static would serve beside a file found as written."""
    gz = read_file(f"{path}.gz")
    try:
        return gz is not None and igzip.decompress(gz) == data
    except Exception:  # noqa: BLE001 - damaged (EOFError, IsalError)
        return False


def _syncfs(folder: Path) -> None:
    """Flush every written file of the file system that holds ``folder``: one syncfs(2)
    instead of an fsync per file (os.sync where libc has no syncfs)."""
    fn = getattr(_LIBC, "syncfs", None)
    if fn is None:
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), folder)
    finally:
        os.close(fd)


class Helpers:
    """Daemon threads that run calls which let go of the GIL (fdatasync, zlib) beside the
    caller: ``count`` started at first use, more (up to ``most``) when ``map`` is given
    more calls than there are threads, and never joined (idle, they hold no work)."""

    def __init__(self, count: int, most: int | None = None) -> None:
        self.count, self.most = count, max(count, most or count)
        self._jobs: queue.SimpleQueue | None = None
        self._started = 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:  # a forked child has none of its parent's threads
        self._jobs, self._started, self._lock = None, 0, threading.Lock()

    def _queue(self, wanted: int = 0) -> queue.SimpleQueue:
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
            for i in range(self._started, min(max(self.count, wanted), self.most)):
                threading.Thread(target=self._work, args=(self._jobs,),
                                 name=f"feeder-io-{i}", daemon=True).start()
                self._started = i + 1
            return self._jobs

    def start(self, count: int) -> None:
        """Have ``count`` threads (up to ``most``) ready now, not when first needed."""
        self._queue(count)

    @staticmethod
    def _work(jobs: queue.SimpleQueue) -> None:
        while True:
            fn, arg, future = jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(arg))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)

    def submit(self, fn: Callable[[Any], Any], arg: Any,
               wanted: int = 0) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue(wanted).put((fn, arg, future))
        return future

    def map(self, fn: Callable[[Any], Any], args: list) -> list:
        """``[fn(a) for a in args]``, run at once on the threads (one each, up to ``most``);
        raises the first error."""
        return [f.result() for f in [self.submit(fn, a, len(args)) for a in args]]


HELPERS = Helpers(4)  # compression (ISA-L) and closing replaced files
# The flushes (fdatasync, folder fsync), on threads of their own, up to 32: a one-seed pass
# flushes ~20 files, and each fdatasync waits for a journal commit. Issued all at once they
# share one or two commits; four at a time took five rounds, each waiting behind what other
# processes had queued for the disk (at 100k seeds, beside a writer flushing 100 MB at a
# time: that flush's median 26 -> 20 ms, p90 76 -> 53). They allocate next to nothing, so
# the threads hold no heap of their own (compression's buffers stay on HELPERS' four).
FLUSHERS = Helpers(4, most=32)
# A batch's commit run beside its caller (``Batch.commit_behind``): one thread, which only
# waits (on HELPERS' writes, then on FLUSHERS' flushes) and renames.
COMMITTER = Helpers(1)


def _fdatasync(path: str) -> None:
    _sync(path, os.O_WRONLY, os.fdatasync)


def _flush_all(paths: list[str]) -> None:
    """fdatasync each file, all at once (in threads, which let go of the GIL while they
    wait), so that the file system commits them together: one journal commit's wait instead
    of one per file (6 files here: 4 ms instead of 10)."""
    if len(paths) < 2:
        for path in paths:
            _fdatasync(path)
        return
    FLUSHERS.map(_fdatasync, paths)


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk."""
    _sync(path, os.O_RDONLY, os.fsync)


def sync_folders(folders: dict[Path, None]) -> None:
    """fsync ``folders`` at once (a batch's left unsynced), then forget them."""
    if folders:
        FLUSHERS.map(fsync, list(folders))
        folders.clear()


def _sync(path: str | Path, mode: int, sync: Callable[[int], None]) -> None:
    fd = os.open(path, mode | os.O_CLOEXEC)
    try:
        sync(fd)
    finally:
        os.close(fd)


class Batch:
    """Outputs replaced together, so that each is on disk before its rename and a crash
    leaves every path with its old or its new complete bytes, never an empty file.

    ``write`` puts each changed file in a temp file beside it; ``commit`` flushes them all
    (one ``syncfs`` for a batch of ``SYNCFS_FROM`` files or more, else an ``fdatasync``
    each: syncfs also flushes other processes' writes), renames them into place in order,
    then fsyncs each folder it renamed into once. Leaving the ``with`` block commits, or on
    an error removes the temp files. ``hashes`` maps each path passed to ``write`` (changed
    or not) to the sha256 of its bytes (unless told not to). ``syncfs=False`` flushes
    with an fdatasync per file (a few at once) whatever their number, so the batch never
    waits on other processes' writes. ``sync_folders=False`` leaves the folders unsynced in
    ``folders``, for a later batch to sync with its own (one round of folder syncs for
    both); until then the renames may not survive a power loss. ``background=True`` writes
    each temp file on a thread of its own (``FLUSHERS``; a ``.gz`` sibling once compressed)
    while the caller renders the next output, and flushes it there at once: a one-seed pass
    writes ~20 at 100k seeds, whose writes took ~3 ms of its main thread and whose flush,
    all at commit, ~10 ms. ``commit`` waits for them, and an error writing one is raised
    there.
    """

    def __init__(self, *, durable: bool = True, syncfs: bool = True,
                 sync_folders: bool = True, background: bool = False) -> None:
        self.durable, self.syncfs, self.sync_folders = durable, syncfs, sync_folders
        self.background = background
        self.hashes: dict[Path, str] = {}
        # the folders to fsync at commit: those renamed into, and any a caller adds (the
        # folders of an earlier batch committed with sync_folders=False, which keeps them here)
        self.folders: dict[Path, None] = {}
        # (temp file, path); a .gz sibling still being compressed has its Future instead,
        # and a temp file being written in the background its _Writing
        self._staged: list[tuple[str | concurrent.futures.Future | _Writing, Path]] = []
        self._new: set[Path] = set()  # paths staged where write found no file: none to hold

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def write(self, path: Path, data: bytes, *, compress: bool = True, check: bool = True,
              gz: bytes | concurrent.futures.Future | None = None,
              hashed: str | None = None, keep_hash: bool = True, absent: bool = False) -> bool:
        """Stage ``data`` for ``path`` unless it holds exactly that already; True if staged.
        With ``compress``, ``path.gz`` is staged first, so the sibling is never older than
        the file it belongs to; ``gz`` is its bytes when the caller compressed already, or
        their Future (else it is compressed on a helper thread: the commit waits for it).
        ``check=False`` skips reading the old file, for callers that know it changed;
        ``hashed`` is ``digest(data)`` when the caller has it; ``keep_hash=False`` leaves
        ``path`` out of ``hashes`` (hashing a 1 MB sitemap chunk that no one records costs
        1.5 ms). ``absent``: the caller knows that neither ``path`` nor ``path.gz`` exists
        (a listing of the folder taken in this pass, before anything was written to either
        name), so neither is looked up: no stat of the file (a cold build's 100,000 entry
        pages: as many failed stats, each taking the folder's lock from the writers beside)
        and no unlink of a sibling that is not there."""
        if keep_hash:
            self.hashes[path] = hashed or digest(data)
        if absent:
            self._new.add(path)
        elif check:
            held = _holds(path, data)
            if held and not (compress and len(data) >= GZIP_MIN_BYTES
                             and not _sibling_holds(path, data)):
                return False
            if held is None:
                self._new.add(path)
        try:
            try:
                self._stage_pair(path, data, compress, gz, absent)
            except FileNotFoundError:  # first file in its folder
                path.parent.mkdir(parents=True, exist_ok=True)
                self._stage_pair(path, data, compress, gz, absent)
        except OSError as exc:
            raise OutputError(path, exc.strerror or str(exc)) from exc
        return True

    def _stage_pair(self, path: Path, data: bytes, compress: bool,
                    gz_data: bytes | concurrent.futures.Future | None,
                    absent: bool = False) -> None:
        if compress and len(data) >= GZIP_MIN_BYTES:
            gz = path.with_name(path.name + ".gz")
            if gz_data is None:
                gz_data = HELPERS.submit(gzip_bytes, data)
            if self.background:
                self._staged.append((self._behind(gz, gz_data), gz))
            else:
                self._staged.append((_stage(gz, gz_data) if isinstance(gz_data, bytes)
                                     else gz_data, gz))
            unlink = False
        else:  # one left from an older version would be served by gzip_static
            unlink = not absent
            if unlink and not self.background:
                _drop_sibling(path)
        if self.background:  # its sibling dropped there too, before the file's rename
            self._staged.append((self._behind(path, data, unlink), path))
        else:
            self._staged.append((_stage(path, data), path))

    def _behind(self, path: Path, data: bytes | concurrent.futures.Future,
                drop_sibling: bool = False) -> _Writing:
        """A temp file written, and flushed if the batch is durable, on a thread of its own
        (``FLUSHERS``: one each, so that their flushes wait for a journal commit together);
        ``drop_sibling``: unlink ``path.gz`` there first (in a one-seed pass at 100k, ~0.2 ms
        a file on the caller's thread, the folder's lock shared with the files being
        created)."""
        job = (path, data, self.durable, drop_sibling)
        return _Writing(FLUSHERS.submit(_stage_behind, job, len(self._staged) + 1),
                        flushed=self.durable)

    def commit(self, ready: Callable[[], None] | None = None) -> None:
        """Flush the staged files, rename them in order and sync their folders; ``ready`` is
        called between the flush and the first rename (where a batch that must not be
        renamed before another is in place waits for it)."""
        staged, self._staged = self._staged, []
        path = None
        held: list[int] = []
        unflushed = []
        try:
            for i, (tmp, path) in enumerate(staged):
                if isinstance(tmp, _Writing):  # written meanwhile
                    staged[i] = (tmp.future.result(), path)
                    if tmp.flushed:
                        continue
                elif not isinstance(tmp, str):  # a .gz sibling, compressed meanwhile
                    staged[i] = (_stage(path, tmp.result()), path)
                unflushed.append(staged[i])
            if self.durable:
                self._flush(unflushed, self.syncfs)
            if ready is not None:
                ready()
            new, self._new = self._new, set()
            for i, (tmp, path) in enumerate(staged):
                before_rename(path)
                if path not in new:
                    _hold(path, held)
                os.replace(tmp, path)
                staged[i] = ("", path)
                self.folders[path.parent] = None
            if self.durable and self.sync_folders:  # at once, like the files
                folders, self.folders = list(self.folders), {}
                FLUSHERS.map(fsync, folders)
        except BaseException as exc:
            self._staged = staged
            self.abort()
            if isinstance(exc, OSError) and path is not None:
                raise OutputError(path, exc.strerror or str(exc)) from exc
            raise
        finally:
            if held:
                HELPERS.submit(_close_all, held)

    def commit_behind(self) -> concurrent.futures.Future:
        """``commit`` on a thread of its own (``COMMITTER``), while the caller goes on (a
        one-seed pass renders its archive page and sitemap while its feeds are flushed); the
        Future's ``result()`` returns once the files are in place, or raises what ``commit``
        would. Until then the caller must not touch the batch."""
        return COMMITTER.submit(Batch.commit, self)

    @staticmethod
    def _flush(staged: list[tuple[str, Path]], syncfs: bool = True) -> None:
        if syncfs and len(staged) >= SYNCFS_FROM:
            _syncfs(staged[0][1].parent)
            return
        _flush_all([tmp for tmp, _path in staged])

    def abort(self) -> None:
        """Remove the temp files not renamed yet."""
        staged, self._staged = self._staged, []
        self._new.clear()
        for tmp, _path in staged:
            if isinstance(tmp, _Writing):  # the file it wrote, once it is done
                try:
                    tmp = tmp.future.result()
                except BaseException:  # noqa: BLE001 - no file, or the caller's error first
                    continue
            if tmp and isinstance(tmp, str):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)


class _Writing:
    """A temp file being written on a helper thread: its Future gives the file's name;
    ``flushed``: the thread flushes it to disk too."""

    __slots__ = ("flushed", "future")

    def __init__(self, future: concurrent.futures.Future, flushed: bool = False) -> None:
        self.future, self.flushed = future, flushed


def _drop_sibling(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{path}.gz")


def _stage_behind(job: tuple[Path, bytes | concurrent.futures.Future, bool, bool]) -> str:
    """A background batch's temp file, written (and flushed) on a flusher thread: the bytes
    of a ``.gz`` sibling are waited for there, an old sibling of a file now too small to
    compress is dropped there, and its folder is made if no write has made it yet (the first
    file of a new folder and its sibling are staged on two threads)."""
    path, data, flush, drop_sibling = job
    if drop_sibling:
        _drop_sibling(path)
    if not isinstance(data, bytes):
        data = data.result()
    try:
        return _stage(path, data, flush)
    except FileNotFoundError:  # first file in its folder
        path.parent.mkdir(parents=True, exist_ok=True)
        return _stage(path, data, flush)


def _hold(path: Path, held: list[int]) -> None:
    """Open the file a rename is about to replace, if any, so that the rename does not free
    its blocks: closing it does, on a helper thread (0.2 ms a file here, up to 2 ms while
    other processes keep the journal busy, and the renames are serial)."""
    with contextlib.suppress(OSError):  # none yet (a new file), or unopenable: a plain rename
        held.append(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def before_rename(path: Path) -> None:
    """Called before each rename into the output folder: a seam for crash-injection tests
    (raise here to stop a pass between recording an output and putting it in place)."""


def write(path: Path, data: bytes, *, compress: bool = True, durable: bool = True,
          check: bool = True, gz: bytes | None = None) -> bool:
    """Replace ``path`` with ``data`` unless it already holds exactly that; True if written.
    A batch of one file (see ``Batch``); ``durable=False`` skips the flush to disk."""
    with Batch(durable=durable) as batch:
        return batch.write(path, data, compress=compress, check=check, gz=gz)


_TEMP = re.compile(r"\..+\.(\d+)-\d+\.tmp", re.S)  # _stage's names: .NAME.PID-SERIAL.tmp


def remove_dead_temps(folder: Path, names: Iterable[str] | None = None) -> list[str]:
    """Remove the temp files ``_stage`` left in ``folder`` (``names``: its listing, when the
    caller has it) for processes that are gone: a writer killed between its write and its
    rename. Those of live processes (a pass in flight, its workers) are kept. Returns the
    names removed."""
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            return []
    gone = []
    for name in names:
        if name[:1] != "." or not name.endswith(".tmp") or not (m := _TEMP.fullmatch(name)):
            continue
        try:
            os.kill(int(m[1]), 0)
            continue  # alive (or pid 0: no one's)
        except PermissionError:
            continue  # alive, another user's
        except ProcessLookupError:
            pass
        except (OverflowError, ValueError):
            continue  # no pid: not ours
        path = folder / name
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()
                gone.append(name)
    return gone


def remove(path: Path) -> bool:
    """Delete ``path`` and its gzip sibling; True if anything was there."""
    removed = False
    for p in (path, path.with_name(path.name + ".gz")):
        try:
            p.unlink()
            removed = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(p, exc.strerror or str(exc)) from exc
    return removed


def sweep_temp_files(folder: Path) -> int:
    """Remove temp files left by a crash mid-write (only while holding the store's lock);
    returns how many."""
    count = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    count += 1
                except OSError:
                    pass
    if count:
        log.info("removed %d temp files left by an interrupted write", count)
    return count
