"""A real WebSub hub (Flask-WebSub) on loopback, for end-to-end tests.

The hub runs as two subprocesses, the way Flask-WebSub is deployed:

* ``web``: the Flask app with the hub endpoint at ``/hub`` (werkzeug's threaded
  server on 127.0.0.1). It answers 202 and queues a Celery task for every
  subscribe, unsubscribe and publish request.
* ``worker``: a Celery worker that runs those tasks: it verifies subscriber
  intent, fetches the topic and POSTs it, signed, to every callback.

They share kombu's filesystem broker and Flask-WebSub's SQLite store, both kept
in one state folder, so a hub stopped and started again keeps its
subscriptions. No Redis or other server is needed.

From a test::

    with run_hub(tmp_path) as hub:
        ...  # configure the publisher with hub.url
        hub.stop()  # pings now fail with "connection refused"
        hub.start()  # same port, same subscriptions

This file is also the script the subprocesses run (``python websub_hub.py web
STATE`` / ``worker STATE``); only the subprocesses import Flask and Celery.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

#: How often the worker looks for new messages in the filesystem broker. A
#: publish ping takes two broker hops (publish task, then one delivery task per
#: subscriber), so kombu's default of 1 s would add up to 2 s to each delivery.
POLL_INTERVAL = 0.02

#: Longest broker wait of the worker's loop between checks for a requested shutdown.
DRAIN_TIMEOUT = 0.1

#: Retry backoff for failed deliveries: Flask-WebSub waits
#: ``uniform(0, BACKOFF_BASE * 2**retries)`` seconds. Its default (8 s, for an
#: hour of retries) is too slow for tests.
BACKOFF_BASE = 0.2
MAX_ATTEMPTS = 10
SIGNATURE_ALGORITHM = "sha512"

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


class HubError(RuntimeError):
    """The hub subprocesses did not start or stop as expected."""


class Hub:
    """Handle on a Flask-WebSub hub whose state lives in ``state_dir``."""

    def __init__(self, state_dir: Path, *, signature_algorithm: str = SIGNATURE_ALGORITHM):
        self.state_dir = Path(state_dir).resolve()
        self.signature_algorithm = signature_algorithm
        self.port: int | None = None
        self._web: subprocess.Popen[bytes] | None = None
        self._worker: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The hub endpoint: where subscribers and publishers POST."""
        if self.port is None:
            raise HubError("the hub has not been started yet")
        return f"http://127.0.0.1:{self.port}/hub"

    @property
    def running(self) -> bool:
        return self._web is not None or self._worker is not None

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start web server and worker; wait until both serve (first start picks a free port)."""
        if self.running:
            raise HubError("the hub is already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.state_dir / "web.port"
        ready_file = self.state_dir / "worker.ready"
        for stale in (port_file, ready_file):
            stale.unlink(missing_ok=True)
        # Both processes open the store at start-up and would race to switch it
        # to WAL mode ("database is locked"); the mode persists in the file.
        with contextlib.closing(sqlite3.connect(self.state_dir / "hub.sqlite")) as db:
            db.execute("pragma journal_mode=wal")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        common = [str(self.state_dir), "--signature-algorithm", self.signature_algorithm]
        try:
            self._worker = self._spawn(["worker", *common], "worker.log", env)
            self._web = self._spawn(["web", *common, "--port", str(self.port or 0)], "web.log", env)
            deadline = time.monotonic() + timeout
            self.port = int(self._wait_for_file(port_file, deadline))
            self._wait_for_file(ready_file, deadline)
            self._wait_for_connect(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Terminate both processes; kill whichever does not exit within ``timeout``."""
        procs = [p for p in (self._web, self._worker) if p is not None]
        self._web = self._worker = None
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_text(self) -> str:
        """Both processes' logs (delivery failures show only in the worker's)."""
        parts = []
        for name in ("web.log", "worker.log"):
            path = self.state_dir / name
            text = path.read_text(errors="replace") if path.exists() else "(none)\n"
            parts.append(f"===== {name} =====\n{text}")
        return "".join(parts)

    def subscriptions(self) -> list[tuple[str, str]]:
        """(topic, callback) pairs in the hub's store, to debug subscriptions."""
        path = self.state_dir / "hub.sqlite"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(path)) as db:
            return list(db.execute("select topic_url, callback_url from hub"))

    def wait_for_subscription(self, topic: str, callback: str, timeout: float = 10.0) -> None:
        """Poll the store until the worker has saved a subscription.

        The worker saves it just after the subscriber answered the challenge.
        Deliveries need no such wait: the worker runs tasks one at a time in
        queue order, so a later publish task sees the saved subscription.
        """
        deadline = time.monotonic() + timeout
        while (topic, callback) not in self.subscriptions():
            if time.monotonic() > deadline:
                raise HubError(f"no subscription {topic} -> {callback}:\n{self.log_text()}")
            time.sleep(0.01)

    def _spawn(
        self, args: list[str], log_name: str, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        with open(self.state_dir / log_name, "ab") as log:
            return subprocess.Popen(
                [sys.executable, __file__, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.state_dir,  # anything written relative to the cwd stays in tmp_path
            )

    def _check_alive(self) -> None:
        for name, proc in (("web", self._web), ("worker", self._worker)):
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise HubError(f"hub {name} process exited ({code}):\n{self.log_text()}")

    def _wait_for_file(self, path: Path, deadline: float) -> str:
        while True:
            with contextlib.suppress(FileNotFoundError):
                return path.read_text()
            self._check_alive()
            if time.monotonic() > deadline:
                raise HubError(f"hub not ready: no {path.name}:\n{self.log_text()}")
            time.sleep(0.01)

    def _wait_for_connect(self, deadline: float) -> None:
        assert self.port is not None
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise HubError(f"hub port {self.port} refuses:\n{self.log_text()}") from None
                time.sleep(0.01)


@contextlib.contextmanager
def run_hub(tmp_path: Path, **kwargs: str) -> Iterator[Hub]:
    """Start a hub with its state under ``tmp_path/websub-hub``; stop it on exit."""
    hub = Hub(Path(tmp_path) / "websub-hub", **kwargs)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


# --- what the subprocesses run ---------------------------------------------------------------


def _atomic_filesystem_transport():  # type: ignore[no-untyped-def]
    """kombu's filesystem transport; messages appear in the queue folder atomically.

    kombu writes each message in place (create, then lock and write) while the
    consumer moves files away without looking at the lock, so a fast-polling
    worker can take an empty file and fail with JSONDecodeError, losing the
    task. Writing under a name the consumer ignores and renaming fixes that.
    """
    from kombu.transport import filesystem
    from kombu.utils.json import dumps

    class AtomicChannel(filesystem.Channel):
        def _put(self, queue, payload, **kwargs):  # type: ignore[no-untyped-def]
            name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
            final = os.path.join(self.data_folder_out, name)
            # "name.msg.part" fails the consumer's `partition(".")[2] == queue + ".msg"` test.
            with open(final + ".part", "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(final + ".part", final)

    class Transport(filesystem.Transport):
        Channel = AtomicChannel

        def drain_events(self, connection, timeout=None):  # type: ignore[no-untyped-def]
            # Celery's sync loop drains for 2 s between checks for a requested
            # shutdown, so a warm shutdown (SIGTERM: finish the running task,
            # then exit) took ~4 s. Shorter drains make it take ~0.1 s.
            if timeout is not None and timeout > DRAIN_TIMEOUT:
                timeout = DRAIN_TIMEOUT
            return super().drain_events(connection, timeout=timeout)

    return Transport


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # kombu resolves "module:_AtomicFilesystemTransport" lazily, so only the
    # subprocesses import kombu.
    if name == "_AtomicFilesystemTransport":
        return _atomic_filesystem_transport()
    raise AttributeError(name)


def _make_hub(state_dir: Path, signature_algorithm: str):  # type: ignore[no-untyped-def]
    from celery import Celery
    from flask_websub.hub import Hub as WebSubHub
    from flask_websub.hub import SQLite3HubStorage

    broker_dir = state_dir / "broker"
    broker_dir.mkdir(exist_ok=True)
    processed_dir = state_dir / "broker-processed"
    processed_dir.mkdir(exist_ok=True)
    celery = Celery("websub_hub", broker="filesystem://")
    celery.conf.update(
        broker_transport=f"{__name__}:_AtomicFilesystemTransport",
        broker_transport_options={
            "data_folder_in": str(broker_dir),
            "data_folder_out": str(broker_dir),
            "store_processed": True,  # keep consumed messages in tmp_path, not in /tmp
            "processed_folder": str(processed_dir),
            "control_folder": str(state_dir / "broker-control"),  # default: ./control
            "polling_interval": POLL_INTERVAL,
        },
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,  # pidbox needs a fanout exchange; nobody uses it
        worker_send_task_events=False,
        worker_hijack_root_logger=True,
    )
    hub = WebSubHub(
        SQLite3HubStorage(str(state_dir / "hub.sqlite")),
        celery,
        BACKOFF_BASE=BACKOFF_BASE,
        MAX_ATTEMPTS=MAX_ATTEMPTS,
        SIGNATURE_ALGORITHM=signature_algorithm,
        REQUEST_TIMEOUT=3,
    )
    return celery, hub


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _run_web(state_dir: Path, port: int, signature_algorithm: str) -> None:
    from flask import Flask
    from werkzeug.serving import make_server

    _, hub = _make_hub(state_dir, signature_algorithm)
    app = Flask("websub_hub")
    app.config.update(
        PUBLISH_SUPPORTED=True,  # POST hub.mode=publish is what feeder sends
        HUB_MIN_LEASE_SECONDS=1,
    )
    app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))
    server = make_server("127.0.0.1", port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _write_atomically(state_dir / "web.port", str(server.server_port))
    print(f"hub endpoint: http://127.0.0.1:{server.server_port}/hub", flush=True)
    server.serve_forever()


def _run_worker(state_dir: Path, signature_algorithm: str) -> None:
    from celery.signals import worker_ready

    celery, _ = _make_hub(state_dir, signature_algorithm)

    @worker_ready.connect
    def _ready(**_: object) -> None:
        _write_atomically(state_dir / "worker.ready", "ready")

    # solo pool: tasks run one at a time in queue order, so a publish that a
    # test sends after its subscription was verified runs after the subscribe
    # task has stored that subscription.
    celery.worker_main(
        [
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname=websub-hub@%h",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["web", "worker"])
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--signature-algorithm",
        default=SIGNATURE_ALGORITHM,
        choices=["sha1", "sha256", "sha384", "sha512"],
    )
    args = parser.parse_args(argv)
    if args.role == "web":
        _run_web(args.state_dir, args.port, args.signature_algorithm)
    else:
        _run_worker(args.state_dir, args.signature_algorithm)


if __name__ == "__main__":
    main()
