"""``feeder run`` under ``Type=notify``: systemd's side of the notify protocol, played by a
datagram socket of the test's own (in the abstract namespace, as "@name")."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from .._daemon import seed_bytes as seed
from .test_daemon import write_in_place

pytestmark = pytest.mark.slow


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, socket.socket]]:
    """($NOTIFY_SOCKET, the bound socket that plays systemd)."""
    name = f"@feeder-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        yield name, sock


def receive_until(sock: socket.socket, wanted: Callable[[str], bool],
                  timeout: float = 15.0) -> list[str]:
    """The datagrams received until one has a line that is ``wanted``; returns that datagram's
    lines."""
    received: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"nothing wanted within {timeout}s; received {received}")
        sock.settimeout(left)
        try:
            lines = sock.recv(4096).decode().splitlines()
        except TimeoutError:
            continue
        received.append("\n".join(lines))
        if any(wanted(line) for line in lines):
            return lines


def test_ready_status_watchdog_and_stopping(daemon_factory, notify_socket):
    name, sock = notify_socket
    d = daemon_factory(env={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000000"})
    write_in_place(d.seeds / "a.txt", seed("2026-01-05", "The first article. Some text."))
    d.start()
    ready = receive_until(sock, "READY=1".__eq__)
    status = next(line for line in ready if line.startswith("STATUS="))
    assert "built in" in status, ready
    if "1 entries" not in status:  # a.txt, written just before the start, waits for settle
        receive_until(sock, lambda line: line.startswith("STATUS=") and "1 entries" in line)
    assert d.get("atom.xml").status_code == 200

    for _ in range(2):  # every 0.5 s: half of WATCHDOG_USEC
        receive_until(sock, "WATCHDOG=1".__eq__, timeout=10)

    write_in_place(d.seeds / "b.txt", seed("2026-01-06", "The second article. More text."))
    receive_until(sock, lambda line: line.startswith("STATUS=") and "2 entries" in line)
    d.stop()
    receive_until(sock, "STOPPING=1".__eq__, timeout=5)
