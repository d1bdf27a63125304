"""The server's direct path (``_Protocol._direct``): a GET or HEAD of a cached file is
answered by the protocol itself, with the very bytes uvicorn writes for the app's ASGI
answer, and everything else still goes through the app.

Each comparison sends the same raw bytes to two servers on the same output folder: one
whose app offers ``answer`` (create_app's) and one whose app is a plain ASGI function around
the same kind of app. The responses must match byte for byte (the ``date`` header's value
aside), and the first server's count of direct answers says whether the direct path was
taken. Then hostile clients against the direct path on a real server on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from feeder.server import ASGIApp, create_app
from tests._daemon import free_port
from tests._flood import PARTIAL_REQUEST, closed_by_peer, open_idle
from tests._servers import public_folder, server_in_thread, wait_until

ROOT = Path(__file__).resolve().parent.parent
# big enough that its identity body is written with writelines, and that 300 of them
# cannot all sit in the socket buffers
ATOM = (b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        + b"".join(b"<entry><title>Entry %d</title></entry>\n" % i for i in range(4000))
        + b"</feed>\n")
FILES = {
    "atom.xml": ATOM,
    "rss.xml": b"<rss>small</rss>",
    "feed.json": b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
    "index.html": b"<!doctype html><title>home</title>",
    "entries/hello.html": b"<!doctype html><p>hello</p>",
    ".atom.xml.tmp": b"half written",
}
DATE = re.compile(rb"\r\ndate: [^\r\n]*\r\n")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return public_folder(tmp_path, FILES, ATOM, b"secret")


def make_app(out: Path, **options: Any) -> ASGIApp:
    return create_app(out, base_url="http://feeds.example/", hubs=("http://hub.example/",),
                      revalidate=3600, **options)


def asgi_only(app: ASGIApp) -> ASGIApp:
    """The same app without ``answer``: every request goes through uvicorn's ASGI cycle."""
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
    return plain


@dataclass
class Server:
    port: int
    server: Any

    @property
    def direct(self) -> int:
        return self.server.pool.direct


@dataclass
class Exchange:
    responses: list[bytes]  # each whole, the date header's value blanked
    closed: bool  # the server closed the connection after them


