"""Tell systemd how ``feeder run`` is doing: the notify protocol of sd_notify(3), spoken directly.

Under ``Type=notify`` systemd passes a datagram socket in ``$NOTIFY_SOCKET`` (a leading "@"
means the abstract namespace) and, with ``WatchdogSec=``, the time it waits between
keep-alives in ``$WATCHDOG_USEC``. Each message is one datagram of ``KEY=value`` lines.
feeder sends ``READY=1`` once its first build is served, ``STATUS=`` with each build's
summary, ``STOPPING=1`` when it stops, and, from a thread of its own, ``WATCHDOG=1`` every
half of that time, but only while ``alive()`` finds the daemon making progress: a daemon that
wedges anyway is then killed and restarted (``Restart=on-failure``). systemd arms its
watchdog only once the service is ready; until then the same thread asks for more start-up
time (``EXTEND_TIMEOUT_USEC``) while the first build makes progress, since a first build of
100,000 seeds outlasts the default 90 s start timeout.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("feeder")

START_TICK = 10.0  # seconds between start-up time extensions when there is no watchdog


def notify(*lines: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send one message (``"READY=1"``, ``"STATUS=..."``) to systemd; False when feeder does
    not run under ``Type=notify`` (no ``$NOTIFY_SOCKET``) or the message cannot be sent."""
    address = environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a kind of address (vsock) feeder does not speak
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
    except OSError as exc:
        log.debug("cannot notify systemd at %s: %s", environ["NOTIFY_SOCKET"], exc)
        return False
    return True


def watchdog_seconds(environ: Mapping[str, str] = os.environ) -> float | None:
    """How long systemd waits for a keep-alive, if it expects them from this process."""
    pid = environ.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


class Progress:
    """Whether the rebuild machinery moves, for the watchdog: a pass that was asked for
    starts within ``bound`` seconds (of the request, or of the end of the pass before it),
    and a running pass shows progress (a batch done) at least every ``bound`` seconds."""

    def __init__(self, bound: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.bound = bound
        self.clock = clock
        self._lock = threading.Lock()
        self._asked: float | None = None  # when the oldest request not yet taken up came
        self._beat: float | None = None  # when the running pass last moved; None: none runs
        self._ended = clock()

    def asked(self) -> None:
        with self._lock:
            if self._asked is None:
                self._asked = self.clock()

    def began(self) -> None:
        with self._lock:
            self._asked = None
            self._beat = self.clock()

    def beat(self) -> None:
        with self._lock:
            if self._beat is not None:
                self._beat = self.clock()

    def ended(self) -> None:
        with self._lock:
            self._beat = None
            self._ended = self.clock()

    def stalled(self) -> str | None:
        """Why the machinery looks stuck, or None."""
        with self._lock:
            now = self.clock()
            if self._beat is not None:
                if now - self._beat > self.bound:
                    return f"a build has made no progress for {now - self._beat:.0f} s"
            elif self._asked is not None:
                waiting = now - max(self._asked, self._ended)
                if waiting > self.bound:
                    return f"a build asked for {waiting:.0f} s ago has not started"
        return None


class BeatingEvent(threading.Event):
    """A builder's ``cancel`` flag that counts its looks as beats: the builder looks at it
    between batches (every 500 seeds read, every render job), so each look is progress."""

    def __init__(self, beat: Callable[[], None]) -> None:
        super().__init__()
        self._beat = beat

    def is_set(self) -> bool:
        self._beat()
        return super().is_set()


def http_answers(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether the HTTP server on ``host``:``port`` answers a request (any status will do)
    within ``timeout`` seconds. The path is one no route serves: no file or database is
    touched, so the answer measures the server alone."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("HEAD", "/.feeder-watchdog")
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return True


class Notifier:
    """The daemon's line to systemd; does nothing when feeder was not started by it.

    ``alive()`` returns None when the daemon makes progress, or why it does not; it is
    called once per tick by the keep-alive thread, which :meth:`start` starts when systemd
    listens.
    """

    def __init__(self, alive: Callable[[], str | None],
                 environ: Mapping[str, str] = os.environ) -> None:
        self.alive = alive
        self.environ = environ
        self.listening = bool(environ.get("NOTIFY_SOCKET"))
        self.watchdog = watchdog_seconds(environ) if self.listening else None
        self.tick = self.watchdog / 2 if self.watchdog else START_TICK
        self.ready_sent = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, *lines: str) -> None:
        if self.listening:
            notify(*lines, environ=self.environ)

    def ready(self, status: str) -> None:
        """A build is served: READY=1 the first time, then its STATUS= line."""
        if self.ready_sent:
            self.send(f"STATUS={status}")
        else:
            self.ready_sent = True
            self.send("READY=1", f"STATUS={status}")

    def start(self) -> None:
        if self.listening and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="feeder-systemd",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self.send("STOPPING=1")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)  # a probe in flight ends on its own
            self._thread = None

    def _run(self) -> None:
        stuck: str | None = None
        while not self._stop.wait(self.tick):
            if self.ready_sent and self.watchdog is None:
                return  # nothing left to send from here
            problem = self.alive()
            if problem != stuck:
                if problem is None:
                    log.info("making progress again: telling systemd")
                else:
                    log.error("not telling systemd that feeder is alive: %s", problem)
                stuck = problem
            if problem is not None:
                continue
            if not self.ready_sent:  # systemd arms the watchdog only once we are ready
                self.send(f"EXTEND_TIMEOUT_USEC={int(3 * self.tick * 1e6)}")
            elif self.watchdog is not None:
                self.send("WATCHDOG=1")
