"""ASGI app that serves a build's output folder the way feed readers expect.

Why not a generic static-file handler: feed readers poll, so almost every request is a
conditional GET that should cost one ``os.stat`` and a dictionary lookup. This module is a
hand-written ASGI callable (no framework) that

* serves only a whitelist of paths (``/``, the three feeds, ``entries/<slug>.html``,
  ``archive/{atom,rss}-<n>.xml``, ``archive/page-<n>.html``, ``sitemap.xml``,
  ``sitemap-<n>.xml``, ``robots.txt``, ``/healthz``, per language ``lang/<code>/`` with
  its three feeds, and with search ``search.html`` and Pagefind's files, ``search.route``),
  so traversal tricks never reach the disk;
* keeps an LRU cache (bounded by total bytes) of each file version: the bytes, the strong
  ETag, the Last-Modified date and the prepared response headers, keyed by
  ``(st_dev, st_ino, st_mtime_ns, st_size)``, and serves a version for ``revalidate``
  seconds after a ``stat`` proved it current without looking at the disk again (or until
  ``app.refresh()``, which the daemon calls after each pass);
* answers ``If-None-Match`` / ``If-Modified-Since`` with 304 carrying the same validators,
  ``Cache-Control``, ``Vary`` and WebSub ``Link`` headers as a 200;
* sends the core's precomputed ``X.gz`` when the client accepts gzip, after checking once
  per version that its CRC32 and length match ``X`` (the ``.gz`` is replaced first, so it
  may briefly belong to the next version); otherwise it compresses ``X`` once per version.

Symlinks inside the output folder are followed only when their target is inside the
folder too (checked on the opened descriptor); anything else is a 404.

Nothing blocking runs on the event loop: the ``stat``, file reads, compression and the
``/healthz`` body run in the loop's thread pool. A cached version still within its
``revalidate`` time is answered on the loop with no hop: the hop was most of a cached GET's
cost (without it, gzip GETs went from ~8.5k to ~15k per second in ``bench/load.py``), while one
``stat`` per path and interval costs nothing measurable. A time bound rather than inotify: it
holds on every file system (network mounts send no events), needs no thread, descriptor or
overflow handling, and the one writer whose changes must be served at once, the daemon, says
so with ``refresh``.

The app also offers ``app.answer(path, head, headers)``: the same answer, given at once
when it needs no waiting (a whitelisted file whose cached version is fresh). The server's
protocol asks it as soon as a plain GET or HEAD has been parsed and writes the answer itself,
the very bytes uvicorn would write for the app's ASGI messages (the "direct path"): no
ASGI task, scope or messages per request, which were most of a cached GET's remaining cost
(gzip GETs in ``bench/load.py``: 2.3-3.3x less server CPU per request). Everything else, and
every request while another of the same connection is in progress or while the socket is not
taking writes, goes through the app as before. The 304 / gzip / identity choice is one
function (``_negotiate``) for both.

``make_server`` wraps uvicorn so that clients cannot starve it: it binds first (a port in
use is a ``ServeError``), raises the soft ``RLIMIT_NOFILE`` as far as needed and allowed, caps
the open connections below it (at the cap the connection idle longest is closed, before
anything is read from the new one), and closes connections that send no request within
``keep_alive`` seconds or take longer than ``header_timeout`` to send its headers (uvicorn
itself has no header timeout: uvicorn#157).
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import hashlib
import itertools
import json
import logging
import os
import re
import resource
import socket
import stat
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
)

from . import search
from .errors import ServeError

__all__ = ["create_app", "listen", "make_server"]

log = logging.getLogger("feeder")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ATOM = b"application/atom+xml; charset=utf-8"
RSS = b"application/rss+xml; charset=utf-8"
JSON_FEED = b"application/feed+json; charset=utf-8"
HTML = b"text/html; charset=utf-8"
XML = b"application/xml; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"

# request path -> (file relative to out_dir, content type, is a feed)
_FIXED: dict[str, tuple[str, bytes, bool]] = {
    "/": ("index.html", HTML, False),
    "/atom.xml": ("atom.xml", ATOM, True),
    "/rss.xml": ("rss.xml", RSS, True),
    "/feed.json": ("feed.json", JSON_FEED, True),
    "/sitemap.xml": ("sitemap.xml", XML, False),
    "/robots.txt": ("robots.txt", TEXT, False),
}
# The first character of a slug may not be "." (temp files); the whole path is matched on
# the decoded path, so "%2f", "..", "\\" or NUL can never form a second segment.
_ENTRY = re.compile(r"/entries/[A-Za-z0-9_-][A-Za-z0-9._-]*\.html")
_ARCHIVE = re.compile(r"/archive/(atom|rss)-[1-9][0-9]{0,8}\.xml")
_ARCHIVE_PAGE = re.compile(r"/archive/page-[1-9][0-9]{0,8}\.html")
_SITEMAP = re.compile(r"/sitemap-[1-9][0-9]{0,8}\.xml")
# a language's folder (langfeeds.CODE) and one of its files; "" is its index page
_LANG = re.compile(r"/lang/[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*/(atom\.xml|rss\.xml|feed\.json|"
                   r"index\.html|)")
_LANG_FILES = {"atom.xml": (ATOM, True), "rss.xml": (RSS, True), "feed.json": (JSON_FEED, True),
               "index.html": (HTML, False), "": (HTML, False)}

_ALLOW = b"GET, HEAD"
# WebSub hubs forward the topic's response headers to subscribers. Flask-WebSub fetches with
# python-requests, which asks for gzip, decompresses, and then forwards
# "Content-Encoding: gzip" with the plain body; so feeds go to such clients uncompressed.
IDENTITY_AGENTS = (b"python-requests/",)
_DEFAULT_CACHE_BYTES = 48 * 1024 * 1024
# Seconds a cached version is served without a stat: the longest a file replaced by another
# process (not followed by ``app.refresh()``) can go on being served in its old version.
REVALIDATE = 0.1


_CACHED_VALUE = 256  # longest header value whose parse is remembered (bytes)


def _accepts_gzip(header: bytes) -> bool:
    """Whether an Accept-Encoding value allows gzip (RFC 9110 §12.5.3, q=0 means no). The
    answers for short values are remembered; a long one (a client's, of any size up to the
    parser's limit) is parsed each time rather than kept."""
    if len(header) <= _CACHED_VALUE:
        return _accepts_gzip_cached(header)
    return _parse_accept_encoding(header)


def _parse_accept_encoding(header: bytes) -> bool:
    star: float | None = None
    for item in header.split(b","):
        coding, _, params = item.strip().partition(b";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(b";"):
            name, _, value = param.strip().partition(b"=")
            if name.strip().lower() == b"q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding in (b"gzip", b"x-gzip"):
            return q > 0
        if coding == b"*":
            star = q
    return star is not None and star > 0


_accepts_gzip_cached = lru_cache(maxsize=512)(_parse_accept_encoding)


def _etag_matches(header: bytes, tags: tuple[bytes, ...]) -> bool:
    """Weak comparison of an If-None-Match list against our tags (``*`` matches)."""
    for item in header.split(b","):
        tag = item.strip()
        if tag == b"*":
            return True
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag in tags:
            return True
    return False


def _not_modified_since(header: bytes, mtime: int) -> bool:
    """RFC 9110 §13.1.3: a date later than our clock is ignored (it cannot be a date we sent)."""
    try:
        since = parsedate_to_datetime(header.decode("latin-1"))
        return since.tzinfo is not None and mtime <= since.timestamp() <= time.time()
    except (TypeError, ValueError, IndexError, OverflowError):  # no valid date: ignored
        return False


def _header_lines(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """``headers`` as uvicorn writes them after its status line and default headers, or
    None if uvicorn would refuse one of them (it raises, and closes the connection)."""
    lines = []
    for name, value in headers:
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            return None
        lines += [name.lower(), b": ", value, b"\r\n"]
    return b"".join(lines)


def _negotiate(version: _Version, headers: Sequence[tuple[bytes, bytes]], gzip_ok: bool,
               is_feed: bool) -> tuple[bool, bool]:
    """(answer 304, send gzip) for a GET or HEAD of ``version`` with these request headers:
    the one choice both the ASGI path and the direct path make. ``gzip_ok``: the file's type
    may be sent compressed."""
    inm = ims = ae = ua = None
    for name, value in headers:
        if name == b"if-none-match":
            inm = value
        elif name == b"if-modified-since":
            ims = value
        elif name == b"accept-encoding":
            ae = value
        elif name == b"user-agent":
            ua = value
    use_gz = gzip_ok and ae is not None and _accepts_gzip(ae)
    if use_gz and is_feed and ua is not None and ua.startswith(IDENTITY_AGENTS):
        use_gz = False
    if inm is not None:
        not_modified = inm in version.tags or _etag_matches(inm, version.tags)
    elif ims is not None:
        not_modified = (ims == version.last_modified and version.mtime <= time.time()
                        or _not_modified_since(ims, version.mtime))
    else:
        not_modified = False
    return not_modified, use_gz


class _Version:
    """One version of one file: its bytes, validators and prepared headers."""

    __slots__ = ("key", "body", "gz", "etag", "etag_gz", "tags", "mtime", "last_modified",
                 "h200", "h304", "h200_gz", "h304_gz", "size", "epoch", "until",
                 "lines200", "lines304", "lines200_gz", "lines304_gz")

    def __init__(self, key: tuple[int, ...], body: bytes, ctype: bytes,
                 extra: list[tuple[bytes, bytes]]) -> None:
        self.key = key
        self.body = body
        self.gz: bytes | None = None
        digest = hashlib.blake2b(body, digest_size=16).hexdigest().encode()
        self.etag = b'"' + digest + b'"'
        # The gzip tag names the identity bytes: the core's sibling and our own compression
        # decode alike, and without Range support nothing can splice the two encodings.
        self.etag_gz = b'"' + digest + b'-gz"'
        self.tags = (self.etag, self.etag_gz)
        self.mtime = key[2] // 1_000_000_000
        self.last_modified = formatdate(self.mtime, usegmt=True).encode()
        common = [(b"last-modified", self.last_modified), *extra]
        self.h304 = [(b"etag", self.etag), *common]
        self.h304_gz = [(b"etag", self.etag_gz), *common]
        self.h200 = [(b"content-type", ctype),
                     (b"content-length", str(len(body)).encode()), *self.h304]
        self.h200_gz: list[tuple[bytes, bytes]] = []
        # The same headers as the lines uvicorn writes for them (None: a value uvicorn would
        # refuse, so only the ASGI path answers), for the direct path (``_Protocol``).
        self.lines200 = _header_lines(self.h200)
        self.lines304 = _header_lines(self.h304)
        self.lines304_gz = _header_lines(self.h304_gz)
        self.lines200_gz: bytes | None = None
        self.size = len(body)
        # Served without a stat while the clock is before ``until`` and no refresh came since
        # the stat that proved it current (``_Files.fresh``).
        self.epoch = -1
        self.until = float("-inf")

    def set_gzip(self, gz: bytes, ctype: bytes) -> None:
        """Called in a worker thread while the loop may read ``gz``: the headers come first."""
        self.h200_gz = [(b"content-type", ctype), (b"content-encoding", b"gzip"),
                        (b"content-length", str(len(gz)).encode()), *self.h304_gz]
        self.lines200_gz = _header_lines(self.h200_gz)
        self.size += len(gz)
        self.gz = gz


def _gzip_belongs_to(gz: bytes, body: bytes) -> bool:
    """Check the gzip trailer (CRC32 + ISIZE, little-endian) against ``body``."""
    if len(gz) < 18 or gz[:2] != b"\x1f\x8b":
        return False
    crc = int.from_bytes(gz[-8:-4], "little")
    isize = int.from_bytes(gz[-4:], "little")
    return crc == zlib.crc32(body) and isize == len(body) & 0xFFFFFFFF


class _Files:
    """Reads file versions from ``out_dir`` and keeps them in a byte-bounded LRU.

    ``fresh`` runs on the event loop and does no I/O. The other methods block (stat, read,
    compress): the app calls them in worker threads, so the LRU is guarded by a lock, held
    only around the bookkeeping. Recency is updated by those calls only, which a path in use
    makes at least once per ``revalidate`` seconds.
    """

    def __init__(self, out_dir: Path, max_bytes: int,
                 extra_headers: Callable[[str, bool], list[tuple[bytes, bytes]]],
                 revalidate: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = os.fspath(out_dir)
        self.extra_headers = extra_headers
        self.max_bytes = max_bytes
        self.revalidate = revalidate
        self.clock = clock
        self.total = 0
        self.lru: OrderedDict[str, _Version] = OrderedDict()
        self.lock = threading.Lock()
        self._epochs = itertools.count()
        self.epoch = next(self._epochs)

    def refresh(self) -> None:
        """Have every cached version checked against the disk before it is served again
        (thread-safe; the daemon calls it after each build)."""
        self.epoch = next(self._epochs)

    def fresh(self, rel: str) -> _Version | None:
        """The cached version of ``rel`` if a stat proved it current less than ``revalidate``
        seconds ago and no ``refresh`` came since; else None (then ask ``current``)."""
        version = self.lru.get(rel)
        if version is not None and version.epoch == self.epoch and self.clock() < version.until:
            return version
        return None

    def current(self, rel: str, ctype: bytes, is_feed: bool) -> _Version | None:
        """The version of ``rel`` on disk now (cached if unchanged), or None if missing."""
        epoch, checked = self.epoch, self.clock()  # before the stat: the proof starts here
        try:
            st = os.stat(f"{self.root}/{rel}")
        except OSError:
            self._store(rel, None)
            return None
        version = self.get(rel, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size),
                           ctype, is_feed)
        if version is not None:
            version.until = checked + self.revalidate
            version.epoch = epoch
        return version

    def _inside(self, fd: int, path: str) -> bool:
        """Whether the opened file really lies under out_dir (symlinks resolved).

        Linux names the file behind the descriptor in /proc, which cannot race with a
        rename; elsewhere the path is resolved again.
        """
        root = os.path.realpath(self.root) + os.sep
        try:
            real = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
        except OSError:
            real = os.path.realpath(path)
        return real.startswith(root)

    def get(self, rel: str, key: tuple[int, ...], ctype: bytes, is_feed: bool) -> _Version | None:
        """The cached version of ``rel`` if ``key`` (from a fresh stat) matches, else a read."""
        with self.lock:
            version = self.lru.get(rel)
            if version is not None and version.key == key:
                self.lru.move_to_end(rel)
                return version
        return self._load(rel, ctype, is_feed)

    def _load(self, rel: str, ctype: bytes, is_feed: bool) -> _Version | None:
        path = f"{self.root}/{rel}"
        try:
            # not blocking: a FIFO made at an output's path would hold this thread until
            # something wrote into it (it is then refused as not a regular file)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or not self._inside(fd, path):
                return None
            with os.fdopen(fd, "rb", closefd=False) as f:
                body = f.read()
        finally:
            os.close(fd)
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, len(body))
        version = _Version(key, body, ctype, self.extra_headers(rel, is_feed))
        self._store(rel, version)
        return version

    def gzip(self, rel: str, version: _Version, ctype: bytes) -> bytes:
        """The gzip body of ``version``: the verified sibling, else compressed here once."""
        if version.gz is not None:
            return version.gz
        gz = None
        path = f"{self.root}/{rel}.gz"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # as in _load
            with open(fd, "rb") as f:
                if stat.S_ISREG(os.fstat(fd).st_mode) and self._inside(fd, path):
                    gz = f.read()
        except OSError:
            pass
        if gz is None or not _gzip_belongs_to(gz, version.body):
            gz = gzip.compress(version.body, compresslevel=6, mtime=0)
        with self.lock:
            if version.gz is not None:  # another thread got there first
                return version.gz
            old = version.size
            version.set_gzip(gz, ctype)
            if self.lru.get(rel) is version:
                self.total += version.size - old
                self._evict()
        return gz

    def _store(self, rel: str, version: _Version | None) -> None:
        with self.lock:
            old = self.lru.pop(rel, None)
            if old is not None:
                self.total -= old.size
            if version is None or version.size > self.max_bytes:
                return
            self.lru[rel] = version
            self.total += version.size
            self._evict()

    def _evict(self) -> None:
        while self.total > self.max_bytes and len(self.lru) > 1:
            _, dropped = self.lru.popitem(last=False)
            self.total -= dropped.size


def _shared(calls: dict[Any, asyncio.Future[Any]], key: Any,
            fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """``fn(*args)`` in a worker thread, one call per ``key`` at a time: callers that come
    while it runs share its result (the shield keeps it running if one of them is cancelled)."""
    call = calls.get(key)
    if call is None:
        call = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        calls[key] = call
        call.add_done_callback(lambda _: calls.pop(key, None))
    return asyncio.shield(call)


async def _simple(send: Send, status: int, body: bytes, ctype: bytes, head: bool,
                  extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def create_app(out_dir: Path, *, base_url: str, hubs: Sequence[str] = (), max_age: int = 60,
               health: Callable[[], tuple[bool, dict]] | None = None,
               cache_bytes: int = _DEFAULT_CACHE_BYTES, revalidate: float = REVALIDATE,
               clock: Callable[[], float] = time.monotonic) -> ASGIApp:
    """Build the ASGI app serving ``out_dir``; ``base_url`` ends with "/" (rel=self links).

    ``health`` is called in a worker thread for ``/healthz``, one call at a time: requests
    that arrive while it runs share its answer.
    ``cache_bytes`` bounds the in-memory copies of file versions (bodies plus gzip bodies).
    A cached version is served without a stat for ``revalidate`` seconds (by ``clock``)
    after a stat proved it current; then one stat per path, in a worker thread and shared
    by the requests that wait for it, checks it again. ``app.refresh()`` (thread-safe)
    makes the next request for every path check at once: call it after writing files.
    """
    if not base_url.endswith("/"):
        raise ValueError(f"base_url must end with '/': {base_url!r}")
    cache_headers = [(b"cache-control", f"public, max-age={max_age}".encode()),
                     (b"vary", b"Accept-Encoding")]
    hub_links = [(b"link", f'<{hub}>; rel="hub"'.encode()) for hub in hubs]

    def extra_headers(rel: str, is_feed: bool) -> list[tuple[bytes, bytes]]:
        if not is_feed:
            return cache_headers
        return [*cache_headers, *hub_links, (b"link", f'<{base_url}{rel}>; rel="self"'.encode())]

    files = _Files(Path(out_dir), cache_bytes, extra_headers, revalidate, clock)

    def route(path: str) -> tuple[str, bytes, bool] | None:
        found = _FIXED.get(path)
        if found is not None:
            return found
        if _ENTRY.fullmatch(path) or _ARCHIVE_PAGE.fullmatch(path):
            return path[1:], HTML, False
        if _SITEMAP.fullmatch(path):
            return path[1:], XML, False
        m = _ARCHIVE.fullmatch(path)
        if m:
            return path[1:], ATOM if m.group(1) == "atom" else RSS, True
        m = _LANG.fullmatch(path)
        if m:
            ctype, is_feed = _LANG_FILES[m.group(1)]
            return path[1:] + ("" if m.group(1) else "index.html"), ctype, is_feed
        found = search.route(path)
        return (*found, False) if found is not None else None

    def health_response() -> tuple[int, bytes]:
        ok, info = health() if health is not None else (True, {"status": "ok"})
        return (200 if ok else 503), json.dumps(info).encode()

    calls: dict[Any, asyncio.Future[Any]] = {}  # worker-thread calls in flight, by path

    async def healthz(send: Send, head: bool) -> None:
        status, body = await _shared(calls, "/healthz", health_response)
        await _simple(send, status, body, b"application/json", head,
                      [(b"cache-control", b"no-store")])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off in make_server; nothing else is spoken here
        method = scope["method"]
        head = method == "HEAD"
        path = scope["path"]
        if method != "GET" and not head:
            await _simple(send, 405, b"Method Not Allowed\n", b"text/plain; charset=utf-8",
                          False, [(b"allow", _ALLOW)])
            return
        if path == "/healthz":
            await healthz(send, head)
            return
        found = route(path)
        version = None
        if found is not None:
            rel, ctype, is_feed = found
            version = files.fresh(rel) or await _shared(calls, rel, files.current,
                                                        rel, ctype, is_feed)
        if version is None:
            await _simple(send, 404, b"Not Found\n", b"text/plain; charset=utf-8", head)
            return

        not_modified, use_gz = _negotiate(version, scope["headers"], ctype != search.OCTET,
                                          is_feed)
        if not_modified:
            await send({"type": "http.response.start", "status": 304,
                        "headers": version.h304_gz if use_gz else version.h304})
            await send({"type": "http.response.body", "body": b""})
            return
        if use_gz:
            body = version.gz or await asyncio.get_running_loop().run_in_executor(
                None, files.gzip, rel, version, ctype)
            headers = version.h200_gz
        else:
            body, headers = version.body, version.h200
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})

    def answer(path: str, head: bool,
               headers: Sequence[tuple[bytes, bytes]]) -> tuple[int, bytes, bytes] | None:
        """The answer ``app`` would send to a GET (or HEAD) of ``path`` with these headers,
        as (status, header lines, body), if it can be given now without waiting: a
        whitelisted file whose cached version is fresh (and, for gzip, already compressed).
        Else None, and the request goes to ``app``. Called on the event loop by the server's
        protocol (``_Protocol``), which writes it as uvicorn would have."""
        found = _FIXED.get(path) or route(path)
        if found is None:
            return None
        rel, ctype, is_feed = found
        version = files.fresh(rel)
        if version is None:
            return None
        not_modified, use_gz = _negotiate(version, headers, ctype != search.OCTET, is_feed)
        if not_modified:
            lines = version.lines304_gz if use_gz else version.lines304
            return None if lines is None else (304, lines, b"")
        if use_gz:
            lines, body = version.lines200_gz, version.gz
        else:
            lines, body = version.lines200, version.body
        if lines is None or body is None:
            return None
        return 200, lines, b"" if head else body

    app.refresh = files.refresh  # type: ignore[attr-defined]
    app.answer = answer  # type: ignore[attr-defined]
    return app


# Descriptors kept free for all but client connections: the state database, the watcher, the
# worker pool's pipes, logs, hub pings and the files being served (an idle daemon holds ~25).
_SPARE_FDS = 128
MAX_CONNECTIONS = 4096
KEEP_ALIVE = 5.0  # seconds a connection may wait before (or between) requests; uvicorn's default
HEADER_TIMEOUT = 10.0  # seconds from a request's first byte to the end of its headers


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on ``host``:``port`` (each address the name resolves to, as asyncio
    would bind them), or ServeError naming the address and the reason."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(host, port, str(exc.strerror).lower()) from None
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen()
    except OSError as exc:
        for sock in socks:
            sock.close()
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or str(exc)
        raise ServeError(host, port, reason.lower()) from None
    return socks


def _raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE to ``wanted`` where the hard limit allows (systemd's
    default soft limit is 1024); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


class _Connections:
    """The open connections of one server, capped, and the idle ones in the order they
    became idle (waiting for a request's headers: new, between requests, or trickling).

    ``admit`` runs as a connection is accepted, before anything is read from it. At the cap
    it aborts the connection idle longest to make room; a connection in the middle of a
    request is never closed for this, so when all are busy the new one is refused instead.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: set[_Protocol] = set()
        self.idle: dict[_Protocol, None] = {}
        self.shed = self.refused = 0
        self._next_log = 0.0
        self.direct = 0  # requests answered by the direct path (``_Protocol._direct``)
        # uvicorn's default headers (date, server): the list it swaps in each second, their
        # lines (None if uvicorn would refuse one), and the heads made with them
        self._defaults: list[tuple[bytes, bytes]] | None = None
        self._default_lines: bytes | None = None
        self._heads: dict[tuple[int, bytes, bool], bytes] = {}

    def head(self, defaults: list[tuple[bytes, bytes]], status: int, lines: bytes,
             keep_alive: bool) -> bytes | None:
        """A response's head as uvicorn writes it, for the direct path: status line, default
        headers, ``lines``, ``connection: close`` unless ``keep_alive``, blank line. None if
        uvicorn would refuse a default header."""
        if defaults is not self._defaults:
            self._defaults, self._default_lines = defaults, _header_lines(defaults)
            self._heads = {}
        key = (status, lines, keep_alive)
        head = self._heads.get(key)
        if head is None:
            if self._default_lines is None:
                return None
            head = b"".join((STATUS_LINE[status], self._default_lines, lines,
                             b"" if keep_alive else b"connection: close\r\n", b"\r\n"))
            if len(self._heads) >= 256:
                self._heads.clear()
            self._heads[key] = head
        return head

    def admit(self, conn: _Protocol) -> bool:
        while len(self.open) >= self.limit and self.idle:
            oldest = next(iter(self.idle))
            self.remove(oldest)
            oldest.transport.abort()
            self.shed += 1
            self._report()
        if len(self.open) >= self.limit:
            self.refused += 1
            self._report()
            return False
        self.open.add(conn)
        return True

    def remove(self, conn: _Protocol) -> None:
        self.open.discard(conn)
        self.idle.pop(conn, None)

    def _report(self) -> None:
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + 60
            log.warning("%d client connections open, the limit: closing the longest idle "
                        "(%d closed, %d refused so far)", len(self.open), self.shed,
                        self.refused)


class _Answered:
    """Stands for the request cycle of a request the direct path answered: complete, so
    uvicorn's callbacks (the request's end, a lost connection, shutdown) treat it as such."""

    __slots__ = ()
    response_complete = True
    keep_alive = False
    disconnected = False

    class message_event:  # noqa: N801 - uvicorn sets it on a lost connection
        @staticmethod
        def set() -> None:
            pass


_ANSWERED = _Answered()
# Request headers that send a request to the ASGI path: a body to read or discard, a
# 100-continue to send, an upgrade to refuse, as uvicorn does.
_NOT_DIRECT = frozenset((b"content-length", b"transfer-encoding", b"expect", b"upgrade"))
_KEEP_ALIVE_HEADERS = frozenset((b"connection", b"proxy-connection"))
_WRITELINES = 64 * 1024  # bodies from this size are not copied into the header's buffer


# request target -> path, for targets short enough to keep (a long one is parsed each time)
_PATHS: dict[bytes, str] = {}
_PATHS_MAX, _PATH_MAX = 1024, 256


def _path_of(url: bytes) -> str:
    """The scope path uvicorn makes of a request target (its query string dropped)."""
    path = _PATHS.get(url)
    if path is None:
        path = httptools.parse_url(url).path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        if len(url) <= _PATH_MAX:
            if len(_PATHS) >= _PATHS_MAX:
                _PATHS.clear()
            _PATHS[url] = path
    return path


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for request headers, a place in a
    capped pool of connections, and a direct path for cached files.

    uvicorn arms its keep-alive timer only after a response and cancels it on any byte
    received, so a client that never finishes its headers is never timed out. Here a new
    connection gets the keep-alive timer too, and the first byte of a request (or of
    anything sent while no request is in progress) arms ``header_timeout``, which later
    bytes do not extend; the end of the headers disarms it.

    The direct path: when the app has an ``answer`` method (``create_app``'s), a GET or HEAD
    with no body, Expect or Upgrade, arriving while no other request of the connection is
    being answered or waiting and while the transport takes writes, is offered to
    ``answer`` as soon as its headers are parsed. If it can answer at once (a whitelisted
    file, fresh in the cache), the response is written here, byte for byte what uvicorn
    would write for the app's ASGI messages (status line, uvicorn's default headers, the
    app's headers, ``connection: close`` where uvicorn adds it), followed by uvicorn's own
    bookkeeping (request count, keep-alive timer or close, the next pipelined request). This
    skips the ASGI task, its scope and its two messages: most of a cached GET's cost. Off
    where uvicorn would do more per request: an access log at INFO, ``root_path``,
    ``limit_concurrency``, or an app wrapped by uvicorn (trace logging, proxy headers).
    Relies on uvicorn's protocol internals: pyproject pins uvicorn's minor version.
    """

    def __init__(self, *args: Any, pool: _Connections, header_timeout: float,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = pool
        self.header_timeout = header_timeout
        self.header_timer: asyncio.TimerHandle | None = None
        # the keep-alive deadline after direct answers: when the connection became idle
        # (None: a request is under way) and one timer that checks it, re-armed only when it
        # fires early, not once per request as uvicorn's
        self.idle_since: float | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.answer: Callable[..., tuple[int, bytes, bytes] | None] | None = getattr(
            self.app, "answer", None)
        if (self.config.root_path or self.limit_concurrency is not None
                or self.access_log and self.access_logger.isEnabledFor(logging.INFO)):
            self.answer = None
        self.admitted = pool.admit(self)  # at accept time under uvloop: frees a descriptor now

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.admitted:
            transport.abort()
            return
        self.pool.idle[self] = None
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, inlined (a call less per request), then the header deadline
        self.idle_since = None  # as uvicorn cancels its keep-alive timer on any byte
        direct = self.pool.direct
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        # Arm the header deadline if this data left a request unfinished: unless the
        # direct path answered every request it began (a request begun after the last
        # direct answer sets ``url`` again).
        if (self.header_timer is None and self in self.pool.idle
                and not self.transport.is_closing()
                and (self.pool.direct == direct or self.url is not None)):
            self.header_timer = self.loop.call_later(self.header_timeout, self.transport.abort)

    def on_message_begin(self) -> None:
        # uvicorn's, less the scope: made only for a request the direct path leaves to the app
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        self._disarm()
        self.pool.idle.pop(self, None)
        self.idle_since = None
        cycle = self.cycle
        closing = self.transport.is_closing()
        if closing and cycle is _ANSWERED:
            return  # after a direct answer that closed: uvicorn would never start it either
        if (self.answer is not None and not closing and (cycle is None or cycle.response_complete)
                and not self.pipeline and not self.flow.write_paused and self._direct()):
            return
        self.scope = {  # what uvicorn's on_message_begin makes
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        super().on_headers_complete()

    def _direct(self) -> bool:
        """Answer the request whose headers were just parsed, if ``answer`` can now."""
        parser = self.parser
        method = parser.get_method()
        if method == b"GET":
            head = False
        elif method == b"HEAD":
            head = True
        else:
            return False
        headers = self.headers
        connection = False
        for name, _ in headers:
            if name in _NOT_DIRECT:
                return False
            if name in _KEEP_ALIVE_HEADERS:
                connection = True
        try:
            path = _path_of(self.url)
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return False  # uvicorn's answer to it, whatever it is
        try:
            found = self.answer(path, head, headers)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - the app answers it (and logs its own error)
            log.exception("direct answer to %s failed: the app answers it", path)
            return False
        if found is None:
            return False
        status, lines, body = found
        # uvicorn's rule; llhttp keeps an HTTP/1.0 request alive only for a Connection or
        # Proxy-Connection header (its version, made into a new string, costs a microsecond)
        keep_alive = parser.should_keep_alive() and not (
            connection and parser.get_http_version() == "1.0")
        head_bytes = self.pool.head(self.server_state.default_headers, status, lines,
                                    keep_alive)
        if head_bytes is None:
            return False
        if len(body) < _WRITELINES:
            self.transport.write(head_bytes + body)
        else:
            self.transport.writelines((head_bytes, body))
        # what RequestResponseCycle.send, then on_response_complete do once the response is
        # complete (the pipeline is empty, reading is not paused)
        self.cycle = _ANSWERED  # type: ignore[assignment]
        self.url = None  # type: ignore[assignment]  # set again when a request begins
        self.pool.direct += 1
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
            return True
        if self.transport.is_closing():  # the write failed
            return True
        self._unset_keepalive_if_required()
        self.idle_since = self.loop.time()
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_later(self.timeout_keep_alive, self._idle_check)
        if self in self.pool.open:
            self.pool.idle[self] = None  # idle since now: the newest
        return True

    def _idle_check(self) -> None:
        """uvicorn's keep-alive timeout, for a connection made idle by a direct answer."""
        self.idle_timer = None
        if self.idle_since is None:
            return  # a request is under way: its answer arms a timer again
        left = self.idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.idle_timer = self.loop.call_later(left, self._idle_check)
        else:
            self.timeout_keep_alive_handler()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline  # else the next pipelined request starts now
        super().on_response_complete()
        if waiting and self in self.pool.open and not self.transport.is_closing():
            self.pool.idle[self] = None  # idle since now: the newest

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self.pool.remove(self)
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None


def _connection_limit(soft_fds: int, max_connections: int) -> int:
    return max(1, min(max_connections, soft_fds - min(_SPARE_FDS, soft_fds // 4)))


def _backlog(loop: str) -> int:
    """uvloop makes each connection's protocol as it accepts it, so a full listen queue is
    shed one by one; asyncio's own loop accepts a backlog's worth first, so there the
    backlog must fit in the spare descriptors."""
    return 2048 if loop == "uvloop" else _SPARE_FDS // 2


def _default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


class _Server(uvicorn.Server):
    """A uvicorn server on sockets bound beforehand by ``listen``."""

    def __init__(self, config: uvicorn.Config, sockets: Sequence[socket.socket],
                 pool: _Connections) -> None:
        super().__init__(config)
        self.sockets = list(sockets)
        self.pool = pool  # its connections, and how many requests took the direct path

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        await super().serve(sockets or self.sockets)


def make_server(app: ASGIApp, host: str = "127.0.0.1", port: int = 8080, *,
                sockets: Sequence[socket.socket] | None = None,
                keep_alive: float = KEEP_ALIVE, header_timeout: float = HEADER_TIMEOUT,
                max_connections: int = MAX_CONNECTIONS, **options: Any) -> uvicorn.Server:
    """A uvicorn server for ``app``: quiet, no lifespan, no websockets, bounded connections.

    It listens on ``sockets``, or binds ``host``:``port`` now (ServeError if it cannot).
    Open connections are capped at ``max_connections`` and below the descriptor limit,
    whose soft value is raised first as far as the hard limit allows.

    ``server.run()`` works in the main thread (Ctrl-C stops it) and in a background thread
    (uvicorn installs signal handlers only in the main thread); set ``should_exit`` to stop.
    In the main thread, after a graceful shutdown on SIGINT/SIGTERM uvicorn re-raises the
    signal, so SIGINT ends ``run()`` with KeyboardInterrupt for the caller to catch.
    """
    if sockets is None:
        sockets = listen(host, port)
    soft = _raise_fd_limit(max_connections + _SPARE_FDS)
    pool = _Connections(_connection_limit(soft, max_connections))
    protocol = partial(_Protocol, pool=pool, header_timeout=header_timeout)
    loop = options.pop("loop", None) or _default_loop()
    settings: dict[str, Any] = {"log_level": "warning", "access_log": False,
                                "lifespan": "off", "ws": "none", "http": protocol,
                                "proxy_headers": False,  # nothing here reads the client address
                                "timeout_keep_alive": keep_alive, "loop": loop,
                                "backlog": _backlog(loop), **options}
    return _Server(uvicorn.Config(app, host=host, port=port, **settings), sockets, pool)