def exchange(port: int, request: bytes, heads: list[bool], *, close_after: bool) -> Exchange:
    """Send ``request`` (one or more pipelined requests) and read one response per entry of
    ``heads`` (True: the answer to a HEAD, no body). With ``close_after``, read on to the
    end of the stream (which the server must close); else stop after the responses."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        stream = sock.makefile("rb")
        responses = [read_response(stream, head) for head in heads]
        rest = stream.read() if close_after else b""
        assert rest == b"", rest
        return Exchange(responses, close_after)


def read_response(stream: Any, head: bool = False) -> bytes:
    """One whole response from ``stream`` (a socket's makefile), the date's value blanked."""
    lines = []
    while not lines or lines[-1] != b"\r\n":
        line = stream.readline()
        assert line, f"closed after {b''.join(lines)!r}"
        lines.append(line)
    raw = b"".join(lines)
    status = int(lines[0].split()[1])
    length = re.search(rb"\r\ncontent-length: (\d+)\r\n", raw)
    size = 0 if head or status == 304 or length is None else int(length[1])
    return DATE.sub(b"\r\ndate: -\r\n", raw) + stream.read(size)


def get_on(sock: socket.socket, path: bytes = b"/rss.xml") -> bytes:
    """GET ``path`` on an open connection; its whole response."""
    sock.sendall(GET % (path, b""))
    return read_response(sock.makefile("rb"))


@pytest.fixture
def servers(out: Path) -> Iterator[tuple[Server, Server]]:
    """(direct, asgi): the same app twice over, both caches warm for every file served."""
    with ExitStack() as stack:
        pair = []
        for app in (make_app(out), asgi_only(make_app(out))):
            base, server = stack.enter_context(server_in_thread(app))
            port = int(base.rstrip("/").rsplit(":", 1)[1])
            for path in ("/atom.xml", "/rss.xml", "/feed.json", "/", "/entries/hello.html"):
                for ae in (b"identity", b"gzip"):
                    exchange(port, b"GET %s HTTP/1.1\r\nHost: x\r\nAccept-Encoding: %s\r\n\r\n"
                             % (path.encode(), ae), [False], close_after=False)
            pair.append(Server(port, server))
        assert pair[1].direct == 0
        yield pair[0], pair[1]


def validators(port: int) -> dict[str, bytes]:
    raw = exchange(port, b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n", [True],
                   close_after=False).responses[0]
    return {name: re.search(rb"\r\n%s: ([^\r]*)\r\n" % name.encode(), raw)[1]
            for name in ("etag", "last-modified")}


GET = b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n"

# id -> (request made from the validators, HEAD per response, responses taken directly,
#        the server closes)
Case = tuple[Callable[[dict[str, bytes]], bytes], list[bool], int, bool]
CASES: dict[str, Case] = {
    "200 identity": (lambda v: GET % (b"/atom.xml", b""), [False], 1, False),
    "200 gzip": (lambda v: GET % (b"/atom.xml", b"Accept-Encoding: gzip\r\n"), [False], 1,
                 False),
    "200 gzip, q values": (lambda v: GET % (b"/atom.xml",
                                            b"Accept-Encoding: br;q=1, gzip;q=0.5\r\n"),
                           [False], 1, False),
    "gzip refused by q=0": (lambda v: GET % (b"/atom.xml", b"Accept-Encoding: gzip;q=0\r\n"),
                            [False], 1, False),
    "hub's python-requests gets identity": (
        lambda v: GET % (b"/atom.xml", b"Accept-Encoding: gzip\r\n"
                         b"User-Agent: python-requests/2.32\r\n"), [False], 1, False),
    "304 by ETag": (lambda v: GET % (b"/atom.xml", b"If-None-Match: %s\r\n" % v["etag"]),
                    [False], 1, False),
    "304 by ETag, gzip": (lambda v: GET % (b"/atom.xml", b"If-None-Match: W/%s\r\n"
                                           b"Accept-Encoding: gzip\r\n" % v["etag"]),
                          [False], 1, False),
    "200 for another ETag": (lambda v: GET % (b"/atom.xml", b'If-None-Match: "x"\r\n'),
                             [False], 1, False),
    "304 by If-Modified-Since": (
        lambda v: GET % (b"/atom.xml", b"If-Modified-Since: %s\r\n" % v["last-modified"]),
        [False], 1, False),
    "200 for an older If-Modified-Since": (
        lambda v: GET % (b"/atom.xml", b"If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n"),
        [False], 1, False),
    "HEAD": (lambda v: b"HEAD /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n", [True], 1, False),
    "HEAD gzip": (lambda v: b"HEAD /atom.xml HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                  b"\r\n", [True], 1, False),
    "Range is not supported: the whole file": (
        lambda v: GET % (b"/atom.xml", b"Range: bytes=0-9\r\n"), [False], 1, False),
    "HTTP/1.0": (lambda v: b"GET /atom.xml HTTP/1.0\r\n\r\n", [False], 1, True),
    "HTTP/1.0 with keep-alive, pipelined": (
        lambda v: b"GET /rss.xml HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2,
        [False], 1, True),
    "HTTP/1.0 with Proxy-Connection keep-alive": (
        lambda v: b"GET /rss.xml HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n",
        [False], 1, True),
    "Connection: close": (lambda v: GET % (b"/feed.json", b"Connection: close\r\n"), [False], 1,
                          True),
    "Connection: close, pipelined": (
        lambda v: GET % (b"/feed.json", b"Connection: close\r\n") + GET % (b"/rss.xml", b""),
        [False], 1, True),
    "query string": (lambda v: GET % (b"/atom.xml?x=1&y=%2F", b""), [False], 1, False),
    "escaped path": (lambda v: GET % (b"/%61tom.xml", b""), [False], 1, False),
    "absolute form": (lambda v: GET % (b"http://x/rss.xml", b""), [False], 1, False),
    "pages": (lambda v: GET % (b"/", b"") + GET % (b"/entries/hello.html", b""),
              [False, False], 2, False),
    "pipelined": (lambda v: (GET % (b"/atom.xml", b"Accept-Encoding: gzip\r\n")
                             + b"HEAD /rss.xml HTTP/1.1\r\nHost: x\r\n\r\n"
                             + GET % (b"/feed.json", b"If-None-Match: *\r\n")),
                  [False, True, False], 3, False),
    # left to the app
    "unknown path": (lambda v: GET % (b"/nope.xml", b""), [False], 0, False),
    "traversal": (lambda v: GET % (b"/../secret.txt", b""), [False], 0, False),
    "escaped traversal": (lambda v: GET % (b"/entries/..%2F..%2Fsecret.txt", b""), [False], 0,
                          False),
    "dot-dot segment": (lambda v: GET % (b"/entries/../atom.xml", b""), [False], 0, False),
    "NUL": (lambda v: GET % (b"/atom.xml%00", b""), [False], 0, False),
    "gzip sibling": (lambda v: GET % (b"/atom.xml.gz", b""), [False], 0, False),
    "temp file": (lambda v: GET % (b"/.atom.xml.tmp", b""), [False], 0, False),
    "healthz": (lambda v: GET % (b"/healthz", b""), [False], 0, False),
    "POST": (lambda v: b"POST /atom.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
             [False], 0, False),
    "GET with a body": (lambda v: b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                        b"\r\nabc", [False], 0, False),
    "chunked body": (lambda v: b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                     b"chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", [False], 0, False),
    "Expect": (lambda v: GET % (b"/atom.xml", b"Expect: 100-continue\r\nContent-Length: 0\r\n"),
               [False], 0, False),
    "non-ASCII path": (lambda v: GET % ("/atom\u00e9.xml".encode(), b""), [False], 0, False),
    # after a request the app answers, the next one waits for it
    "behind a request left to the app": (
        lambda v: GET % (b"/nope", b"") + GET % (b"/atom.xml", b"") + GET % (b"/rss.xml", b""),
        [False, False, False], 0, False),
    "behind a body": (
        lambda v: b"GET /rss.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                  + GET % (b"/atom.xml", b""), [False, False], 0, False),
}


@pytest.mark.parametrize("case", CASES)
def test_direct_answers_are_uvicorn_s_bytes(servers: tuple[Server, Server], case: str) -> None:
    direct, asgi = servers
    make, heads, taken, closes = CASES[case]
    answers = []
    for server in (direct, asgi):
        request = make(validators(server.port))
        before = server.direct
        answers.append(exchange(server.port, request, heads, close_after=closes))
        assert server.direct - before == (taken if server is direct else 0)
    assert answers[0] == answers[1]
    statuses = [int(r.split(b" ", 2)[1]) for r in answers[0].responses]
    if taken:
        assert set(statuses) <= {200, 304}, statuses


def test_responses_look_right(servers: tuple[Server, Server]) -> None:
    """What the comparisons compare: uvicorn's headers in uvicorn's order, then the app's."""
    direct, _ = servers
    v = validators(direct.port)
    (raw,) = exchange(direct.port, GET % (b"/atom.xml", b"Accept-Encoding: gzip\r\n"), [False],
                      close_after=False).responses
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 200 OK", b"date: -", b"server: uvicorn",
        b"content-type: application/atom+xml; charset=utf-8", b"content-encoding: gzip",
        b"content-length: %d" % len(body), b"etag: " + v["etag"][:-1] + b'-gz"',
        b"last-modified: " + v["last-modified"], b"cache-control: public, max-age=60",
        b"vary: Accept-Encoding", b'link: <http://hub.example/>; rel="hub"',
        b'link: <http://feeds.example/atom.xml>; rel="self"']
    assert gzip.decompress(body) == ATOM
    (raw,) = exchange(direct.port, b"GET /atom.xml HTTP/1.0\r\n\r\n", [False],
                      close_after=True).responses
    assert raw.split(b"\r\n\r\n", 1) == [raw.split(b"\r\n\r\n")[0], ATOM]
    assert raw.split(b"\r\n\r\n")[0].endswith(b"\r\nconnection: close")


