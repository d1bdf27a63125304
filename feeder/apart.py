"""``feeder run``'s cold build, run in a process of its own so that its residue stays there.

A first build over a big folder (an empty store, at least ``POOL_THRESHOLD`` seeds) allocates
and frees hundreds of MB in the process that runs it, and leaves that process's heap
fragmented: Python's arenas and glibc's keep ~10 MB of it for good. An idle daemon that had
made its own cold build of 10k seeds held 59 MB of private memory; one restarted on the same
built site, 48 MB. So the daemon runs that one pass in a child (a fresh interpreter), which
exits when it is done.

The child opens the state file beside the daemon, which holds the writer's lock and writes
no entries meanwhile (its build thread waits here). Over a socket pair it tells the daemon
each time it looks at its ``cancel`` flag (progress, for the systemd watchdog) and when the
feeds are in place (served at once), asks it which files the watcher sees being written, and
sends the ``BuildReport`` at the end. A stopping daemon sends it SIGTERM, which stops it at
its next batch, as the daemon's own builder would stop. It dies with the daemon (kill -9
included).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from .errors import FeederError
from .report import BuildCancelled, BuildReport

log = logging.getLogger("feeder")
POLL = 0.5  # seconds between the daemon's looks at its cancel flag while the child builds
BEAT = 0.2  # seconds between the child's progress messages, at most
STOP_WAIT = 60.0  # seconds a cancelled child has to commit what it synced and exit


class ApartError(FeederError):
    """The child failed: its error, as ``Type: message``, or how it ended."""


def build(config: object, *, cancel: threading.Event, beat: Callable[[], None],
          busy: Callable[[], set[str]] | None, on_feeds: Callable[[], None] | None,
          force: bool = False) -> BuildReport:
    """One full pass of ``config`` in a child process; its report. ``cancel`` stops it (the
    flag alone is looked at: a ``BeatingEvent``'s looks would count as progress); ``beat``
    is called for each sign of the child's progress."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from feeder.apart import child; child()",
             str(theirs.fileno()), str(os.getpid())],
            stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno()])
        theirs.close()
        conn = Connection(os.dup(ours.fileno()))
        try:
            conn.send((config, force, busy is not None, _log_level()))
            return _follow(proc, conn, cancel, beat, busy, on_feeds)
        finally:
            conn.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _follow(proc: subprocess.Popen, conn: Connection, cancel: threading.Event,
            beat: Callable[[], None], busy: Callable[[], set[str]] | None,
            on_feeds: Callable[[], None] | None) -> BuildReport:
    stopped = False
    while True:
        if not stopped and threading.Event.is_set(cancel):
            proc.send_signal(signal.SIGTERM)
            stopped = True
        try:
            if not conn.poll(STOP_WAIT if stopped else POLL):
                if stopped:
                    raise BuildCancelled
                continue
            message = conn.recv()
        except (EOFError, OSError):
            code = proc.wait()
            if stopped:
                raise BuildCancelled from None
            raise ApartError(f"the first build's process ended with exit status {code}") \
                from None
        kind = message[0]
        if kind == "beat":
            beat()
        elif kind == "busy":
            conn.send(busy() if busy is not None else set())
        elif kind == "feeds":
            if on_feeds is not None:
                on_feeds()
        elif kind == "done":
            return message[1]
        elif kind == "cancelled":
            raise BuildCancelled
        else:  # "error"
            raise ApartError(message[1])


def _log_level() -> int:
    return logging.getLogger("feeder").getEffectiveLevel()


class _Channel:
    """The child's end of the socket pair, shared by the threads of its pass."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, message: tuple) -> None:
        with self.lock:
            self.conn.send(message)

    def busy(self) -> set[str]:
        with self.lock:
            self.conn.send(("busy",))
            return self.conn.recv()


class _Cancel(threading.Event):
    """The child's builder's ``cancel``: its looks at it are progress the daemon hears of
    (one message per ``BEAT`` seconds at most)."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self._channel = channel
        self._last = 0.0

    def is_set(self) -> bool:
        now = time.monotonic()
        if now - self._last >= BEAT:
            self._last = now
            self._channel.send(("beat",))
        return super().is_set()


def child() -> None:
    """The child's side (``python -c``): argv holds the socket's descriptor and the
    daemon's pid."""
    fd, parent = int(sys.argv[1]), int(sys.argv[2])
    from . import pool

    pool.die_with_parent(parent)
    channel = _Channel(Connection(fd))
    config, force, watched, level = channel.conn.recv()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                           datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("feeder")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    cancel = _Cancel(channel)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: cancel.set())
    from .builder import Builder
    from .store import Store

    store = Store(config.state)
    try:
        builder = Builder(config, store, busy=channel.busy if watched else None,
                          settle=config.settle, progress=False)
        builder.cancel = cancel
        builder.on_feeds = lambda: channel.send(("feeds",))
        try:
            report = builder.build(None, force=force)
        except BuildCancelled:
            channel.send(("cancelled",))
            return
        except Exception as exc:  # noqa: BLE001 - told to the daemon, which logs it
            log.debug("first build failed", exc_info=exc)
            channel.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        channel.send(("done", report))
    finally:
        store.close()
