"""Site search: a Pagefind index of the entry pages in ``<out>/pagefind/``, and ``search.html``.

Optional (``pip install 'feeder[search]'``, then ``[site] search = true``): the extra ships
Pagefind's binary, which indexes offline. Without it, search is left out with one warning
and everything else is built as before.

Only entry pages are indexed: their ``<article>`` carries ``data-pagefind-body`` (so the
index and archive pages, which have none, would be left out anyway) and their ``<html
lang>`` puts each in its language's index, stemmed for that language. ``search.html`` runs
Pagefind's default UI over all of them (``mergeIndex``) and runs the query in its address.

The index is built into a new hidden folder in the output folder, then ``pagefind`` (a
symlink to it) is replaced by a rename, so a reader sees the old index or the new one,
never half of one; the folder before stays until the next swap, for searches already open.
``feeder build`` builds it after the pages (``update``); ``feeder run`` has an ``Indexer``
thread rebuild it in a subprocess at most once per ``search_interval``, which a pass only
pokes and never waits for.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import output
from .errors import SearchError

if TYPE_CHECKING:  # the server imports this module for ``route``: it stays light
    from .config import Config
    from .report import BuildReport

log = logging.getLogger("feeder")

INSTALL = "pip install 'feeder[search]'"
LINK = "pagefind"  # the symlink readers use: <out>/pagefind/...
PAGE = "search.html"
_GENERATION = ".pagefind-"  # the real folders, one per build of the index
_GLOB = "entries/*.html"
STOP_TIMEOUT = 2.0  # seconds a stopping daemon waits for Pagefind after SIGTERM (then SIGKILL)
# seconds one Pagefind run may take before it is killed as hung: far above its time on 100k
# pages, and a bound for ``feeder build`` and the daemon's index thread, which wait for it
RUN_TIMEOUT = 1800.0

HTML = b"text/html; charset=utf-8"
OCTET = b"application/octet-stream"
# Pagefind's own files, by suffix; .pagefind (its WebAssembly) and the .pf_* chunks are
# gzip data that its script unpacks, so the server must not compress them again
_TYPES = {
    "js": b"text/javascript; charset=utf-8", "css": b"text/css; charset=utf-8",
    "json": b"application/json", "wasm": b"application/wasm", "pagefind": OCTET,
    "pf_meta": OCTET, "pf_index": OCTET, "pf_fragment": OCTET, "pf_filter": OCTET,
}
_FILE = re.compile(r"/pagefind/(?:(?:fragment|index|filter)/)?[A-Za-z0-9_-][A-Za-z0-9._-]*"
                   r"\.(" + "|".join(_TYPES) + ")")


@functools.cache
def executable() -> str | None:
    """Pagefind's binary from the ``search`` extra (or ``PAGEFIND_BINARY_PATH``), or None."""
    try:
        from pagefind.service import get_executable
    except ImportError:
        return None
    try:
        found = get_executable()
    except (FileNotFoundError, OSError):
        return None
    return str(found) if found is not None and os.access(found, os.X_OK) else None


def enabled(config: Config) -> bool:
    """Search is on and Pagefind is installed: the index page gets its search box."""
    return config.search and executable() is not None


def missing_line() -> str:
    return (f"search is on ([site] search) but Pagefind is not installed: {INSTALL}; "
            "the feeds and pages are built without a search index")


def route(path: str) -> tuple[str, bytes] | None:
    """(file under the output folder, content type) for a request path of search, or None.
    The path is matched whole, so it names a file of the index and nothing else."""
    if path == "/" + PAGE:
        return PAGE, HTML
    m = _FILE.fullmatch(path)
    return (path[1:], _TYPES[m.group(1)]) if m else None


def affects_index(report: BuildReport) -> bool:
    """Did the pass write or remove an entry page?"""
    return any(p.startswith("entries/") for p in (*report.written, *report.deleted_outputs))


def is_built(out: Path) -> bool:
    return (out / LINK / "pagefind-entry.json").is_file()


def write_page(config: Config) -> bool:
    """Write ``search.html`` if its bytes change; True if they did."""
    from . import render

    page = render.render_search_page(render.FeedInfo.from_config(config))
    return output.write(config.out / PAGE, page, compress=False)


