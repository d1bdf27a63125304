"""An operator's mistakes on a running daemon (issue 12, "nothing is ever lost"): a real
``feeder run`` subprocess, real files, real processes beside it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .._daemon import FeederDaemon, feeder_env
from ..test_faults import _check_outputs_complete

pytestmark = pytest.mark.slow


def feeder(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeder", *map(str, args)], cwd=cwd,
                          env=feeder_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)


def started(d: FeederDaemon, entries: int) -> FeederDaemon:
    """``d`` started, once the seeds written before have all become entries (one that had
    not settled at the first pass comes in a later one)."""
    d.start()
    d.wait_until(lambda: d.health()["last_build"].get("entries") == entries,
                 what=f"a pass that published {entries} entries")
    return d


def delete_state(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)


def stored_names(state: Path) -> set[str]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return {name for (name,) in db.execute("SELECT name FROM entries")}


def test_a_deleted_state_file_is_written_again_and_still_locks(
        daemon_factory: Callable[..., FeederDaemon], tmp_path: Path) -> None:
    """Deleted under a running daemon, the state file comes back at its path, with what
    the daemon learns afterwards; no second daemon or build can take the paths meanwhile."""
    d = daemon_factory()
    d.write_seed("2026-01-04", "Before. The first article.", name="before.txt")
    started(d, 1)
    delete_state(d.state)
    d.write_seed("2026-01-05", "After the state went. Still served.", name="after.txt")
    d.wait_for_entry("After the state went")
    d.wait_until(lambda: d.state.exists() and d.health()["status"] == "ok",
                 what="the state file written again, /healthz ok")
    d.wait_for_log("was deleted while running: written again")
    d.wait_until(lambda: stored_names(d.state) == {"before.txt", "after.txt"},
                 what="both entries in the state file at the path")

    delete_state(d.state)  # a second deletion: refused even before it is written again
    build = feeder("build", "--seeds", d.seeds, "--out", d.out, "--state", d.state,
                   cwd=tmp_path)
    assert build.returncode == 1
    assert f"in use by another feeder process (pid {d.proc.pid})" in build.stderr
    assert len(build.stderr.strip().splitlines()) == 1, build.stderr
    other_state = feeder("build", "--seeds", d.seeds, "--out", d.out, "--state",
                         tmp_path / "other.sqlite3", cwd=tmp_path)
    assert other_state.returncode == 1
    assert f"output folder {d.out}: in use by another feeder process (pid {d.proc.pid})" \
        in other_state.stderr
    d.wait_until(lambda: d.state.exists() and d.health()["status"] == "ok",
                 what="the state file written again")
    d.stop()
    d.start()
    assert stored_names(d.state) == {"before.txt", "after.txt"}
    assert "state was empty" not in d.log_text()


def test_a_state_file_deleted_just_before_a_stop_is_written_again(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    d = daemon_factory()
    d.write_seed("2026-01-04", "Before. The first article.", name="before.txt")
    started(d, 1)
    delete_state(d.state)
    d.stop()
    assert stored_names(d.state) == {"before.txt"}


def test_a_state_file_that_cannot_be_written_again_stops_no_publishing(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    """The restore fails (here a folder sits where its temp file goes): seeds are still
    published, and the next pass after the obstacle goes restores the file."""
    d = daemon_factory().start()
    blocker = Path(f"{d.state}.restoring")
    blocker.mkdir()
    delete_state(d.state)
    d.write_seed("2026-01-05", "Meanwhile. Still served.", name="meanwhile.txt")
    d.wait_for_entry("Meanwhile")
    d.wait_for_log("cannot be written again")
    assert d.get("healthz").status_code == 503
    blocker.rmdir()
    d.write_seed("2026-01-06", "Afterwards. Served too.", name="afterwards.txt")
    d.wait_for_entry("Afterwards")
    d.wait_until(lambda: d.state.exists() and d.health()["status"] == "ok",
                 what="the state file written again")
    assert stored_names(d.state) == {"meanwhile.txt", "afterwards.txt"}


def test_a_language_folder_made_a_plain_file_holds_back_no_main_feed(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    """``lang`` replaced by a plain file under a running daemon: new seeds still reach the
    main feeds, each in a pass of its own (not held back by a failed pass's backoff),
    /healthz names the file it cannot write, and once the file is gone a retry writes the
    language feeds and the daemon is healthy again."""
    d = daemon_factory().start()
    d.write_seed("2026-01-04", "First. The first article of the folder.", name="first.txt")
    d.wait_for_entry("First")
    lang = d.out / "lang"
    shutil.rmtree(lang)
    lang.write_text("in the way")
    d.write_seed("2026-01-05", "Second. Published while lang is a file.", name="second.txt")
    d.wait_for_entry("Second")
    d.wait_for_log("Not a directory")
    d.wait_until(lambda: "lang/" in (d.health()["error"] or ""), what="/healthz naming lang/")
    assert d.get("healthz").status_code == 503
    d.wait_for_log("trying again in")
    d.write_seed("2026-01-06", "Third. Also published while lang is a file.", name="third.txt")
    d.wait_for_entry("Third")
    assert not d.log_lines("rebuild failed"), d.log_tail()
    lang.unlink()
    d.wait_until(lambda: any(b"Second" in p.read_bytes() for p in lang.glob("*/atom.xml")),
                 timeout=60, what="the language feeds written by a retry")
    d.wait_until(lambda: d.health()["status"] == "ok", what="healthy again")


def test_feeder_check_beside_a_running_daemon(
        daemon_factory: Callable[..., FeederDaemon], tmp_path: Path) -> None:
    """`feeder check` reads the state a daemon holds (read-only: no lock, no write) and
    reports the mass deletion the daemon is holding."""
    d = daemon_factory()
    for i in range(12):
        d.write_seed(f"2026-01-{i + 1:02d}", f"Article {i}. Text.", name=f"{i:02d}.txt")
    started(d, 12)
    aside = tmp_path / "aside"
    d.seeds.rename(aside)
    d.seeds.mkdir()
    d.wait_until(lambda: d.health()["held_deletions"] == 12, what="the deletion held")
    check = feeder("check", "--seeds", d.seeds, "--out", d.out, "--state", d.state,
                   cwd=tmp_path)
    assert check.returncode == 1, check.stderr
    assert "12 of 12 entries have no seed" in check.stdout, check.stdout
    assert check.stderr == ""
    d.seeds.rmdir()
    aside.rename(d.seeds)
    d.wait_until(lambda: d.health()["status"] == "ok", what="the seeds back, /healthz ok")
    d.write_seed("2026-02-01", "After the check. Served.", name="later.txt")
    d.wait_for_entry("After the check")


# -- restarts, kill -9, folders moved ------------------------------------------------------------

def test_restart_while_seeds_are_being_written_loses_none(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    """Seeds keep arriving while the daemon stops and starts again: every one is served."""
    d = daemon_factory().start()
    written: list[str] = []
    done = threading.Event()

    def write() -> None:
        for i in range(300):
            d.write_seed("2026-01-05", f"Written {i:03d}. Body text.", name=f"w{i:03d}.txt")
            written.append(f"w{i:03d}")
            if done.wait(0.01):  # pacing: the writes span the restart
                return

    writer = threading.Thread(target=write, name="seed-writer")
    writer.start()
    try:
        d.wait_until(lambda: len(written) >= 20, what="the first seeds written")
        d.stop()
        stopped_at = len(written)
        d.start(wait=False)
        d.wait_until(lambda: len(written) >= stopped_at + 20, what="seeds written on")
        d.wait_until(d._built, what="the daemon up again")
    finally:
        done.set()
        writer.join()
    d.wait_until(lambda: d.health()["entries"] == len(written), timeout=60,
                 what=f"all {len(written)} seeds in the store")
    d.wait_until(lambda: all((d.out / "entries" / f"{stem}.html").is_file() for stem in written),
                 what="every entry page")
    assert _check_outputs_complete(d.out) == []


def test_seeds_folder_moved_away_and_back(
        daemon_factory: Callable[..., FeederDaemon], tmp_path: Path) -> None:
    """The site stays while the folder is away (no entry removed, no ping); back, it is
    followed again."""
    d = daemon_factory()
    for i in range(5):
        d.write_seed(f"2026-01-{i + 1:02d}", f"Article {i}. Text.", name=f"{i:02d}.txt")
    started(d, 5)
    before = {p: d.get(p).content for p in ("atom.xml", "feed.json", "entries/00.html")}
    aside = tmp_path / "aside"
    d.seeds.rename(aside)
    d.wait_until(lambda: str(d.seeds) in (d.health()["error"] or ""),
                 what="/healthz to name the missing folder")
    assert {p: d.get(p).content for p in before} == before
    assert d.health()["entries"] == 5
    aside.rename(d.seeds)
    d.write_seed("2026-02-01", "Back again. Served.", name="back.txt")
    d.wait_for_entry("Back again")
    d.wait_until(lambda: d.health()["status"] == "ok" and d.health()["entries"] == 6,
                 what="/healthz ok with six entries")


HUB = r"""
import http.server, sys, time
class Hub(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"] or 0)).decode()
        with open(sys.argv[1], "a") as log:
            log.write(f"{time.time()} {body}\n")
        self.send_response(202)
        self.end_headers()
    def log_message(self, *args):
        return None  # quiet: the test reads the pings from the log file, not stderr
server = http.server.HTTPServer(("127.0.0.1", 0), Hub)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def recording_hub(log: Path) -> Iterator[str]:
    """A hub in a process of its own that accepts every ping and logs its time and form."""
    proc = subprocess.Popen([sys.executable, "-c", HUB, str(log)], stdout=subprocess.PIPE,
                            text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def pings(log: Path) -> list[tuple[float, str]]:
    """(time, topic) of each ping the hub received."""
    from urllib.parse import parse_qs

    if not log.exists():
        return []
    lines = [line.split(" ", 1) for line in log.read_text().splitlines()]
    return [(float(t), parse_qs(form)["hub.topic"][0]) for t, form in lines]


def test_kill_9_mid_pass_then_restart_loses_no_ping(
        daemon_factory: Callable[..., FeederDaemon], tmp_path: Path) -> None:
    """kill -9 while a big pass writes: no empty or partial output, and after a restart
    every feed on disk has been announced since it was written (the outbox)."""
    log = tmp_path / "hub.log"
    with recording_hub(log) as hub:
        d = daemon_factory(hubs=[hub]).start()
        for i in range(400):
            d.write_seed(f"2025-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                         f"Article {i:03d}. " + "Body text. " * 40, name=f"a{i:03d}.txt")
        entries = d.out / "entries"
        d.wait_until(lambda: entries.is_dir() and len(os.listdir(entries)) > 20, timeout=60,
                     what="the pass to write entry pages")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        assert all(t.endswith(".tmp") for t in _check_outputs_complete(d.out))
        d.start()
        d.wait_until(lambda: (h := d.health())["last_build"].get("entries") == 400
                     and not h["pending_pings"],
                     timeout=120, what="a pass that published all entries, no ping pending")
        assert _check_outputs_complete(d.out) == []
        for feed in ("atom.xml", "rss.xml", "feed.json"):
            written = (d.out / feed).stat().st_mtime
            announced = [t for t, topic in pings(log) if topic == d.url(feed)]
            assert announced and max(announced) >= written, (feed, announced, written)


# -- the state file --------------------------------------------------------------------------------

def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_state_file_set_to_a_newer_schema_is_refused_and_kept(
        daemon_factory: Callable[..., FeederDaemon], tmp_path: Path) -> None:
    """user_version = 99 written into the state file of a running daemon: it runs on; its
    next start is refused in one line, and the file keeps its bytes."""
    d = daemon_factory()
    d.write_seed("2026-01-04", "Kept. The first article.", name="kept.txt")
    started(d, 1)
    db = sqlite3.connect(d.state)  # as `sqlite3 STATE "PRAGMA user_version = 99"` does
    db.execute("PRAGMA user_version = 99")
    db.close()
    d.write_seed("2026-01-05", "While it runs. Served.", name="runs.txt")
    d.wait_for_entry("While it runs")
    d.stop()
    before = digest(d.state)
    assert d.run_to_exit(timeout=60) == 1
    refusal = d.log_lines("schema version 99")
    assert len(refusal) == 1 and str(d.state) in refusal[0], d.log_tail()
    check = feeder("check", "--seeds", d.seeds, "--out", d.out, "--state", d.state,
                   cwd=tmp_path)
    assert check.returncode == 1 and "schema version 99" in check.stderr
    assert digest(d.state) == before
    assert not list(tmp_path.glob("state.sqlite3.corrupt-*"))


def test_a_state_file_made_read_only_under_a_running_daemon(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    """chmod a-w on the state file of a daemon running as a user: the descriptors it has
    keep working, a new open cannot write. Tests run as root, which ignores modes, so a
    read-only bind mount of the file over itself plays the part. The daemon runs on; its
    restart is refused in one line naming the cause, the file kept; made writable again,
    nothing is missing."""
    d = daemon_factory()
    d.write_seed("2026-01-04", "First. The first article.", name="a.txt")
    started(d, 1)
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(d.state), str(d.state)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"no read-only bind mount here: {mounted.stderr.strip()}")
    try:
        d.write_seed("2026-01-05", "While read-only. Served.", name="b.txt")
        d.wait_for_entry("While read-only")
        d.stop()
        before = digest(d.state)
        assert d.run_to_exit(timeout=60) == 1
        (line,) = d.log_lines("Error: ")
        assert str(d.state) in line and "Read-only file system" in line
        assert digest(d.state) == before
    finally:
        subprocess.run(["umount", str(d.state)], check=True)
    d.start()
    assert d.health()["entries"] == 2


def test_output_and_state_deleted_together(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    """rm -rf of the output folder and the state file at once: both come back, with the
    same ids, and a restart needs no recovery."""
    d = daemon_factory()
    for i in range(5):
        d.write_seed(f"2026-01-{i + 1:02d}", f"Article {i}. Text.", name=f"{i:02d}.txt")
    started(d, 5)
    ids = sorted(e["id"] for e in json.loads(d.get("feed.json").content)["items"])
    files = sorted(str(p.relative_to(d.out)) for p in d.out.rglob("*") if p.is_file())
    shutil.rmtree(d.out)
    delete_state(d.state)
    d.wait_until(lambda: d.state.exists() and d.health()["status"] == "ok"
                 and all((d.out / f).exists() for f in files), timeout=30,
                 what="the state file and every output back, /healthz ok")
    assert _check_outputs_complete(d.out) == []
    d.stop()
    d.start()
    assert sorted(e["id"] for e in json.loads(d.get("feed.json").content)["items"]) == ids
    assert "state was empty" not in d.log_text()