def test_long_targets_are_answered_but_not_kept(servers: tuple[Server, Server]) -> None:
    """Request targets are remembered (target -> path) only while short: a client cannot
    make the server keep 1,024 long ones."""
    from feeder import server as server_module

    direct, _ = servers
    before = direct.direct
    for i in range(3):
        target = b"/atom.xml?%d=" % i + b"x" * 5000
        (raw,) = exchange(direct.port, GET % (target, b""), [True], close_after=False).responses
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert direct.direct == before + 3
    assert max(map(len, server_module._PATHS)) <= server_module._PATH_MAX


def test_stale_or_refreshed_versions_go_to_the_app(out: Path) -> None:
    """A version not proven current (revalidate passed, or a refresh since: what the daemon
    calls after a pass writes) is checked by the app first; then direct answers resume,
    with the new bytes."""
    now = [0.0]
    app = make_app(out, clock=lambda: now[0])
    with server_in_thread(app) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        request = GET % (b"/rss.xml", b"")

        def get() -> bytes:
            return exchange(port, request, [False], close_after=False).responses[0]

        get()
        before = server.pool.direct
        get()
        assert server.pool.direct == before + 1
        now[0] += 3601  # past revalidate: the app stats the file again
        get()
        assert server.pool.direct == before + 1
        get()
        assert server.pool.direct == before + 2
        tmp = out / ".rss.xml.tmp"
        tmp.write_bytes(b"<rss>new</rss>")
        os.replace(tmp, out / "rss.xml")
        app.refresh()
        assert get().endswith(b"<rss>new</rss>")
        assert server.pool.direct == before + 2
        assert get().endswith(b"<rss>new</rss>")
        assert server.pool.direct == before + 3


