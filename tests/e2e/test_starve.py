"""``feeder run`` as an operator meets it: 1,100 idle connections under systemd's default
descriptor limit, a port already in use, and a /healthz that stays small."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from .._daemon import FeederDaemon
from .._flood import (
    PRLIMIT,
    LimitedDaemon,
    SlowSenders,
    close_all,
    normal_requests,
    open_idle,
    raise_own_fd_limit,
)

pytestmark = pytest.mark.slow


@pytest.mark.skipif(PRLIMIT is None, reason="needs prlimit (util-linux)")
def test_normal_clients_are_served_among_1100_idle_connections(tmp_path: Path) -> None:
    if not raise_own_fd_limit(1100 + 50 + 256):
        pytest.skip("the test process cannot open 1,100 connections (hard RLIMIT_NOFILE)")
    daemon = LimitedDaemon(tmp_path, nofile=1024)
    daemon.write_seed("2026-01-05", "A normal article. Readers poll for it.")
    with daemon:
        idle = open_idle(daemon.port, 1100)
        try:
            with SlowSenders(daemon.port, 50).running():
                outcome = normal_requests(daemon.port, 100)
        finally:
            close_all(idle)
        assert outcome.failures == []
        assert len(outcome.latencies) == 100
        assert daemon.health()["status"] == "ok"


def test_port_in_use_is_one_line(daemon_factory: Callable[..., FeederDaemon]) -> None:
    d = daemon_factory()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", d.port))
        taken.listen()
        assert d.run_to_exit(timeout=30) != 0
    assert d.log_text() == (f"Error: cannot listen on 127.0.0.1:{d.port}: "
                            "address already in use\n")


def test_healthz_lists_the_first_50_rejections_and_counts_all(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    d = daemon_factory()
    names = [f"bad{i:03d}.txt" for i in range(200)]
    for name in names:
        (d.seeds / name).write_bytes(b"no header\x00 and a NUL byte")
    d.write_seed("2026-01-05", "A good one. Published.")
    d.start()
    health = d.wait_until(lambda: (h := d.health())["rejected_count"] == 200 and h,
                          what="200 rejections")
    assert [r["file"] for r in health["rejected"]] == names[:50]
    assert health["entries"] == 1
