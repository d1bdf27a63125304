"""The seeds folder: which files are seeds, which of them may be read, and which are ready.

The first stage of a pass (then ``sync.py``, then ``publish.py``):

- A seed is a file directly in the folder whose name ends in one of the extensions and is not
  hidden or an editor's or a download's temporary file (``is_candidate``). The watcher uses
  the same test, so it imports this module and nothing heavier.
- Symlinks are followed to files inside the folder only. One that points outside, dangles or
  loops is found with a ``problem`` (a rejection) and never read.
- A seed is ready once its writer is done with it: it has been closed, or it has not changed
  for ``settle`` seconds. The watcher knows which files are open for writing (``busy``) and
  reports each file when it is closed; a file nobody saw closed (one found by a scan, at
  start-up or on a rescan, or with no watcher at all) must first stay unchanged for
  ``settle``. Every pass, named or full, leaves out what is not ready and says so, so that
  the daemon looks at it again after ``settle``.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TEMP_SUFFIXES = (".swp", ".swx", ".swo", "~", ".part", ".tmp", ".crdownload", ".partial")


def is_candidate(name: str, extensions: tuple[str, ...]) -> bool:
    """Is this file name a seed? Hidden, temporary and other-extension files are not."""
    if name.startswith((".", "#")) or name.endswith(TEMP_SUFFIXES):
        return False
    return name.lower().endswith(extensions)


@dataclass(frozen=True, slots=True)
class Seen:
    """A seed file as found in the folder: its stat, or why it cannot be read."""

    name: str
    path: str  # where to read it (a symlink's target); a str, not a Path: 100,000 of them
    size: int = 0
    mtime_ns: int = 0
    problem: str | None = None


class Folder:
    """The seeds folder as passes see it.

    ``busy`` (the watcher's) names the files being written right now; ``settle`` is how long a
    file nobody saw closed must stay unchanged before it is read. Without a watcher and with
    ``settle`` 0 (``feeder build``) every file is ready.
    """

    def __init__(self, path: Path, extensions: tuple[str, ...], *, settle: float = 0.0,
                 busy: Callable[[], set[str]] | None = None,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.path = path
        self.extensions = extensions
        self.settle = settle
        self.busy = busy
        self.clock_ns = clock_ns
        # files a pass left out without knowing whether they were closed:
        # name -> ((size, mtime_ns) then, when it was left out)
        self._unsure: dict[str, tuple[tuple[int, int], int]] = {}
        # seeds a named pass found gone, and when it first did (see ``settled_deletions``)
        self._gone_since: dict[str, int] = {}

    @property
    def root(self) -> Path:
        return Path(os.path.realpath(self.path))

    def look(self, names: Iterable[str] | None = None) -> tuple[dict[str, Seen], set[str]]:
        """The seeds a pass may read, by name: every seed in the folder, or those of ``names``
        that exist (``names`` are the watcher's change set). Also the names of the seeds that
        are not ready yet, which are left out: look at them again after ``settle``."""
        if names is not None:
            names = set(names)
        found = self.scan() if names is None else self.examine_all(names)
        waiting = self.not_ready(found, reported=names is not None)
        for name in list(self._unsure):
            if name not in found and (names is None or name in names):
                del self._unsure[name]  # gone
        for name in found:
            self._gone_since.pop(name, None)  # back again
        return {n: s for n, s in found.items() if n not in waiting}, waiting

    def settled_deletions(self, gone: Iterable[str]) -> tuple[list[str], set[str]]:
        """Of the seeds a named pass found gone, those gone for ``settle`` seconds, and the
        others, to look at again then. A folder emptied by a move, an rsync or an unmount
        loses its files one event at a time: waiting lets the whole of it be seen at once
        (by the mass-deletion guard) instead of letting the first few deletions through."""
        now, settle_ns = self.clock_ns(), int(self.settle * 1e9)
        ready, later = [], set()
        for name in gone:
            since = self._gone_since.setdefault(name, now)
            if now - since >= settle_ns:
                ready.append(name)
                del self._gone_since[name]
            else:
                later.add(name)
        return ready, later

    def not_ready(self, found: dict[str, Seen], *, reported: bool) -> set[str]:
        """The names, among ``found``, of files whose writer may not be done with them.

        A file being written (``busy``) is not ready. Another one is ready if it has not
        changed for ``settle`` seconds (by its mtime, or, for an mtime in the future, by our
        own look at it), or if the watcher saw it closed: it is ``reported`` by the watcher,
        and no pass left it out unsure since its last change. A file a pass left out unsure
        (found by a scan, not being written, changed within ``settle``) may have been open
        since before the watcher started: it waits for ``settle`` too.
        """
        busy = self.busy() if self.busy is not None else set()
        now = self.clock_ns()
        settle_ns = int(self.settle * 1e9)
        waiting = set()
        for name, seen in found.items():
            stamp = (seen.size, seen.mtime_ns)
            unsure = self._unsure.get(name)
            if name in busy:
                self._unsure.pop(name, None)  # the watcher follows it and reports its close
                waiting.add(name)
            elif settle_ns <= 0 or seen.mtime_ns <= now - settle_ns:
                self._unsure.pop(name, None)
            elif unsure is not None and unsure[0] == stamp:
                if now - unsure[1] >= settle_ns:
                    del self._unsure[name]
                else:
                    waiting.add(name)
            elif reported and self.busy is not None:
                self._unsure.pop(name, None)
            else:
                self._unsure[name] = (stamp, now)
                waiting.add(name)
        return waiting

    def examine(self, name: str, root: Path | None = None) -> Seen | None:
        """Stat one seed by name; None if it does not exist (or is not a seed at all).
        ``root`` is the seeds folder's real path, when the caller already has it."""
        root = root or self.root
        path = root / name
        if not is_candidate(name, self.extensions) or "/" in name:
            return None
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in the name (os.fsdecode escapes them)
            shown = os.fsencode(name).decode("utf-8", "backslashreplace")
            return Seen(shown, str(path), problem="file name is not valid UTF-8: rename the file")
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return Seen(name, str(path), problem=f"cannot stat: {exc.strerror or exc}")
        if stat.S_ISLNK(st.st_mode):
            try:
                real = path.resolve(strict=True)
            except RuntimeError:
                return Seen(name, str(path), problem="symlink loop")
            except FileNotFoundError:
                return Seen(name, str(path), problem="dangling symlink")
            except OSError as exc:
                if exc.errno == 40:  # ELOOP
                    return Seen(name, str(path), problem="symlink loop")
                return Seen(name, str(path),
                            problem=f"cannot follow symlink: {exc.strerror or exc}")
            if real.parent != root and root not in real.parents:
                return Seen(name, str(path), problem="symlink points outside the seeds folder")
            path = real
            st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            return None
        if not stat.S_ISREG(st.st_mode):
            return Seen(name, str(path), problem="not a regular file")
        return Seen(name, str(path), st.st_size, st.st_mtime_ns)

    def examine_all(self, names: Iterable[str]) -> dict[str, Seen]:
        """The seeds of ``names`` that exist, by the name asked for."""
        root = self.root
        found = {}
        for name in names:
            seen = self.examine(name, root)
            if seen is not None:
                found[name] = seen
        return found

    def scan(self) -> dict[str, Seen]:
        """Every seed in the folder (not recursive), by name.

        A plain file is taken from its directory entry with one lstat and no Path object
        (100,000 seeds: 2.1 -> 0.5 s of a rescan); anything else (a symlink, a name that is
        not UTF-8, an entry of unknown type, a stat that fails) goes through ``examine``."""
        root = self.root
        extensions = self.extensions
        found: dict[str, Seen] = {}
        slow = []
        with os.scandir(root) as it:
            for entry in it:
                name = entry.name
                if not is_candidate(name, extensions):
                    continue
                try:
                    name.encode("utf-8")
                    if entry.is_symlink():
                        raise ValueError  # followed inside the folder only: ``examine``
                    st = entry.stat(follow_symlinks=False)
                except (OSError, ValueError):  # UnicodeEncodeError is a ValueError
                    slow.append(name)
                    continue
                if stat.S_ISREG(st.st_mode):
                    found[name] = Seen(name, entry.path, st.st_size, st.st_mtime_ns)
                elif not stat.S_ISDIR(st.st_mode):
                    slow.append(name)  # a fifo, a socket, a device: says why
        for name in slow:
            seen = self.examine(name, root)
            if seen is not None:
                found[seen.name] = seen
        return found