def test_gzip_not_yet_compressed_goes_to_the_app(out: Path) -> None:
    (out / "atom.xml.gz").unlink()
    with server_in_thread(make_app(out)) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        request = GET % (b"/atom.xml", b"Accept-Encoding: gzip\r\n")
        exchange(port, GET % (b"/atom.xml", b""), [False], close_after=False)
        before = server.pool.direct
        first = exchange(port, request, [False], close_after=False).responses[0]
        assert server.pool.direct == before  # compressed by the app, in a worker thread
        assert exchange(port, request, [False], close_after=False).responses[0] == first
        assert server.pool.direct == before + 1


@pytest.mark.parametrize("options", [{"access_log": True, "log_level": "info"},
                                     {"root_path": "/feeds"}, {"limit_concurrency": 100}],
                         ids=["access log", "root_path", "limit_concurrency"])
def test_direct_path_is_off_where_uvicorn_does_more(out: Path, options: dict) -> None:
    with server_in_thread(make_app(out), **options) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        for _ in range(3):
            exchange(port, GET % (b"/rss.xml", b""), [False], close_after=False)
        assert server.pool.direct == 0


def test_direct_answers_count_toward_limit_max_requests(out: Path) -> None:
    """uvicorn stops after ``limit_max_requests``: direct answers are requests too."""
    with server_in_thread(make_app(out), limit_max_requests=12,
                          timeout_keep_alive=60) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for _ in range(11):  # the 12th was server_in_thread's own
                assert get_on(sock).startswith(b"HTTP/1.1 200 OK\r\n")
            assert server.pool.direct >= 9
            assert closed_by_peer(sock, timeout=10)  # uvicorn stops, closing it


