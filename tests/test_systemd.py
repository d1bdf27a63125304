"""systemd.py against real datagram sockets and a real HTTP server (no mocks)."""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from feeder import systemd

from ._daemon import REPO, free_port
from ._servers import serve_in_thread


@pytest.fixture
def listener(tmp_path) -> Iterator[tuple[dict[str, str], socket.socket]]:
    """(an environment naming the socket, the socket that plays systemd)."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield {"NOTIFY_SOCKET": str(path)}, sock


def test_notify_to_a_path_and_to_the_abstract_namespace(listener):
    env, sock = listener
    assert systemd.notify("READY=1", "STATUS=built", environ=env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=built"

    name = f"feeder-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name)
        abstract.settimeout(5)
        assert systemd.notify("WATCHDOG=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert abstract.recv(4096) == b"WATCHDOG=1"


def test_notify_without_systemd_is_a_no_op(tmp_path):
    assert not systemd.notify("READY=1", environ={})
    assert not systemd.notify("READY=1", environ={"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not systemd.notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "none")})


def test_watchdog_seconds():
    assert systemd.watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert systemd.watchdog_seconds({"WATCHDOG_USEC": "30000000",
                                     "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert systemd.watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert systemd.watchdog_seconds({}) is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_stalls_on_a_request_never_taken_up():
    clock = Clock()
    progress = systemd.Progress(bound=60, clock=clock)
    clock.now += 1000
    assert progress.stalled() is None  # idle with nothing asked: fine
    progress.asked()
    clock.now += 59
    assert progress.stalled() is None
    progress.asked()  # the oldest request counts
    clock.now += 2
    assert "has not started" in progress.stalled()
    progress.began()
    assert progress.stalled() is None


def test_progress_stalls_on_a_pass_without_beats():
    clock = Clock()
    progress = systemd.Progress(bound=60, clock=clock)
    progress.began()
    for _ in range(10):  # a long pass that moves
        clock.now += 50
        progress.beat()
        assert progress.stalled() is None
    progress.asked()  # asked while it runs: waits for its end, not counted meanwhile
    clock.now += 61
    assert "no progress for 61 s" in progress.stalled()
    progress.ended()
    assert progress.stalled() is None
    clock.now += 61
    assert "has not started" in progress.stalled()


def test_beating_event_counts_each_look():
    beats = []
    event = systemd.BeatingEvent(lambda: beats.append(1))
    assert not event.is_set()
    event.set()
    assert event.is_set() and len(beats) == 2


def test_http_answers():
    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve_in_thread(app) as base:
        port = int(base.rsplit(":", 1)[1].strip("/"))
        assert systemd.http_answers("127.0.0.1", port)
        assert systemd.http_answers("0.0.0.0", port)  # probed on loopback
    assert not systemd.http_answers("127.0.0.1", free_port(), timeout=1)


def receive_lines(sock: socket.socket, skip: tuple[str, ...] = ()) -> list[str]:
    """The next datagram's lines, skipping datagrams whose first line starts with ``skip``."""
    while True:
        lines = sock.recv(4096).decode().splitlines()
        if not lines[0].startswith(skip):
            return lines


def pending(sock: socket.socket) -> list[str]:
    """Every datagram already received, without waiting."""
    found = []
    sock.setblocking(False)
    try:
        while True:
            found.append(sock.recv(4096).decode())
    except BlockingIOError:
        return found
    finally:
        sock.settimeout(5)


def test_notifier_feeds_the_watchdog_only_while_alive(listener):
    env, sock = listener
    problem: list[str | None] = [None]
    answers: queue.Queue[str | None] = queue.Queue()

    def alive() -> str | None:
        answer = problem[0]
        answers.put(answer)  # before the notifier acts on it
        return answer

    def wait_for_answers(answer: str | None, count: int) -> None:
        while count:
            count -= answers.get(timeout=5) == answer

    notifier = systemd.Notifier(alive, environ={**env, "WATCHDOG_USEC": "100000"})
    assert notifier.tick == 0.05
    notifier.start()
    try:
        assert receive_lines(sock)[0].startswith("EXTEND_TIMEOUT_USEC=")  # not ready yet
        notifier.ready("built in 5 ms: 1 entries")
        assert receive_lines(sock, skip=("EXTEND_TIMEOUT_USEC=",)) == [
            "READY=1", "STATUS=built in 5 ms: 1 entries"]
        assert receive_lines(sock) == ["WATCHDOG=1"]

        problem[0] = "a build has made no progress for 99 s"
        wait_for_answers(problem[0], 1)
        pending(sock)  # sent before the problem was seen
        wait_for_answers(problem[0], 3)
        assert pending(sock) == []

        problem[0] = None
        assert receive_lines(sock) == ["WATCHDOG=1"]
        notifier.ready("built in 6 ms: 2 entries")
        assert receive_lines(sock, skip=("WATCHDOG=1",)) == ["STATUS=built in 6 ms: 2 entries"]
    finally:
        notifier.stop()
    assert receive_lines(sock, skip=("WATCHDOG=1",)) == ["STOPPING=1"]


def test_notifier_without_systemd_starts_nothing():
    before = set(threading.enumerate())
    notifier = systemd.Notifier(lambda: None, environ={})
    notifier.start()
    notifier.ready("built")
    assert set(threading.enumerate()) == before
    notifier.stop()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_unit_file_verifies(tmp_path):
    """config/feeder.service, with ExecStart pointed at this Python (the unit's own path is
    not installed here), passes ``systemd-analyze verify`` without a warning."""
    text = (REPO / "config" / "feeder.service").read_text(encoding="utf-8")
    assert "\nType=notify\n" in text and "\nWatchdogSec=" in text
    unit = tmp_path / "feeder.service"
    unit.write_text(text.replace("/opt/feeder/bin/feeder", f"{sys.executable} -m feeder"),
                    encoding="utf-8")
    check = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                           text=True, timeout=60)
    assert (check.returncode, check.stdout + check.stderr) == (0, "")
