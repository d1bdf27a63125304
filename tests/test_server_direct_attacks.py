"""Review of the direct path (branch fastpath): requests on which it answers differently from
the app's ASGI answer. Same harness as ``test_server_direct``: a server whose app offers
``answer`` and one whose app is a plain ASGI function, warm caches, byte-for-byte comparison.

Each was written for a bug found by an operator's review, and fails on the commit it was
written against (89e7fdc, the direct path as first merged). Two of them are about behaviour
already in f3b62b0, marked "Pre-existing".
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from tests._servers import server_in_thread
from tests.test_server_direct import (  # noqa: F401 - out, servers: fixtures
    ATOM,
    GET,
    Server,
    exchange,
    make_app,
    out,
    servers,
)

# RFC 9110 §13.1.3: a value that is not a valid HTTP-date is ignored. This one makes
# email.utils.parsedate_to_datetime raise OverflowError (the year does not fit a C int).
OVERFLOWING_DATE = b"Thu, 03 Dec 99999999999 08:29:06 GMT"


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_an_exception_in_the_direct_path_is_not_a_bad_request(
        servers: tuple[Server, Server], method: bytes) -> None:  # noqa: F811
    """What ``answer`` raises escapes from the parser callback: httptools turns it into a
    parser error, uvicorn writes "400 Invalid HTTP request received." and logs a WARNING,
    and the traceback is lost. The app's answer to the same request (the ASGI path, also
    taken for this very request whenever the cached version is not fresh) is something
    else: the direct path must answer as the app does, or leave the request to it."""
    request = b"%s /atom.xml HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: %s\r\n\r\n" % (
        method, OVERFLOWING_DATE)
    head = method == b"HEAD"
    direct, asgi = servers
    answers = [exchange(server.port, request, [head], close_after=False).responses[0]
               .split(b"\r\n", 1)[0] for server in (direct, asgi)]
    assert not answers[0].startswith(b"HTTP/1.1 400 "), answers
    assert answers[0] == answers[1]


def test_an_overflowing_if_modified_since_is_ignored(
        servers: tuple[Server, Server]) -> None:  # noqa: F811
    """Pre-existing (f3b62b0 answers 500 and logs "Exception in ASGI application"): an
    If-Modified-Since that is no valid date is ignored, so a GET gets the file. On fastpath
    the direct path answers 400 instead, the ASGI path still 500."""
    for server in servers:
        (raw,) = exchange(server.port, GET % (b"/atom.xml", b"If-Modified-Since: %s\r\n"
                                               % OVERFLOWING_DATE),
                          [False], close_after=False).responses
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:200]
        assert raw.endswith(ATOM)


def test_long_accept_encoding_values_are_not_kept(out: Path) -> None:  # noqa: F811
    """Pre-existing (f3b62b0 too), on both paths: ``_accepts_gzip``'s lru_cache keeps up to
    512 Accept-Encoding values of any length (uvicorn/httptools set no limit on a header's
    size), so a client keeps ~1 MB of server memory per 1 MB request, for good. The direct
    path's request targets got a length bound at 89e7fdc; the values this cache keeps need
    one too."""
    with server_in_thread(make_app(out)) as (base, _):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        exchange(port, GET % (b"/rss.xml", b"Accept-Encoding: gzip\r\n"), [False],
                 close_after=False)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(16):
                value = b"br;v=%d, " % i + b"x" * (1 << 20) + b", gzip"
                (raw,) = exchange(port, GET % (b"/rss.xml", b"Accept-Encoding: %s\r\n" % value),
                                  [False], close_after=False).responses
                assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    # kept by the cache: ~17 MiB; without it, what the last requests' buffers still hold
    assert kept < 6 << 20, f"{kept / (1 << 20):.1f} MiB kept after sixteen 1 MiB headers"


def test_a_failing_direct_answer_leaves_the_request_to_the_app(out: Path) -> None:  # noqa: F811
    """Whatever ``answer`` raises (a bug not yet found) is logged, and the request goes to
    the app as if the direct path did not exist: it gets the app's answer, not the parser's
    "400 Invalid HTTP request" with the traceback lost."""
    app = make_app(out)

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in answer")

    app.answer = broken
    with server_in_thread(app) as (base, server):
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        (raw,) = exchange(port, GET % (b"/atom.xml", b""), [False], close_after=False).responses
        assert server.pool.direct == 0
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:200]
    assert raw.endswith(ATOM)
