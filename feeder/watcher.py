"""watchdog events -> settled sets of changed seed names.

A seed is reported when its writer closes it (inotify's close-after-write), when it is moved
into place (an editor's atomic save), when it is deleted or moved away — or, on systems that
report no close, once it has stayed unchanged for the settle interval. A file still being
written is never reported half-written. Hidden and temporary files are ignored.

With inotify (Linux) every writer's close is reported, even a crashed one's, so a file that is
still open for writing is simply waited for; the settle interval is the fallback for
observers without close events (polling, some network filesystems). A file moved (or
hard-linked) in from another folder is reported by inotify as a creation that is never
opened nor closed: one not opened within ``MOVED_IN_GRACE`` seconds of its creation is ready.

The folder is followed by path (see ``follow.py``): when the path names another folder (a
symlink swap), a new one (deleted and made again) or none, the watcher watches what is there
now and calls ``on_replaced``, since whatever the new folder holds was never reported.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from .folder import is_candidate
from .follow import Poller, identity

log = logging.getLogger("feeder")

# inotify queues a creating open()'s IN_CREATE and IN_OPEN in the same syscall, so the open
# follows the creation at once; a creation with no open after this long was a move or link.
MOVED_IN_GRACE = 0.1


class Watcher(FileSystemEventHandler):
    def __init__(self, folder: Path, extensions: tuple[str, ...],
                 on_ready: Callable[[set[str]], None], settle: float = 1.0,
                 on_replaced: Callable[[], None] | None = None) -> None:
        self.path = folder  # followed by path; ``folder`` is where it leads now
        self.folder = os.path.realpath(folder)
        self.extensions = extensions
        self.on_ready = on_ready
        self.on_replaced = on_replaced
        self.settle = settle
        self._writing: dict[str, float] = {}  # name -> deadline (monotonic)
        self._unopened: set[str] = set()  # created, no open seen yet: maybe moved in
        self._cond = threading.Condition()
        self._stopping = False
        self._observer: Observer | None = None
        self._observer_lock = threading.Lock()  # the follower and restart() both swap it
        # The inotify watch says when the folder is deleted (``lost``), even if a new one
        # gets its inode number at once, so the folder need not be held open (which would
        # keep its file system from being unmounted).
        self._identity = identity(folder)
        self._follower = Poller("feeder-follow", self._follow)
        self._timer: threading.Thread | None = None
        self.lost = threading.Event()  # set when the folder itself went away
        self.has_close_events = False

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start watching; raises OSError if the folder is not there, but follows its path
        all the same, and watches it as soon as it is."""
        self._stopping = False
        if self._timer is None:
            self._timer = threading.Thread(target=self._settle_loop, name="feeder-settle",
                                           daemon=True)
            self._timer.start()
        self._follower.start()
        with self._observer_lock:
            self._start_observer()

    def restart(self) -> None:
        """Watch the folder again (after it was removed and re-created)."""
        with self._observer_lock:
            self._stop_observer()
            self._start_observer()

    def _start_observer(self) -> None:
        self._identity = identity(self.path)  # first: a change after it is seen at the next look
        self.folder = os.path.realpath(self.path)
        self.lost.clear()
        if not os.path.isdir(self.folder):
            raise FileNotFoundError(errno.ENOENT, "no folder there", os.fspath(self.path))
        observer = Observer()
        observer.schedule(self, self.folder, recursive=False)
        self.has_close_events = type(observer).__name__ == "InotifyObserver"
        observer.start()
        self._observer = observer

    def _stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def _follow(self) -> None:
        """A look at the path (a Poller's tick): if it leads to another folder, or to none, or
        the watched one was deleted, watch what is there now and say so."""
        if identity(self.path) == self._identity and not self.lost.is_set():
            return
        with self._observer_lock:
            self._stop_observer()
            with self._cond:  # names being written in the old folder are not this one's
                self._writing.clear()
                self._unopened.clear()
            try:
                self._start_observer()
            except OSError as exc:
                log.warning("cannot watch seeds folder %s: %s; watching for it to change",
                            self.path, exc.strerror or exc)
            else:
                log.info("seeds folder %s replaced: watching %s", self.path, self.folder)
        if self.on_replaced is not None:
            self.on_replaced()

    def stop(self) -> None:
        self._follower.stop()
        with self._observer_lock:
            self._stop_observer()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._timer is not None:
            self._timer.join(timeout=5)
            self._timer = None

    def busy(self) -> set[str]:
        """Names that are being written right now (modified, not yet closed or settled)."""
        with self._cond:
            return set(self._writing)

    @property
    def alive(self) -> bool:
        return (self._observer is not None and self._observer.is_alive()
                and not self.lost.is_set())

    # events ---------------------------------------------------------------------------------
    def _name(self, path: str | bytes) -> str | None:
        path = os.fsdecode(path)
        head, name = os.path.split(path)
        if head != self.folder and os.path.realpath(head) != self.folder:  # cheap test first
            return None
        return name if is_candidate(name, self.extensions) else None

    def dispatch(self, event: FileSystemEvent) -> None:  # noqa: C901 - one switch on the kind
        if isinstance(event, FileClosedNoWriteEvent):
            return
        if isinstance(event, FileOpenedEvent):
            name = self._name(event.src_path)
            if name is not None:
                with self._cond:
                    self._unopened.discard(name)
            return
        if isinstance(event, (DirDeletedEvent, DirMovedEvent)):
            if os.fsdecode(event.src_path).rstrip("/") == self.folder:
                log.error("seeds folder %s disappeared; will retry", self.folder)
                self.lost.set()
            return
        if event.is_directory:
            return
        ready: set[str] = set()
        name = self._name(event.src_path)
        if isinstance(event, FileMovedEvent):
            dest = self._name(event.dest_path)
            ready.update(n for n in (name, dest) if n)
            with self._cond:
                for n in ready:
                    self._writing.pop(n, None)
                    self._unopened.discard(n)
        elif name is None:
            return
        elif isinstance(event, (FileClosedEvent, FileDeletedEvent)):
            with self._cond:
                self._writing.pop(name, None)
                self._unopened.discard(name)
            ready.add(name)
        elif isinstance(event, FileCreatedEvent):
            with self._cond:
                if self.has_close_events:
                    self._writing[name] = time.monotonic() + MOVED_IN_GRACE
                    self._unopened.add(name)
                else:
                    self._writing[name] = time.monotonic() + self.settle
                self._cond.notify_all()
            return
        elif isinstance(event, FileModifiedEvent):
            with self._cond:
                self._writing[name] = time.monotonic() + self.settle
                self._unopened.discard(name)
                self._cond.notify_all()
            return
        if ready:
            self.on_ready(ready)

    def _settle_loop(self) -> None:
        """Report files that stayed unchanged for the settle interval without a close (or,
        with close events, that were moved in: created and not opened)."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                waiting = self._unopened if self.has_close_events else self._writing
                due = {n for n in waiting if self._writing[n] <= now}
                for n in due:
                    del self._writing[n]
                    self._unopened.discard(n)
                if due:
                    self._cond.release()
                    try:
                        log.debug("settled without close: %s", ", ".join(sorted(due)))
                        self.on_ready(due)
                    finally:
                        self._cond.acquire()
                    continue
                wait = min((self._writing[n] for n in waiting), default=now + 3600) - now
                self._cond.wait(timeout=max(wait, 0.01))
