"""Follow folders by path: notice within a tenth of a second when one is replaced or goes.

An inotify watch stays with the folder (the inode) it was given. After a symlink swap
(``ln -s release2 seeds.new && mv -T seeds.new seeds``), ``rm -rf seeds && mkdir seeds`` or
``rm -rf public``, it keeps watching the old folder, or nothing, and says nothing more. So the
paths themselves are looked at, ten times a second: one ``stat`` each, a few microseconds,
whatever made the change and however deep in the path it happened (a symlink re-pointed
higher up included), which a watch on the parent folder would miss. A deleted folder's
inode number is free for the next file or folder made, often at once: the watcher learns of
the deletion from its inotify watch, and the output folder is held open
(:class:`HeldFolder`), so that its number cannot be reused.

:class:`Poller` runs such looks on a thread of its own; the watcher follows the seeds folder
with one, and the daemon follows the output folder with :class:`Outputs`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("feeder")

INTERVAL = 0.1  # seconds between looks

Identity = tuple[int, int]


def identity(path: str | os.PathLike[str]) -> Identity | None:
    """``(st_dev, st_ino)`` of what is at ``path`` now, symlinks followed; None if nothing is
    (or it cannot be looked at)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


class HeldFolder:
    """The folder a path leads to, held open (or nothing, if no folder is there). While it
    is held no other file can get its inode number, so ``identity(path) == held.identity``
    tells for sure whether the path still leads to it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.identity: Identity | None = None
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (OSError, ValueError):
            return
        st = os.fstat(self._fd)
        self.identity = st.st_dev, st.st_ino

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _swap(old: HeldFolder | None, new: HeldFolder | None) -> HeldFolder | None:
    """``new``, once ``old`` is let go of."""
    if old is not None:
        old.close()
    return new


class Poller:
    """Calls ``look`` every ``interval`` seconds on a daemon thread of its own until stopped.
    A look that raises is logged once (until it succeeds again) and tried at the next tick:
    following a folder must outlive a bad moment of the file system."""

    def __init__(self, name: str, look: Callable[[], None], interval: float = INTERVAL) -> None:
        self.name, self.look, self.interval = name, look, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        failing = None
        while not self._stop.wait(self.interval):
            try:
                self.look()
            except Exception as exc:  # noqa: BLE001 - reported, and tried again next tick
                if repr(exc) != failing:
                    log.exception("%s: looking at the folder failed; trying again", self.name)
                failing = repr(exc)
            else:
                failing = None


class Outputs:
    """Notices when the output folder is gone or replaced (another folder, or a file, at its
    path), and asks for a pass that re-writes every output (``on_lost``).

    The daemon calls :meth:`pass_starts` as a pass begins (it says whether the pass must
    re-write everything) and :meth:`published` when the pass has published. A loss is
    noticed by a look (ten a second), or by the pass itself when the folder changed just
    before it or while it ran: a pass that found no folder and made one must not take the
    new, part-filled folder for complete. Files deleted from a folder that stays (the main
    feeds and index, and the language feeds) are only reported (by :meth:`problem`); the next
    full pass writes them again. Reacting at once
    would race an ``rm -rf`` still emptying the folder, whose last step then fails.
    """

    FILES = ("atom.xml", "rss.xml", "feed.json", "index.html")  # every publish writes them

    def __init__(self, out: Path, on_lost: Callable[[], None]) -> None:
        self.out = out
        self.on_lost = on_lost
        self._lock = threading.Lock()
        self._folder: HeldFolder | None = None  # what the last publish wrote into
        self._files: frozenset[str] = frozenset()  # of FILES, those it left
        self._lost = 0  # losses noticed
        self._covered = 0  # losses noticed before the running pass began
        self._rewritten = 0  # losses the last complete pass re-wrote
        self._writing_into: HeldFolder | None = None  # the folder the running pass writes into
        self._reported: object = None  # the folder's state when a loss was last noticed

    @property
    def rewriting(self) -> bool:
        return self._lost > self._rewritten

    def _notice(self, now: Identity | None) -> bool:
        """Count a loss, once per state of the folder; True if it is a new one (lock held)."""
        state = now or "gone"
        if state == self._reported:
            return False
        self._reported = state
        self._lost += 1
        log.warning("output folder %s %s: writing every output again", self.out,
                    "is gone" if now is None else "was replaced")
        return True

    def look(self) -> None:
        """One look at the folder (a Poller's tick)."""
        with self._lock:
            now = identity(self.out)
            if self._folder is None or now == self._folder.identity:
                return
            new = self._notice(now)
        if new:
            self.on_lost()

    def pass_starts(self) -> bool:
        """Whether the pass starting now must write every output again; if so, the folder
        is made first (on the build thread)."""
        with self._lock:
            now = identity(self.out)
            if self._folder is not None and now != self._folder.identity:
                self._notice(now)  # changed since the last look
            self._covered = self._lost
            rewrite = self.rewriting
        if rewrite:
            with contextlib.suppress(OSError):  # a file in the way: the build fails, says so
                self.out.mkdir(parents=True, exist_ok=True)
        writing_into = HeldFolder(self.out)
        with self._lock:
            self._writing_into = _swap(self._writing_into, writing_into)
            if rewrite and self._folder is not None and writing_into.identity:
                self._folder = _swap(self._folder, HeldFolder(self.out))  # made for this pass
        return rewrite

    def published(self) -> None:
        """The pass has published: what is there now is what to keep an eye on."""
        from . import langfeeds  # here: the watcher imports this module and stays light

        with self._lock:
            folder = HeldFolder(self.out)
            writing_into = self._writing_into.identity if self._writing_into else None
            new = (self._folder is not None and folder.identity != writing_into
                   and self._lost == self._covered
                   and self._notice(folder.identity))  # changed under the pass, unseen
            self._rewritten = self._covered
            self._folder = _swap(self._folder, folder)
            self._files = frozenset(f for f in self.FILES if os.path.exists(self.out / f))
            self._files |= frozenset(langfeeds.feeds_in(self.out))  # their subscribers too
            if not self.rewriting:
                self._reported = None
        if new:
            self.on_lost()

    def close(self) -> None:
        with self._lock:
            self._folder = _swap(self._folder, None)
            self._writing_into = _swap(self._writing_into, None)

    def missing(self) -> list[str]:
        """The outputs of the last publish that are not there now (the folder stands for
        everything in it); empty before the first publish."""
        if self._folder is None:
            return []
        if not os.path.isdir(self.out):
            return [str(self.out)]
        return [str(self.out / f) for f in sorted(self._files)
                if not os.path.exists(self.out / f)]

    def problem(self) -> str | None:
        """Why the outputs are not all served right now, for /healthz; None when they are."""
        missing = self.missing()
        if self.rewriting:
            gone = f"{', '.join(missing)} missing; " if missing else ""
            return f"{gone}writing every output in {self.out} again"
        if missing:
            return f"missing outputs: {', '.join(missing)}"
        return None