def test_daemon_serves_by_the_direct_path(out: Path) -> None:
    """``feeder run`` wraps the app (it is swapped on reload): the direct path goes through
    the wrapper to the app in use."""
    from feeder.config import Config
    from feeder.daemon import Daemon
    from feeder.server import listen

    sockets = listen("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    daemon = Daemon(Config(out=out, port=port))
    daemon._sockets = sockets
    daemon._start_server()
    try:
        before = daemon.server.pool.direct
        for _ in range(2):
            exchange(port, GET % (b"/rss.xml", b""), [False], close_after=False)
        assert daemon.server.pool.direct == before + 1
        tmp = out / ".rss.xml.tmp"
        tmp.write_bytes(b"<rss>reloaded</rss>")
        os.replace(tmp, out / "rss.xml")
        daemon.app = daemon._make_app(daemon.config)  # what a reload does
        for _ in range(2):
            (raw,) = exchange(port, GET % (b"/rss.xml", b""), [False],
                              close_after=False).responses
            assert raw.endswith(b"<rss>reloaded</rss>")
        assert daemon.server.pool.direct == before + 2
    finally:
        daemon.server.should_exit = True
        daemon._server_thread.join(10)
        for sock in daemon._sockets:
            sock.close()


# --- hostile clients ------------------------------------------------------------------------------

def test_pipelined_flood_with_a_slow_reader(out: Path) -> None:
    """300 pipelined GETs in one write, read a little at a time: the transport's buffer
    fills, the direct path stops at its high-water mark and the app answers the rest in
    order (its sends wait for the buffer to drain); every response arrives, in order."""
    paths = [b"/atom.xml", b"/rss.xml", b"/feed.json"]
    bodies = {b"/atom.xml": ATOM, b"/rss.xml": FILES["rss.xml"],
              b"/feed.json": FILES["feed.json"]}
    order = [paths[i % 3] for i in range(300)]
    with server_in_thread(make_app(out)) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        for path in paths:
            exchange(port, GET % (path, b""), [False], close_after=False)
        before = server.pool.direct
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(20)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"".join(GET % (path, b"") for path in order))
            stream = sock.makefile("rb", buffering=1024)
            for path in order:
                status = stream.readline()
                assert status == b"HTTP/1.1 200 OK\r\n", status
                length = None
                while (line := stream.readline()) != b"\r\n":
                    if line.startswith(b"content-length: "):
                        length = int(line.split(b": ")[1])
                assert stream.read(length) == bodies[path]
        taken = server.pool.direct - before
        assert 0 < taken < 300  # some answered directly, the rest once the buffer drained
        for path in paths:  # the connection's state is sound for the next client
            exchange(port, GET % (path, b""), [False], close_after=False)
        assert server.pool.direct > before + taken


@pytest.fixture
def quick(out: Path) -> Iterator[Server]:
    """keep-alive 0.5 s, headers 1 s."""
    app = make_app(out)
    with server_in_thread(app, timeout_keep_alive=0.5, header_timeout=1.0) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        exchange(port, GET % (b"/rss.xml", b""), [False], close_after=False)
        yield Server(port, server)


def test_trickled_request_after_direct_answers_times_out(quick: Server) -> None:
    """A request that begins in the same write as one answered directly, then trickles,
    is closed at the header deadline (not kept by the keep-alive timer's restarts)."""
    with socket.create_connection(("127.0.0.1", quick.port), timeout=5) as sock:
        before = quick.direct
        sock.sendall(GET % (b"/rss.xml", b"") + PARTIAL_REQUEST)
        assert read_response(sock.makefile("rb")).startswith(b"HTTP/1.1 200 OK\r\n")
        assert quick.direct == before + 1
        assert closed_by_peer(sock, timeout=15, trickle=b"X")


