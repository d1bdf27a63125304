"""Run ``python -m feeder run`` as a real subprocess on temp folders (datasette-style).

:class:`DaemonProcess` starts the daemon on a free loopback port, waits until ``/healthz``
answers, and stops it with SIGTERM, failing the test unless it exits 0 within 5 s. Its
stderr (the log) goes to a file that tests read with :meth:`DaemonProcess.log_text`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .subscriber import Subscriber
from .websub_hub import Hub, run_hub

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 5.0
START_TIMEOUT = 20.0


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true, and return that; raise
    TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        pause.wait(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DaemonProcess:
    """One ``feeder run`` on fixed folders; can be stopped and started again."""

    def __init__(self, root: Path, *, seeds: Path | None = None, out: Path | None = None,
                 state: Path | None = None, config: Path | None = None,
                 name: str = "daemon") -> None:
        self.seeds = seeds or root / "seeds"
        self.out = out or root / "out"
        self.state = state or root / "state.sqlite3"
        self.config = config
        self.log_path = root / f"{name}.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None
        self.seeds.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "feeder", "run", "--seeds", str(self.seeds),
               "--out", str(self.out), "--state", str(self.state), "--port", str(self.port),
               "--base-url", self.base_url]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDER_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env

    def spawn(self) -> subprocess.Popen:
        """Start the process without waiting for it (its log is appended to)."""
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log, env=self.env(),
                                    cwd=self.seeds.parent)

    def start(self, timeout: float = START_TIMEOUT) -> DaemonProcess:
        """Spawn, then poll /healthz until it answers and reports its first build."""
        assert self.proc is None, "already running"
        self.proc = self.spawn()
        with httpx.Client(timeout=1.0) as client:
            def ready() -> bool:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"feeder run exited with {self.proc.returncode} during "
                                       f"start-up:\n{self.log_text()}")
                try:
                    body = client.get(self.url("healthz")).json()
                except httpx.TransportError:
                    return False
                return bool(body.get("last_build"))  # the start-up build is done

            wait_until(ready, timeout, what=f"feeder run to answer on port {self.port}")
        return self

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM; fail unless it exits with 0 within ``timeout`` seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"feeder run did not exit within {timeout}s of SIGTERM:\n"
                        f"{self.log_text()[-3000:]}")
        assert code == 0, f"feeder run exited with {code}:\n{self.log_text()[-3000:]}"

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()

    def url(self, path: str = "") -> str:
        return self.base_url + path.lstrip("/")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Make DaemonProcess objects (not started); every one still running at the end is
    stopped with SIGTERM and must exit 0 within 5 s."""
    made: list[DaemonProcess] = []

    def make(**kwargs: Any) -> DaemonProcess:
        kwargs.setdefault("name", f"daemon{len(made)}")
        d = DaemonProcess(tmp_path, **kwargs)
        made.append(d)
        return d

    yield make
    try:
        for d in made:
            d.stop()
    finally:
        for d in made:
            d.kill()


@pytest.fixture
def daemon(daemon_factory: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A started daemon on empty folders under tmp_path."""
    return daemon_factory().start()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with run_hub(tmp_path) as hub:
        yield hub


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    with Subscriber() as sub:
        yield sub
