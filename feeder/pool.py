"""The worker processes that read seeds and write pages when a pass has many of them.

A pool is started on first need (``POOL_THRESHOLD`` seeds or pages), or its fork server ahead
of a first build (``warm``), and stopped with the pass:
its fork server holds the preloaded libraries and language model (``feeder.preload``), which
a long-running daemon should not keep between big passes. Jobs are handed out lazily, a few
per worker at a time, so results stream back in order and are never all held.

The pool's processes die with their parent, kill -9 included: the fork server and each
worker ask the kernel (Linux ``prctl(PR_SET_PDEATHSIG)``) for SIGKILL when their parent
dies, then check that it had not died already. The workers' parent is the fork server, and
the fork server's is the thread that started the pool (so a pool is used and closed on the
thread that started it, as ``Builder.build`` does).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import WorkerError

POOL_THRESHOLD = 400  # seeds or pages before a process pool pays for its start-up
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The pid of the process starting a fork server, for the fork server to check that its
# parent is still alive once it has asked to die with it.
_PARENT_ENV = "_FEEDER_POOL_PARENT"

_workers_parent: int | None = None  # in a fork server: its own pid, the parent of the workers
_worker = False  # this process is a worker (set by ``_start_worker``)
_publishing = False  # in a worker: it has had a publishing job, and let go of the reading's memory


class Pool:
    """Runs jobs in worker processes when there are many, else in this process; shows
    progress bars for big jobs if ``progress`` (on a terminal)."""

    def __init__(self, *, progress: bool = False) -> None:
        self.show_progress = progress
        self.workers = min(os.cpu_count() or 1, 8)
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._warmed = False  # the fork server started ahead of the first job

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, fn: Callable[[Any], Any], jobs: Iterable, *, weight: int,
            ahead: int = 2) -> Iterator:
        """``fn`` over ``jobs``, results in order: in the workers if the jobs hold ``weight``
        seeds or pages in all, at least ``POOL_THRESHOLD`` (and there are two cores); at most
        ``ahead`` jobs per worker (plus two) are in flight, taken from ``jobs`` as the
        results are."""
        executor = self._start() if weight >= POOL_THRESHOLD else None
        if executor is None:
            return map(fn, jobs)
        return _bounded(executor, fn, jobs, ahead * self.workers + 2)

    def in_workers(self, weight: int) -> bool:
        """Would ``map`` run jobs of this ``weight`` in the worker processes?"""
        return weight >= POOL_THRESHOLD and self.workers >= 2

    def progress(self, weight: int, total: int, unit: str, desc: str):  # noqa: ANN201
        """A progress bar on stderr of ``total`` units for a big job (``weight`` as for
        ``map``) if this pool shows them; None otherwise."""
        if not (self.show_progress and weight >= POOL_THRESHOLD):
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr)

    def close(self) -> None:
        """Stop the workers and the fork server (the next big job starts new ones)."""
        if self._executor is not None:
            _kill_if_broken(self._executor)
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
            _stop_fork_server()
        elif self._warmed:
            _stop_fork_server()
        self._warmed = False

    def warm(self) -> None:
        """Start the fork server now, for a pass that will surely need the workers (a first
        build): it loads the libraries and the language model (~1 s) while this process
        looks at the folder, instead of after."""
        if self.workers >= 2 and self._executor is None and not self._warmed:
            from multiprocessing import forkserver

            self._context()
            forkserver.ensure_running()
            self._warmed = True

    def _context(self):  # noqa: ANN202 - a multiprocessing context
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["feeder.preload"])  # before the fork server starts
        if os.environ.get(_PARENT_ENV) != str(os.getpid()):
            os.environ[_PARENT_ENV] = str(os.getpid())  # inherited by the fork server
        return ctx

    def _start(self) -> concurrent.futures.ProcessPoolExecutor | None:
        """The process pool, started on first need; None on a single core."""
        if self._executor is None:
            if self.workers < 2:
                return None
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=self._context(), initializer=_start_worker)
        return self._executor


def _kill_if_broken(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    """Kill the workers of a pool one of whose workers died (``WorkerError``). CPython's
    clean-up terminates the others and then waits for them, but a worker started for a job
    submitted meanwhile can be missed and waited for forever: a worker killed as the pool
    started hung ``feeder build`` in about half the tries. (``_broken`` and ``_processes``
    are the executor's own, unchanged from 3.8 to 3.13; without them nothing is killed.)"""
    if getattr(executor, "_broken", False):
        for process in list(getattr(executor, "_processes", {}).values()):
            with contextlib.suppress(OSError, ValueError):  # gone, or already closed
                process.kill()


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux), then exit at once
    if the parent is no longer ``parent``: it died before the request took effect."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)


def start_fork_server() -> None:
    """In the fork server (from ``feeder.preload``): die with the process that started it."""
    global _workers_parent
    die_with_parent(int(os.environ.get(_PARENT_ENV) or os.getppid()))
    _workers_parent = os.getpid()


def _start_worker() -> None:
    """In each worker, before its first job: die with the fork server that forked it, and
    keep no feed fragments (only the publishing process reuses them)."""
    from . import render

    global _worker
    _worker = True
    die_with_parent(_workers_parent if _workers_parent is not None else os.getppid())
    render.keep_no_fragments()


def let_go_of_reading() -> None:
    """In a worker, at each publishing job (pages, archives, sitemap chunks): at the first,
    let go of what only reading seeds needed. The pages of the language model that this
    worker's texts touched stay mapped, and the heap's freed pages held, until the worker
    ends with the pass, and they count in the process tree's memory while the pages are
    written (a cold build of 100,000 seeds: its peak). Mapping the model again, should a
    seed come to this worker later in the pass, takes a few ms."""
    global _publishing
    if _publishing or not _worker:
        return  # done already, or not in a worker (the job runs in the publishing process)
    _publishing = True
    from . import language

    language.release()
    give_back_heap()


def give_back_heap() -> None:
    """Hand the heap's free pages back to the system (glibc keeps them otherwise): after a
    big read, whose freed batches and SQLite cache the rest of the pass would sit on top of
    (at 10,000 seeds the parent's PSS after the read: 61 MB, and 34 MB once trimmed), in a
    worker that turns from reading to writing, and in an idle daemon."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


def _stop_fork_server() -> None:
    """The fork server keeps the preloaded libraries and language model (~100 MB): stop it
    with the pool, and multiprocessing's resource tracker, a process of its own (~9 MB)
    that would outlive it; the next pool starts both again. (``_stop`` is private: where a
    Python has none, the process is left running.)"""
    from multiprocessing import forkserver, resource_tracker

    for owner in (getattr(forkserver, "_forkserver", None),
                  getattr(resource_tracker, "_resource_tracker", None)):
        stop = getattr(owner, "_stop", None)
        if stop is not None:
            with contextlib.suppress(OSError):  # already reaped, or its socket cleaned away
                stop()


def _bounded(pool: concurrent.futures.Executor, fn: Callable, jobs: Iterable,
             window: int) -> Iterator:
    """``pool.map`` that takes jobs lazily, keeping at most ``window`` in flight. A worker
    that dies (killed, out of memory) is a ``WorkerError``: one line for the operator, not
    multiprocessing's traceback."""
    pending: collections.deque = collections.deque()
    try:
        for job in jobs:
            pending.append(pool.submit(fn, job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except concurrent.futures.BrokenExecutor as exc:  # BrokenProcessPool
        raise WorkerError("killed, or out of memory?") from exc


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