def start(out: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start Pagefind on the entry pages, writing into a new hidden folder of ``out``;
    returns the process and the folder (for ``finish``)."""
    exe = executable()
    if exe is None:
        raise FileNotFoundError(INSTALL)
    folder = Path(tempfile.mkdtemp(prefix=_GENERATION, dir=out))
    folder.chmod(0o755)  # mkdtemp's 0700 would hide it from a web server's user
    nice = shutil.which("nice")
    command = [*([nice, "-n", "10"] if nice else []), exe, "--site", str(out),
               "--glob", _GLOB, "--output-path", str(folder), "--silent"]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    return proc, folder


def finish(out: Path, proc: subprocess.Popen[bytes], folder: Path) -> int:
    """Wait for Pagefind (killed after ``RUN_TIMEOUT``); on success put its folder in place
    and return the page count, else remove the folder and raise SearchError with Pagefind's
    last line."""
    try:
        try:
            said, _ = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()  # not communicate: a child Pagefind left may hold its output open
            if proc.stdout is not None:
                proc.stdout.close()
            raise SearchError(f"Pagefind did not finish within {RUN_TIMEOUT:g} s;"
                              " stopped it") from None
        if proc.returncode != 0:
            text = said.decode("utf-8", "replace").strip().splitlines()
            raise SearchError(f"Pagefind exited with {proc.returncode}"
                              + (f": {text[-1]}" if text else ""))
        try:
            entry = json.loads((folder / "pagefind-entry.json").read_bytes())
        except (OSError, ValueError) as exc:
            raise SearchError(f"Pagefind wrote no readable pagefind-entry.json: {exc}") from None
        _swap(out, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return sum(lang.get("page_count", 0) for lang in entry.get("languages", {}).values())


def _swap(out: Path, folder: Path) -> None:
    """Point ``out/pagefind`` at ``folder`` by renaming a new symlink over it; remove the
    index folders older than the one it pointed at."""
    link = out / LINK
    before = os.readlink(link) if link.is_symlink() else None
    if link.is_dir() and not link.is_symlink():  # a real folder (Pagefind run by hand)
        os.rename(link, out / f"{_GENERATION}{time.time_ns()}")
    staged = out / f"{_GENERATION}{os.getpid()}.link"
    staged.unlink(missing_ok=True)
    os.symlink(folder.name, staged)
    # Pagefind does not flush its files: they go to disk before the link names them
    output._syncfs(out)
    os.replace(staged, link)
    output.fsync(out)
    keep = {folder.name, before}
    for old in out.glob(f"{_GENERATION}*"):
        if old.name not in keep:
            _remove(old)


def _remove(path: Path) -> None:
    """Remove an index folder, or a link a crash left behind."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def clear(out: Path) -> bool:
    """Remove the index and the search page (search turned off); True if any was there."""
    found = False
    link = out / LINK
    if link.is_symlink():
        link.unlink()
        found = True
    for old in out.glob(f"{_GENERATION}*"):
        _remove(old)
        found = True
    found = output.remove(out / PAGE) or found
    return found


def update(config: Config, report: BuildReport | None = None, force: bool = False) -> str | None:
    """``feeder build``: write the search page and, if an entry page changed (or the index is
    missing, or ``force``), build the index now. Returns a line saying what was done, or
    None; with search off, removes a search index left from before."""
    out = config.out
    if not config.search:
        if clear(out):
            log.info("search is off: removed the search index and %s", PAGE)
        return None
    if not enabled(config):
        log.warning("%s", missing_line())
        return None
    page = write_page(config)
    if not (force or page or not is_built(out) or report is None or affects_index(report)):
        return None
    t0 = time.perf_counter()
    try:
        pages = finish(out, *start(out))
    except (SearchError, OSError) as exc:
        log.warning("search index not rebuilt: %s", exc)
        return None
    return f"search index: {pages} pages in {time.perf_counter() - t0:.1f} s"


class Indexer:
    """``feeder run``'s search index, rebuilt in the background.

    ``poke`` (after each pass) notes the config and whether entry pages changed, and returns
    at once. A thread runs Pagefind as a subprocess when there is something to index, at
    most once per ``search_interval`` seconds (from the start of one run to the next).
    ``stop`` ends a run in progress (SIGTERM, then SIGKILL after ``STOP_TIMEOUT``) and the
    thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._config: Config | None = None
        self._dirty = False
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._last = float("-inf")  # monotonic time the last run started
        self._state = ""  # "on", "off" or "missing": what was last acted on or said
        self.runs = 0  # runs of Pagefind ended (or given up)
        self.waiting_until: float | None = None  # monotonic time a run waits for, if it does

    def poke(self, config: Config, report: BuildReport | None = None) -> None:
        """Note a pass; one that changed entry pages, or that finds the index missing
        (never built, or deleted under the daemon), asks for a run."""
        with self._lock:
            self._config = config
            self._dirty = (self._dirty or report is None or affects_index(report)
                           or not is_built(config.out))
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._loop, name="feeder-search",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self._lock:
                config = self._config
            assert config is not None
            if not self._ready(config):
                continue
            try:
                write_page(config)  # the title or base URL may have been reloaded
            except Exception:  # noqa: BLE001 - logged; the next pass tries again
                log.exception("cannot write %s", PAGE)
            if not self._dirty:
                continue
            self.waiting_until = self._last + config.search_interval
            wait = self.waiting_until - time.monotonic()
            if wait > 0 and self._stopping.wait(wait):  # pokes meanwhile join this run
                return
            self.waiting_until = None
            with self._lock:
                config, self._dirty = self._config, False
            assert config is not None
            if config.search:  # not turned off by a reload meanwhile
                self._last = time.monotonic()
                self._run(config)

    def _ready(self, config: Config) -> bool:
        """Whether search is on and can run; says so (once per change) when it cannot, and
        clears the index when search is turned off."""
        state = "off" if not config.search else "on" if enabled(config) else "missing"
        changed, self._state = state != self._state, state
        if state == "off" and changed and clear(config.out):
            log.info("search is off: removed the search index and %s", PAGE)
        elif state == "missing" and changed:
            log.warning("%s", missing_line())
        if state == "on" and changed:
            with self._lock:  # turned on (or started): the page and index may be stale
                self._dirty = self._dirty or not is_built(config.out)
        return state == "on"

    def _run(self, config: Config) -> None:
        t0 = time.perf_counter()
        try:
            with self._lock:
                if self._stopping.is_set():
                    return
                self._proc, folder = start(config.out)
            pages = finish(config.out, self._proc, folder)
        except (SearchError, OSError) as exc:
            if not self._stopping.is_set():
                log.warning("search index not rebuilt: %s; trying again after the next pass",
                            exc)
                with self._lock:
                    self._dirty = True
            return
        except Exception:  # noqa: BLE001 - a failed index never takes the daemon down
            log.exception("search index not rebuilt")
            return
        finally:
            with self._lock:
                self._proc = None
            self.runs += 1
        log.info("search index: %d pages in %.1f s", pages, time.perf_counter() - t0)

    def stop(self) -> None:
        """Stop: end a Pagefind run in progress and wait for the thread."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        self._wake.set()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT + 1)
