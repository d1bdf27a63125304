"""Run ``python -m feeder run`` as a subprocess on loopback, for the WebSub tests and bench.

A small helper of the WebSub tests' own (not a conftest fixture), so that it can also be
imported by path from ``bench/websub_latency.py``::

    with FeederDaemon(tmp_path, hubs=[hub.url], config={"websub": {"ping_backoff": 0.2}}) as d:
        d.write_seed("2026-01-05", "Hello world. More text.")
        d.wait_until(lambda: d.pinged_count(d.topic) > 0, what="a ping")
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]  # the worktree holding the feeder package
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


def seed_bytes(date: str, body: str) -> bytes:
    """A seed file's bytes: `` date YYYY-MM-DD`` and the body on the same line."""
    return f" date {date} {body}".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml(config: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for section, table in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


class FeederDaemon:
    """``feeder run`` on a free loopback port, with its seeds, output and state under ``root``."""

    def __init__(self, root: Path, *, hubs: list[str] = (),  # type: ignore[assignment]
                 config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.root = Path(root)
        self.seeds = self.root / "seeds"
        self.out = self.root / "public"
        self.state = self.root / "state.sqlite3"
        self.log_path = self.root / "feeder.log"
        self.config_path = self.root / "feeder.toml"
        self.hubs = list(hubs)
        self.seeds.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(_toml(config or {}))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.topic = self.base_url + "atom.xml"
        self._proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    def __enter__(self) -> FeederDaemon:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- process ----------------------------------------------------------------------------------
    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the daemon; return once /healthz reports a finished first build."""
        cmd = [sys.executable, "-m", "feeder", "run", "--config", str(self.config_path),
               "--seeds", str(self.seeds), "--out", str(self.out), "--state", str(self.state),
               "--port", str(self.port), "--base-url", self.base_url]
        for hub in self.hubs:
            cmd += ["--hub", hub]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=log, env=env,
                                          cwd=self.root)
        try:
            self.wait_until(lambda: self._health_or_none() is not None
                            and bool(self.health()["last_build"]),
                            timeout=timeout, what="feeder run to answer /healthz after a build")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = _STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``; the exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"feeder run ignored SIGTERM:\n{self.log_text()}") from None

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise AssertionError(f"feeder run exited ({code}):\n{self.log_text()}")

    # -- observing --------------------------------------------------------------------------------
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self, contains: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if contains in line]

    def pinged_count(self, topic: str, hub: str | None = None) -> int:
        """How many successful pings the daemon logged for ``topic`` (at ``hub``, or any)."""
        needle = f"pinged {hub} for {topic}" if hub else "pinged "
        return sum(1 for line in self.log_lines(needle) if line.endswith(f" for {topic}"))

    def health(self) -> dict[str, Any]:
        response = httpx.get(self.base_url + "healthz", timeout=5)
        return response.json()

    def _health_or_none(self) -> dict[str, Any] | None:
        self._check_alive()
        with contextlib.suppress(httpx.TransportError):
            return self.health()
        return None

    def pending(self, topic: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.health()["pending_pings"] if topic is None or p["topic"] == topic]

    def wait_until(self, predicate: Callable[[], object], *, timeout: float = 15.0,
                   interval: float = 0.02, what: str = "condition") -> None:
        """Poll ``predicate`` (and that the daemon lives) until true, or fail with its log."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"feeder log:\n{self.log_text()}")
            time.sleep(interval)

    # -- seeds ------------------------------------------------------------------------------------
    def write_seed(self, date: str, body: str, name: str | None = None) -> Path:
        """Write (open, write, close) one seed; returns its path."""
        if name is None:
            name = f"{next(self._names):03d}_{secrets.token_hex(8)}.txt"
        path = self.seeds / name
        path.write_bytes(seed_bytes(date, body))
        return path
