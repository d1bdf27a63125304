"""Helpers that run real servers for tests (no mocks): ``serve_in_thread`` (and
``server_in_thread``), ``hanging_hub``, ``wait_until``."""

from __future__ import annotations

import gzip
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import httpx

from feeder.server import ASGIApp, make_server

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.01,
               what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something true, and return that; raise TimeoutError
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        event.wait(interval)
    return result


def public_folder(tmp_path: Path, files: dict[str, bytes], gz_of_atom: bytes,
                  secret: bytes) -> Path:
    """An output folder ``tmp_path/public`` holding ``files`` and an ``atom.xml.gz`` of
    ``gz_of_atom`` made at level 1 (told apart from the server's own level-6 output), with
    ``secret.txt`` beside it, outside: what no request may reach."""
    out = tmp_path / "public"
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    (out / "atom.xml.gz").write_bytes(gzip.compress(gz_of_atom, compresslevel=1, mtime=0))
    (tmp_path / "secret.txt").write_bytes(secret)
    return out


@cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def http_client(**options: Any) -> httpx.Client:
    """An httpx client that reuses one TLS context: building one per client costs ~50 ms."""
    return httpx.Client(verify=_tls(), **{"timeout": 10.0, **options})


def http_get(url: str, **options: Any) -> httpx.Response:
    with http_client() as client:
        return client.get(url, **options)


@contextmanager
def serve_in_thread(app: ASGIApp, *, timeout: float = 10.0, **options: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield its base URL.
    ``options`` go to ``make_server``.

    The listening socket is bound here (port 0) and handed to uvicorn, so no other process
    can take the port between choosing and binding it. On exit the server is asked to stop
    and the thread is joined.
    """
    with server_in_thread(app, timeout=timeout, **options) as (base, _):
        yield base


@contextmanager
def server_in_thread(app: ASGIApp, *, timeout: float = 10.0,
                     **options: Any) -> Iterator[tuple[str, Any]]:
    """``serve_in_thread`` that yields the server too: (base URL, ``make_server``'s server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/"
    server = make_server(app, port=port, sockets=[sock], **options)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=timeout,
                   what=f"uvicorn on port {port} to start")
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn on port {port} exited during start-up")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:  # any answer will do: it proves requests are being served
            conn.request("GET", "/")
            conn.getresponse().read()
        finally:
            conn.close()
        yield base, server
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on port {port} did not stop within {timeout}s")


@contextmanager
def hanging_hub() -> Iterator[tuple[str, threading.Event]]:
    """A hub on 127.0.0.1 that accepts connections and never answers. Yields its URL and an
    event set once it has accepted a connection; on exit it closes them, so a ping still
    waiting fails at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.05)
    held: list[socket.socket] = []
    accepted, stop = threading.Event(), threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            held.append(conn)
            accepted.set()

    thread = threading.Thread(target=accept, name="hanging-hub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hang", accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        sock.close()
