"""Run ``python -m feeder run`` as a real subprocess on loopback: :class:`FeederDaemon`.

The one helper of every test that starts the daemon (``tests/e2e``, ``tests/test_faults.py``)
and of ``bench/websub_latency.py``. It starts the daemon on a free port with its seeds, output,
state and log under one folder, waits (polling, with a timeout) until ``/healthz`` reports the
first build, and stops it with SIGTERM, failing unless it exits 0 within 5 s. Every wait
fails early, with the log, if the daemon dies::

    with FeederDaemon(tmp_path, hubs=[hub.url], config={"websub": {"ping_backoff": 0.2}}) as d:
        d.write_seed("2026-01-05", "Hello world. More text.")
        d.wait_until(lambda: d.pinged_count(d.topic) > 0, what="a ping")

Tests get them from the ``daemon_factory`` fixture (``tests/conftest.py``), which stops every
one still running at the end.
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import feedparser
import httpx

from ._servers import http_get, wait_until

REPO = Path(__file__).resolve().parent.parent  # the worktree holding the feeder package
TAG = "TEST_FEEDER_DAEMON"  # in each daemon's environment: finds the processes it started
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0  # the daemon must exit 0 within this of SIGTERM
WAIT_TIMEOUT = 10.0
LOG_TAIL = 10_000  # characters of the log that a failure message quotes

T = TypeVar("T")


def seed_bytes(date: str, body: str) -> bytes:
    """A seed file's bytes: `` date YYYY-MM-DD`` and the body on the same line."""
    return f" date {date} {body}".encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def feeder_env() -> dict[str, str]:
    """This environment without ``FEEDER_*`` settings, importing feeder from this worktree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tagged_processes(entry: str) -> dict[int, int]:
    """Live processes whose environment holds ``entry`` (``NAME=value``): pid -> parent pid.
    Linux ``/proc``; zombies (and processes we may not look at) are left out."""
    found = {}
    needle = entry.encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        state, ppid = stat[stat.rindex(b")") + 2:].split()[:2]
        if needle in environ and state != b"Z":
            found[int(pid)] = int(ppid)
    return found


def _toml(config: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for section, table in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


class FeederDaemon:
    """One ``feeder run`` on fixed folders and a fixed port; it can be stopped and started
    again (its log, ``root/<name>.log``, is appended to).

    ``config`` is a TOML file, or a mapping of tables written to ``root/<name>.toml``;
    ``env`` adds variables to the daemon's environment.
    """

    def __init__(self, root: Path, *, name: str = "feeder", seeds: Path | None = None,
                 out: Path | None = None, state: Path | None = None,
                 config: Path | Mapping[str, Mapping[str, Any]] | None = None,
                 hubs: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.seeds = seeds or self.root / "seeds"
        self.out = out or self.root / "public"
        self.state = state or self.root / "state.sqlite3"
        self.log_path = self.root / f"{name}.log"
        self.seeds.mkdir(parents=True, exist_ok=True)
        if isinstance(config, Mapping):
            path = self.root / f"{name}.toml"
            path.write_text(_toml(config), encoding="utf-8")
            config = path
        self.config = config
        self.hubs = list(hubs)
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.topic = self.url("atom.xml")
        self.proc: subprocess.Popen[bytes] | None = None
        self.tag = secrets.token_hex(8)
        self._names = itertools.count(1)

    def __enter__(self) -> FeederDaemon:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- process ----------------------------------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "feeder", "run", "--seeds", str(self.seeds),
               "--out", str(self.out), "--state", str(self.state), "--port", str(self.port),
               "--base-url", self.base_url]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        for hub in self.hubs:
            cmd += ["--hub", hub]
        return cmd

    def env(self) -> dict[str, str]:
        """feeder_env() plus the ``env`` given (e.g. $NOTIFY_SOCKET)."""
        return {**feeder_env(), TAG: self.tag, **self.extra_env}

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for anything; stdout and stderr go to the log."""
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=self.env(), cwd=self.root)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT, *, wait: bool = True) -> FeederDaemon:
        """Spawn, then poll /healthz until it answers and reports the start-up build; on any
        failure the process is killed. With ``wait=False``, return at once: the test acts
        while the daemon starts (seeds written during start-up)."""
        assert not self.running, "already running"
        self.proc = self.spawn()
        if not wait:
            return self
        try:
            self.wait_until(self._built, timeout=timeout,
                            what=f"feeder run to answer /healthz on port {self.port} after a build")
        except BaseException:
            self.kill()
            raise
        return self

    def _built(self) -> bool:
        try:
            return bool(self.health().get("last_build"))
        except httpx.TransportError:
            return False

    def run_to_exit(self, timeout: float = START_TIMEOUT) -> int:
        """Run the command when it is expected to exit on its own (a refused start); return
        its exit status. Fails, killing it, if it still runs after ``timeout`` seconds."""
        assert not self.running, "already running"
        self.proc = self.spawn()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"feeder run still running after {timeout}s:\n"
                                 f"{self.log_tail()}") from None
        finally:
            self.kill()

    def signal(self, signum: int) -> None:
        assert self.proc is not None, "not started"
        self.proc.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM; fail unless it exits with 0 within ``timeout`` seconds (SIGKILL then).
        Also fails for a daemon that had already exited with another status."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)  # a no-op if it has exited
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"feeder run did not exit within {timeout}s of SIGTERM:\n"
                                 f"{self.log_tail()}") from None
        finally:
            self.kill()
        assert code == 0, f"feeder run exited with {code}:\n{self.log_tail()}"

    def kill(self) -> None:
        """SIGKILL (if still running) and reap."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def _check_alive(self) -> None:
        if not self.running:
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(f"feeder run is not running (exit status {code}):\n"
                                 f"{self.log_tail()}")

    def wait_until(self, predicate: Callable[[], T], *, timeout: float = WAIT_TIMEOUT,
                   interval: float = 0.02, what: str = "condition") -> T:
        """Poll ``predicate`` until it returns something true, and return that; fail with the
        log if the daemon exits first or ``timeout`` seconds pass."""
        def poll() -> T:
            result = predicate()
            if not result:
                self._check_alive()
            return result

        try:
            return wait_until(poll, timeout=timeout, interval=interval, what=what)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; feeder log:\n{self.log_tail()}") from None

    def processes(self) -> dict[int, int]:
        """The daemon and every process it started (the pool's fork server and workers, say)
        that is alive, even orphaned: pid -> parent pid. Zombies do not count."""
        return tagged_processes(f"{TAG}={self.tag}")

    def pool_processes(self) -> dict[int, int]:
        """:meth:`processes` once the daemon's worker pool runs (a process whose parent is one
        of them but not the daemon: a worker of the pool's fork server); else empty."""
        procs = self.processes()
        main = self.proc.pid if self.proc else None
        return procs if any(p in procs and p != main for p in procs.values()) else {}

    # -- observing --------------------------------------------------------------------------------
    def url(self, path: str = "") -> str:
        return self.base_url + path.lstrip("/")

    def get(self, path: str) -> httpx.Response:
        return http_get(self.url(path), timeout=5.0)

    def health(self) -> dict[str, Any]:
        """The /healthz document, whatever its status (200 or 503)."""
        return self.get("healthz").json()

    def feed(self, path: str = "atom.xml") -> feedparser.FeedParserDict:
        """A feed, parsed; fails unless it is served (200) and well-formed."""
        response = self.get(path)
        assert response.status_code == 200, response.text
        parsed = feedparser.parse(response.content)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        return parsed

    def titles(self) -> set[str]:
        """The titles in the served feed.json (none while it is not served)."""
        response = self.get("feed.json")
        if response.status_code != 200:
            return set()
        return {item["title"] for item in json.loads(response.content)["items"]}

    def wait_for_entry(self, title: str, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until the served atom.xml holds ``title``."""
        def present() -> bool:
            response = self.get("atom.xml")
            return response.status_code == 200 and title.encode() in response.content

        self.wait_until(present, timeout=timeout, interval=0.05, what=f"{title!r} in atom.xml")

    def pending(self, topic: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.health()["pending_pings"] if topic is None or p["topic"] == topic]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = LOG_TAIL) -> str:
        return self.log_text()[-chars:]

    def log_lines(self, contains: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if contains in line]

    def wait_for_log(self, *needles: str, timeout: float = WAIT_TIMEOUT) -> str:
        """Wait until the log holds every one of ``needles``; return the log."""
        return self.wait_until(lambda: (log := self.log_text())
                               and all(n in log for n in needles) and log,
                               timeout=timeout, what=f"{needles} in the log")

    def pinged_count(self, topic: str, hub: str | None = None) -> int:
        """How many successful pings the daemon logged for ``topic`` (at ``hub``, or any)."""
        needle = f"pinged {hub} for {topic}" if hub else "pinged "
        return sum(1 for line in self.log_lines(needle) if line.endswith(f" for {topic}"))

    # -- seeds ------------------------------------------------------------------------------------
    def write_seed(self, date: str, body: str, name: str | None = None) -> Path:
        """Write (open, write, close) one seed; returns its path."""
        if name is None:
            name = f"{next(self._names):03d}_{secrets.token_hex(8)}.txt"
        path = self.seeds / name
        path.write_bytes(seed_bytes(date, body))
        return path


def children_running(parent: int, marker: bytes) -> set[int]:
    """The pids of ``parent``'s live children whose command line holds ``marker``."""
    found = set()
    for task in os.listdir(f"/proc/{parent}/task"):
        try:
            with open(f"/proc/{parent}/task/{task}/children") as fh:
                children = [int(c) for c in fh.read().split()]
        except OSError:
            continue
        for pid in children:
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker in fh.read():  # (a child that exited since: no cmdline to read)
                    found.add(pid)
    return found
