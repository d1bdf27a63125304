"""Hostile clients for the server tests and ``bench/starve.py``: idle connections, slow
header senders, and the normal requests that must still be served among them.

Everything is bounded (a count of sockets, a timeout per request) and loopback only.
"""

from __future__ import annotations

import http.client
import resource
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._daemon import FeederDaemon

PRLIMIT = shutil.which("prlimit")
PARTIAL_REQUEST = b"GET /atom.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class LimitedDaemon(FeederDaemon):
    """``feeder run`` started under ``prlimit --nofile=N:N`` (util-linux), as systemd's default
    soft limit of 1024 would leave it."""

    def __init__(self, root: Path, *, nofile: int = 1024, **options: Any) -> None:
        super().__init__(root, **options)
        self.nofile = nofile

    def command(self) -> list[str]:
        assert PRLIMIT, "prlimit (util-linux) is not installed"
        return [PRLIMIT, f"--nofile={self.nofile}:{self.nofile}", *super().command()]


def raise_own_fd_limit(wanted: int) -> bool:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted``; False if the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        return False
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return True


def open_idle(port: int, count: int, timeout: float = 5.0) -> list[socket.socket]:
    """Open ``count`` connections that never send a byte (fewer if some connects fail: an
    attacker does not mind, and a server that sheds them may refuse a few)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(timeout)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        socks.append(sock)
    return socks


def close_all(socks: Sequence[socket.socket]) -> None:
    for sock in socks:
        sock.close()


@dataclass
class SlowSenders:
    """``count`` connections that send a request's first header lines, then one more header
    byte every ``interval`` seconds, for as long as the server keeps them open."""

    port: int
    count: int
    interval: float = 0.5
    socks: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def running(self) -> Iterator[SlowSenders]:
        self.socks = open_idle(self.port, self.count)
        for sock in self.socks:
            _send(sock, PARTIAL_REQUEST)
        thread = threading.Thread(target=self._trickle, name="slow-senders", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)
            close_all(self.socks)

    def _trickle(self) -> None:
        alive = list(self.socks)
        while alive and not self._stop.wait(self.interval):
            alive = [sock for sock in alive if _send(sock, b"X")]


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


@dataclass
class Outcome:
    """What ``normal_requests`` saw: latencies (s) of the answered requests, and failures."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def normal_requests(port: int, count: int, path: str = "/atom.xml",
                    timeout: float = 10.0) -> Outcome:
    """``count`` GETs one after another, each on a new connection, as feed readers poll; a
    request counts as served when it gets a 200 and its whole body."""
    outcome = Outcome()
    for _ in range(count):
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                outcome.latencies.append(time.monotonic() - start)
            else:
                outcome.failures.append(f"status {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            outcome.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
    return outcome


def closed_by_peer(sock: socket.socket, timeout: float, trickle: bytes = b"") -> bool:
    """Whether the other end closes ``sock`` (EOF or reset) within ``timeout`` seconds; with
    ``trickle``, those bytes are sent every 0.2 s meanwhile, as a slow header sender does."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if trickle and not _send(sock, trickle):
            return True
        sock.settimeout(min(left, 0.2) if trickle else left)
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False