def test_trickle_on_a_connection_answered_directly_times_out(quick: Server) -> None:
    with socket.create_connection(("127.0.0.1", quick.port), timeout=5) as sock:
        before = quick.direct
        assert get_on(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        assert quick.direct == before + 1
        sock.sendall(PARTIAL_REQUEST)
        assert closed_by_peer(sock, timeout=15, trickle=b"X")


def test_idle_after_direct_answers_is_closed(quick: Server) -> None:
    with socket.create_connection(("127.0.0.1", quick.port), timeout=5) as sock:
        before = quick.direct
        for _ in range(5):
            assert get_on(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        assert quick.direct == before + 5
        assert closed_by_peer(sock, timeout=15)


def test_half_closed_client_gets_its_answer(quick: Server) -> None:
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as sock:
        before = quick.direct
        sock.sendall(GET % (b"/rss.xml", b""))
        sock.shutdown(socket.SHUT_WR)
        stream = sock.makefile("rb")
        data = stream.read()  # to the end: the server closes once it has answered
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(FILES["rss.xml"])
        assert quick.direct == before + 1


def test_connection_cap_sheds_a_connection_idle_after_a_direct_answer(out: Path) -> None:
    with server_in_thread(make_app(out), max_connections=3) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        exchange(port, GET % (b"/rss.xml", b""), [False], close_after=False)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
            before = server.pool.direct
            assert get_on(first).startswith(b"HTTP/1.1 200 OK\r\n")
            assert server.pool.direct == before + 1
            idle = open_idle(port, 2)
            try:
                # a fourth connection: the one idle longest, the first, makes room
                assert exchange(port, GET % (b"/rss.xml", b""), [False],
                                close_after=False).responses[0].endswith(FILES["rss.xml"])
                assert closed_by_peer(first, timeout=10)
                assert len(server.pool.open) <= 3
            finally:
                for sock in idle:
                    sock.close()


def test_large_body_to_a_feed_url(out: Path) -> None:
    """A GET of a feed with a 4 MB body: the app answers (not the direct path), the body is
    read and dropped, and the next request on the connection is answered after it."""
    body = b"x" * (4 << 20)
    with server_in_thread(make_app(out)) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        exchange(port, GET % (b"/rss.xml", b""), [False], close_after=False)
        before = server.pool.direct
        request = (b"GET /rss.xml HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                   + body + GET % (b"/feed.json", b""))
        responses = exchange(port, request, [False, False], close_after=False).responses
        assert responses[0].endswith(FILES["rss.xml"])
        assert responses[1].endswith(FILES["feed.json"])
        assert server.pool.direct == before  # the second waited behind the first


@pytest.mark.slow
def test_sigterm_stops_gracefully_with_kept_connections(out: Path) -> None:
    """SIGTERM while clients hold connections kept alive after direct answers: the server
    closes them and exits at once (not after their keep-alive time)."""
    port = free_port()
    code = ("import signal, sys; from pathlib import Path\n"
            "from feeder.server import create_app, make_server\n"
            "def stop(*_): raise SystemExit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "server = make_server(create_app(Path(sys.argv[1]), base_url='http://x/'), "
            "port=int(sys.argv[2]), timeout_keep_alive=600)\n"
            "try: server.run()\n"
            "finally: print('direct', server.pool.direct, flush=True)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out), str(port)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    socks: list[socket.socket] = []
    try:
        def connect() -> socket.socket | None:
            assert proc.poll() is None, proc.communicate()
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                return None

        socks.append(wait_until(connect, what="the subprocess server"))
        socks += [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        for sock in socks:
            for _ in range(2):  # the first may go through the app: it reads the file
                assert get_on(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
        for sock in socks:
            assert closed_by_peer(sock, timeout=5)
    finally:
        for sock in socks:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    taken = int(stdout.split()[1])
    assert taken >= 5
