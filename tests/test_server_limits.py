"""The server cannot be starved: connections that send nothing or trickle their headers are
closed, the oldest idle one makes room at the cap, /healthz never blocks the loop, a port in
use is one line, and a client's clock in the future gets no 304."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from feeder.server import create_app, make_server
from tests._daemon import feeder_env
from tests._flood import PARTIAL_REQUEST, closed_by_peer, normal_requests, open_idle
from tests._servers import http_get, serve_in_thread

FEED = b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"/>'
REQUEST = b"GET /atom.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    out = tmp_path / "public"
    out.mkdir()
    (out / "atom.xml").write_bytes(FEED)
    return out


def port_of(base: str) -> int:
    return int(base.rstrip("/").rsplit(":", 1)[1])


@pytest.fixture
def quick(out: Path) -> Iterator[int]:
    """A server with short timeouts (keep-alive 0.5 s, headers 1 s); yields its port."""
    app = create_app(out, base_url="http://x/")
    with serve_in_thread(app, timeout_keep_alive=0.5, header_timeout=1.0) as base:
        yield port_of(base)


def read_response(sock: socket.socket) -> bytes:
    """One response to REQUEST (its body is FEED), read whole."""
    data = b""
    sock.settimeout(10)
    while not data.endswith(FEED):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


# --- timeouts ---------------------------------------------------------------------------------

def test_connection_that_sends_nothing_is_closed(quick: int) -> None:
    with socket.create_connection(("127.0.0.1", quick), timeout=5) as sock:
        assert closed_by_peer(sock, timeout=15)


def test_idle_keep_alive_connection_is_closed(quick: int) -> None:
    with socket.create_connection(("127.0.0.1", quick), timeout=5) as sock:
        sock.sendall(REQUEST)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        assert closed_by_peer(sock, timeout=15)


@pytest.mark.parametrize("first", [PARTIAL_REQUEST, b"\r\n"], ids=["headers", "blank lines"])
def test_slow_header_sender_is_closed(quick: int, first: bytes) -> None:
    """A byte every 0.2 s never lets the connection go idle; the header deadline ends it."""
    trickle = b"X" if first == PARTIAL_REQUEST else b"\r\n"
    with socket.create_connection(("127.0.0.1", quick), timeout=5) as sock:
        sock.sendall(first)
        assert closed_by_peer(sock, timeout=15, trickle=trickle)
    assert normal_requests(quick, 3).failures == []


def test_slow_second_request_on_a_kept_connection_is_closed(quick: int) -> None:
    with socket.create_connection(("127.0.0.1", quick), timeout=5) as sock:
        sock.sendall(REQUEST)
        read_response(sock)
        sock.sendall(PARTIAL_REQUEST)
        assert closed_by_peer(sock, timeout=15, trickle=b"X")


def test_requests_on_a_kept_connection_are_served(quick: int) -> None:
    """The deadline is per request: a busy keep-alive connection is not cut, pipelined
    requests are all answered, and the connection is timed out once idle."""
    with socket.create_connection(("127.0.0.1", quick), timeout=5) as sock:
        for _ in range(20):
            sock.sendall(REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(REQUEST * 3)
        responses = b""
        while responses.count(FEED) < 3:
            responses += read_response(sock)
        assert responses.count(b"HTTP/1.1 200 ") == 3
        assert closed_by_peer(sock, timeout=15)


# --- the connection cap -------------------------------------------------------------------------

def test_oldest_idle_connection_makes_room_at_the_cap(out: Path) -> None:
    app = create_app(out, base_url="http://x/")
    with serve_in_thread(app, max_connections=5) as base:
        port = port_of(base)
        idle = open_idle(port, 5)  # the cap: each new connection closes the oldest idle one
        try:
            assert normal_requests(port, 10).failures == []
            assert closed_by_peer(idle[0], timeout=10)
        finally:
            for sock in idle:
                sock.close()


def test_soft_descriptor_limit_is_raised_where_the_hard_limit_allows(out: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip(f"hard RLIMIT_NOFILE is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        make_server(create_app(out, base_url="http://x/"), sockets=[sock], max_connections=400)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 400
    finally:
        sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- /healthz and conditional requests ----------------------------------------------------------

def test_healthz_does_not_block_the_loop(out: Path) -> None:
    """While a slow health check runs, feeds are still served."""
    entered, release = threading.Event(), threading.Event()

    def health() -> tuple[bool, dict]:
        entered.set()
        release.wait(20)
        return True, {"status": "ok"}

    with serve_in_thread(create_app(out, base_url="http://x/", health=health)) as base:
        poller = threading.Thread(target=http_get, args=(base + "healthz",),
                                  kwargs={"timeout": 30})
        poller.start()
        try:
            assert entered.wait(10)
            assert http_get(base + "atom.xml", timeout=5).status_code == 200
        finally:
            release.set()
            poller.join()


def test_if_modified_since_in_the_future_is_ignored(out: Path) -> None:
    future = formatdate(time.time() + 86400, usegmt=True)
    with serve_in_thread(create_app(out, base_url="http://x/")) as base:
        r = http_get(base + "atom.xml", headers={"If-Modified-Since": future})
    assert r.status_code == 200 and r.content == FEED


# --- a port in use --------------------------------------------------------------------------------

@pytest.mark.slow
def test_serve_on_a_port_in_use_is_one_line(out: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "feeder", "serve", "--out", str(out),
                               "--port", str(port)], capture_output=True, text=True,
                              env=feeder_env(), timeout=60)
    assert proc.returncode != 0
    assert proc.stderr == f"Error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert proc.stdout == ""
