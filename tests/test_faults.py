"""Issue 6: faults around the pipeline — a killed build, an unwritable output folder, hubs that
refuse, hang or fail, a lost or corrupted state file, two daemons on one state file.

Every test here runs real ``python -m feeder`` processes on loopback and waits on conditions
with timeouts, never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from ._daemon import FeederDaemon, feeder_env, free_port
from ._servers import hanging_hub, wait_until

pytestmark = pytest.mark.slow

ATOM = "{http://www.w3.org/2005/Atom}"


def _seed(date: str, text: str) -> bytes:
    return f"date {date}\n\n{text}\n".encode()


def _check_outputs_complete(out: Path) -> list[str]:
    """Every non-hidden output file is complete; returns the hidden (temp) files found."""
    temps = []
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        rel = str(path.relative_to(out))
        if path.name.startswith("."):
            temps.append(rel)
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)  # a truncated gzip raises
            path = path.with_suffix("")
        if path.suffix == ".xml":
            etree.fromstring(data)
            assert feedparser.parse(data).bozo == 0, rel
        elif path.suffix == ".json":
            json.loads(data)
        elif path.suffix == ".html":
            assert data.rstrip().endswith(b"</html>"), rel
    return temps


def _rows(state: Path, table: str) -> int:
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


# -- kill -9 during a cold build --------------------------------------------------------------

SEEDS = 3000


def test_kill_9_during_cold_build_leaves_only_complete_outputs(tmp_path: Path) -> None:
    seeds, out, state = tmp_path / "seeds", tmp_path / "public", tmp_path / "state.sqlite3"
    seeds.mkdir()
    import datetime as dt
    first = dt.date(2015, 1, 1)
    for i in range(SEEDS):
        day = first + dt.timedelta(days=i)
        (seeds / f"{i:05d}.txt").write_bytes(
            _seed(day.isoformat(), f"Article {i:05d} of the archive. " + "Body text. " * 40))
    args = [sys.executable, "-m", "feeder", "build", "--seeds", str(seeds), "--out", str(out),
            "--state", str(state), "--base-url", "http://127.0.0.1:8080/"]

    def kill_when(condition: Callable[[], bool], what: str) -> None:
        with open(tmp_path / "build.log", "ab") as log:
            proc = subprocess.Popen(args, env=feeder_env(), stdout=log, stderr=log,
                                    start_new_session=True)
        try:
            wait_until(lambda: condition() or proc.poll() is not None, timeout=30,
                       interval=0.005, what=what)
            assert proc.poll() is None, "the build ended before the kill"
        finally:
            # SIGKILL the build and its worker processes (its own session: only ours)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        temps = _check_outputs_complete(out)
        assert all(t.endswith(".tmp") for t in temps), temps

    # 1. killed while reading seeds: some batches are committed, nothing rendered yet
    kill_when(lambda: _rows(state, "seeds") > 0, "the store to get its first rows")
    assert 0 < _rows(state, "seeds") < SEEDS
    # 2. killed again while writing entry pages
    kill_when(lambda: len(os.listdir(out / "entries")) > 50 if (out / "entries").exists()
              else False, "entry pages to appear")
    # 3. a build to the end
    done = subprocess.run(args, env=feeder_env(), capture_output=True, text=True, timeout=90,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert _rows(state, "seeds") == SEEDS and _rows(state, "entries") == SEEDS
    assert _check_outputs_complete(out) == [], "temp files left after a complete build"
    assert len(list((out / "entries").glob("*.html"))) == SEEDS
    feed = feedparser.parse((out / "atom.xml").read_bytes())
    newest = [f"Article {i:05d} of the archive" for i in range(SEEDS - 1, SEEDS - 51, -1)]
    assert [e.title for e in feed.entries] == newest
    rss = feedparser.parse((out / "rss.xml").read_bytes())
    assert [e.title for e in rss.entries] == newest
    items = json.loads((out / "feed.json").read_bytes())["items"]
    assert [i["title"] for i in items] == newest
    assert len(list((out / "archive").glob("atom-*.xml"))) == -(-(SEEDS - 50) // 50)


# -- kill -9 during a big pass: the pool must die with the daemon ----------------------------

@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="no process pool on one core")
def test_kill_9_mid_pass_leaves_no_process_of_the_pool(tmp_path: Path) -> None:
    """The pool's fork server and workers take ~110 MB each: after a SIGKILL of the daemon
    alone (not of its process group), in the middle of a big pass, none may live on."""
    daemon = FeederDaemon(tmp_path)
    for i in range(SEEDS):
        (daemon.seeds / f"{i:05d}.txt").write_bytes(
            _seed(f"2020-01-{i % 28 + 1:02d}", f"Article {i:05d}. " + "Body text. " * 40))
    daemon.proc = daemon.spawn()  # not start(): that waits for the first pass to end
    try:
        procs = daemon.wait_until(daemon.pool_processes, timeout=60, interval=0.01,
                                  what="pool workers")
        daemon.kill()
        wait_until(lambda: not daemon.processes(), timeout=5, interval=0.05,
                   what=f"no process of the pool {sorted(procs)} after kill -9")
    finally:
        daemon.kill()
        for pid in daemon.processes():  # do not leave orphans behind a failure
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- an output folder that cannot be written -------------------------------------------------

def test_unwritable_output_keeps_serving_and_recovers(
        tmp_path: Path, daemon_factory: Callable[..., FeederDaemon]) -> None:
    d = daemon_factory()
    (d.seeds / "001_first.txt").write_bytes(_seed("2025-01-01", "First article. Text."))
    d.start()
    d.wait_for_entry("First article")
    old_atom = d.get("atom.xml").content
    # entries/ becomes a plain file: writing any entry page fails (also as root)
    entries = d.out / "entries"
    shutil.move(entries, tmp_path / "entries.saved")
    entries.write_bytes(b"not a folder")
    (d.seeds / "002_second.txt").write_bytes(_seed("2025-01-02", "Second article. Text."))

    d.wait_until(lambda: d.get("healthz").status_code != 200, timeout=10, interval=0.05,
                 what="/healthz to report the failure")
    response = d.get("healthz")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "error"
    assert "entries" in body["error"] and body["last_build"]["ok"] is False
    assert d.get("atom.xml").content == old_atom  # the old feeds stay served
    assert d.get("rss.xml").status_code == 200 and d.get("feed.json").status_code == 200
    assert d.running
    # the cause goes away: the retried rebuild publishes the new seed, with its page
    entries.unlink()
    shutil.move(tmp_path / "entries.saved", entries)
    d.wait_until(lambda: d.get("healthz").status_code == 200, timeout=15, interval=0.1,
                 what="/healthz to recover")
    d.wait_for_entry("Second article")
    for e in d.feed().entries:
        assert d.get(e.link.removeprefix(d.base_url)).status_code == 200, e.link
    assert "rebuild failed; retrying" in d.log_text()


# -- hubs that refuse, hang or fail ----------------------------------------------------------

class _Hub500(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"hub is broken"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@contextmanager
def _failing_hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub500)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fail"
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def test_broken_hubs_never_stop_serving_or_rebuilding(
        tmp_path: Path, daemon_factory: Callable[..., FeederDaemon]) -> None:
    refused = f"http://127.0.0.1:{free_port()}/refused"
    with hanging_hub() as (hang, _), _failing_hub() as fail:
        config = tmp_path / "feeder.toml"
        config.write_text(
            "[websub]\n"
            f"hubs = [{json.dumps(refused)}, {json.dumps(hang)}, {json.dumps(fail)}]\n"
            "ping_timeout = 1\nping_backoff = 0.5\n")
        d = daemon_factory(config=config)
        (d.seeds / "001_first.txt").write_bytes(_seed("2025-01-01", "First article. Text."))
        d.start()
        d.wait_for_entry("First article")

        def every_hub_failed() -> bool:
            hubs = d.health()["hubs"]
            return all(hubs.get(h) and hubs[h]["ok"] is False for h in (refused, hang, fail))
        d.wait_until(every_hub_failed, timeout=20, interval=0.1, what="a result from each hub")
        # while the pinger struggles, a new seed is still published promptly
        t0 = time.monotonic()
        (d.seeds / "002_second.txt").write_bytes(_seed("2025-01-02", "Second article. Text."))
        d.wait_for_entry("Second article", timeout=5)
        assert time.monotonic() - t0 < 5
        response = d.get("healthz")
        body = response.json()
        assert response.status_code == 200 and body["status"] == "ok"  # not a build failure
        hubs = body["hubs"]
        assert "ConnectError" in hubs[refused]["detail"]
        assert hubs[hang]["detail"] == "timed out"
        assert hubs[fail]["detail"] == "HTTP 500 hub is broken"

        # The second build queued the atom feed anew (attempt count 0, due at once); each
        # hub then fails that change too.
        def the_new_change_failed_at_every_hub() -> bool:
            body = d.health()
            pending = {(p["hub"], p["topic"]): p for p in body["pending_pings"]}
            return all(
                (p := pending.get((hub, d.topic))) is not None
                and p["attempts"] >= 1 and p["last_error"] == body["hubs"][hub]["detail"]
                for hub in (refused, hang, fail))
        d.wait_until(the_new_change_failed_at_every_hub, timeout=20, interval=0.1,
                     what="a failed try of the new change at each hub")
        d.stop()


# -- the state file: lost, corrupted, shared ----------------------------------------------------

def test_state_file_lost_or_corrupted_is_rebuilt_with_the_same_ids(
        tmp_path: Path, daemon_factory: Callable[..., FeederDaemon]) -> None:
    d = daemon_factory()
    for i in range(5):
        (d.seeds / f"{i:03d}_x.txt").write_bytes(
            _seed(f"2025-01-0{i + 1}", f"Article {i}. Text."))
    d.start()
    d.wait_for_entry("Article 4")
    before = [(e.id, e.title, e.published) for e in d.feed().entries]
    # a second daemon on the same state file refuses to start, clearly
    other = daemon_factory(tmp_path / "other", state=d.state, name="second")
    proc = subprocess.run(other.command(), env=other.env(), capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode != 0
    assert f"in use by another feeder process (pid {d.proc.pid})" in proc.stderr
    # and so does a build, also once the lock file of feeder 0.1 is deleted: the lock is on
    # the state file itself
    Path(f"{d.state}.lock").unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "feeder", "build", "--seeds", str(d.seeds), "--out",
         str(tmp_path / "other-out"), "--state", str(d.state)],
        env=feeder_env(), capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1 and not (tmp_path / "other-out").exists()
    assert proc.stderr.strip().splitlines() == [
        f"Error: state file {d.state}: in use by another feeder process (pid {d.proc.pid});"
        " stop it first or use another --state file"]
    assert d.get("atom.xml").status_code == 200 and d.running
    d.stop()

    d.state.unlink()  # deleted while stopped
    d.start()
    d.wait_for_entry("Article 4")
    d.wait_until(lambda: d.health()["entries"] == 5, timeout=10, what="five entries")
    assert [(e.id, e.title, e.published) for e in d.feed().entries] == before
    d.stop()

    d.state.write_bytes(b"this is not an SQLite database\n" * 200)  # corrupted while stopped
    d.start()
    d.wait_for_entry("Article 4")
    d.wait_until(lambda: d.health()["entries"] == 5, timeout=10, what="five entries")
    assert [(e.id, e.title, e.published) for e in d.feed().entries] == before
    d.stop()
    aside = list(tmp_path.glob("state.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not an SQLite")
    assert (f"state file {d.state} is corrupt (file is not a database): moved it aside"
            in d.log_text())


def test_scheduler_shutdown_while_a_job_reschedules_itself() -> None:
    """APScheduler's shutdown(wait=True) holds its job-store lock while joining the running
    job; a ping job that then schedules its next run used to deadlock the daemon's SIGTERM."""
    from apscheduler.schedulers.base import STATE_STOPPED

    from feeder.scheduler import Scheduler

    started, release = threading.Event(), threading.Event()

    def ping() -> float:
        started.set()
        release.wait(10)
        return time.time() + 60

    sched = Scheduler(lambda names: None, ping)
    sched.start()
    sched.ping_soon()
    assert started.wait(10)
    stopper = threading.Thread(target=sched.shutdown, daemon=True)
    stopper.start()
    wait_until(lambda: sched._aps.state == STATE_STOPPED, timeout=5, what="shutdown to begin")
    release.set()
    stopper.join(10)
    assert not stopper.is_alive(), "Scheduler.shutdown deadlocked"
