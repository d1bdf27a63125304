"""``feeder run`` end to end: a real subprocess, real inotify events, the feed over HTTP."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import feedparser
import httpx
import pytest

from .._daemon import FeederDaemon, children_running
from .._daemon import seed_bytes as seed

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"


def entry_id(name: str) -> str:
    return f"tag:{HOST},2025:{Path(name).stem}"


def drop(folder: Path, name: str, data: bytes) -> None:
    """Write to a hidden temp name, then rename into place (an editor's atomic save)."""
    tmp = folder / f".{name}.swp"
    tmp.write_bytes(data)
    os.rename(tmp, folder / name)


def write_in_place(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def find(feed: feedparser.FeedParserDict, eid: str):
    return next((e for e in feed.entries if e.id == eid), None)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def reload_with(d: FeederDaemon, config: Path, text: str) -> None:
    """Rewrite the daemon's config file and send SIGHUP."""
    write_config(config, text)
    d.signal(signal.SIGHUP)


def test_publish_edit_delete_stop_and_restart(daemon_factory):
    d = daemon_factory().start()
    name, kept = "000_d53b54a01c1a6f6f.txt", "001_kept.txt"
    drop(d.seeds, name, b" date 2026-01-05 Hello world. This is a test article about feeds."
                        b"\n\nMore text here.")
    write_in_place(d.seeds / kept, seed("2026-01-04", "An older article. It stays."))

    entry = d.wait_until(lambda: find(d.feed(), entry_id(name)), what="the entry")
    assert entry.title.startswith("Hello world")
    assert entry.published_parsed[:3] == (2026, 1, 5)
    assert entry.updated == entry.published
    page = entry.link
    assert d.get(page.removeprefix(d.base_url)).status_code == 200
    d.wait_until(lambda: find(d.feed(), entry_id(kept)), what="the kept entry")

    write_in_place(d.seeds / name, seed("2026-01-05", "Hello world. Edited text, new words."))
    edited = d.wait_until(
        lambda: (e := find(d.feed(), entry_id(name))) and "Edited" in e.summary and e,
        what="the edit")
    assert edited.id == entry.id
    assert edited.updated != entry.updated
    assert edited.published == entry.published

    os.unlink(d.seeds / name)
    d.wait_until(lambda: find(d.feed(), entry_id(name)) is None, what="the removal")
    assert d.get(page.removeprefix(d.base_url)).status_code == 404

    d.stop()
    assert list(d.out.rglob("*.tmp")) == []
    later = "002_added_while_stopped.txt"
    write_in_place(d.seeds / later, seed("2026-01-06", "Written while feeder was down."))

    d.start()
    d.wait_until(lambda: find(d.feed(), entry_id(later)), what="the seed added while down")
    feed = d.feed()
    assert find(feed, entry_id(kept)) is not None
    assert find(feed, entry_id(name)) is None
    log = d.log_text()
    assert log.count(f"added {kept}") == 1, log
    assert log.count(f"added {later}") == 1, log


def test_seed_written_in_place_is_published(daemon):
    write_in_place(daemon.seeds / "plain.txt", seed("2026-02-01", "Plainly written. Body."))
    entry = daemon.wait_until(lambda: find(daemon.feed(), entry_id("plain.txt")),
                              what="the entry")
    assert entry.title.startswith("Plainly written")


def test_a_pass_is_served_at_once_whatever_revalidate_says(daemon_factory):
    """The server trusts a served version for ``revalidate`` seconds; the daemon's own
    writes must not wait for that (a hub pinged after the pass fetches the feed at once)."""
    d = daemon_factory(config={"serve": {"revalidate": 60}}).start()
    assert d.feed().entries == []  # atom.xml read and trusted for a minute
    d.write_seed("2026-01-05", "Served at once. Not a minute later.")
    d.wait_for_entry("Served at once")


def test_burst_of_1000_seeds_costs_few_rebuilds(daemon_factory, tmp_path):
    d = daemon_factory().start()
    staging = tmp_path / "staging"
    staging.mkdir()
    names = [f"{i:03d}_{i * 7919:016x}.txt" for i in range(1000)]
    for i, name in enumerate(names):
        (staging / name).write_bytes(seed(f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
                                          f"Article number {i}. Some text about feeds."))
    before = d.log_text().count("built in")
    for name in names:
        os.rename(staging / name, d.seeds / name)
    # last_build.entries is set after a build has published (entries counts the store)
    d.wait_until(lambda: d.health()["last_build"].get("entries") == 1000, timeout=60,
                 interval=0.1, what="1,000 entries")
    feed = d.get("feed.json").json()
    assert len(feed["items"]) == 50  # max_entries: the newest only
    rebuilds = d.log_text().count("built in") - before
    print(f"\nburst of 1000 seeds: {rebuilds} rebuilds")
    assert rebuilds < 50


def test_rejected_seed_is_logged_once_and_published_when_fixed(daemon_factory, tmp_path):
    config = write_config(tmp_path / "feeder.toml", "[daemon]\nrescan_interval = 1\n")
    d = daemon_factory(config=config).start()
    write_in_place(d.seeds / "bad.txt", b"No header here, just text.")
    write_in_place(d.seeds / "good.txt", seed("2026-01-05", "A good seed. Published."))
    d.wait_until(lambda: find(d.feed(), entry_id("good.txt")), what="the good seed")
    rejected = d.wait_until(lambda: d.health()["rejected"], what="the rejection")
    assert [r["file"] for r in rejected] == ["bad.txt"]
    assert "date" in rejected[0]["reason"]

    # let two rescans pass (each one updates last_build.time)
    seen = {d.health()["last_build"]["time"]}
    for _ in range(2):
        d.wait_until(lambda: d.health()["last_build"]["time"] not in seen, timeout=5,
                     what="a rescan")
        seen.add(d.health()["last_build"]["time"])
    log = d.log_text()
    assert log.count("rejected bad.txt") == 1, log
    line = next(ln for ln in log.splitlines() if "rejected bad.txt" in ln)
    assert "no 'date YYYY-MM-DD' header" in line

    write_in_place(d.seeds / "bad.txt", seed("2026-01-06", "Fixed now. It has a date."))
    d.wait_until(lambda: find(d.feed(), entry_id("bad.txt")), what="the fixed seed")
    assert d.health()["rejected"] == []


def test_slow_writer_is_never_published_half_written(daemon):
    path = daemon.seeds / "slow.txt"
    closed = threading.Event()

    def slow_writer() -> None:
        with open(path, "wb") as fh:
            fh.write(b" date 2026-01-05 Slowly written. FIRSTHALF of the text")
            fh.flush()
            threading.Event().wait(1.5)  # a slow writer, not synchronisation
            fh.write(b" and SECONDHALF of the text.")
        closed.set()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        polls = 0
        while not closed.is_set():
            entry = find(daemon.feed(), entry_id("slow.txt"))
            if entry is not None:
                assert "SECONDHALF" in entry.summary + entry.get("content", [{}])[0].get(
                    "value", ""), "published half-written"
            polls += 1
            closed.wait(0.02)
    finally:
        writer.join()
    assert polls > 10
    entry = daemon.wait_until(lambda: find(daemon.feed(), entry_id("slow.txt")),
                              what="the complete seed")
    text = entry.summary + entry.content[0].value
    assert "FIRSTHALF" in text and "SECONDHALF" in text


def test_future_dated_seeds_are_held_back(daemon):
    # The first seed pays for loading the language model (seconds): get that over with, so
    # that the 3 s below measure scheduling, not start-up.
    write_in_place(daemon.seeds / "now.txt", seed(
        "2026-01-05", "Published now. This is a test article about feeds, long enough to "
        "need the language identifier.\n\nMore text here."))
    daemon.wait_until(lambda: find(daemon.feed(), entry_id("now.txt")), what="the first seed")

    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    write_in_place(daemon.seeds / "far.txt",
                   seed(far.isoformat(timespec="seconds"), "Far ahead. Held back for days."))
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).replace(microsecond=0)
    write_in_place(daemon.seeds / "soon.txt",
                   seed(when.isoformat(), "From the near future. Held back until its time."))
    daemon.wait_for_log("scheduled soon.txt", "scheduled far.txt")
    feed = daemon.feed()
    checked = dt.datetime.now(dt.UTC)
    assert checked < when, "too slow to see the entry held back"
    assert find(feed, entry_id("soon.txt")) is None
    assert find(feed, entry_id("far.txt")) is None

    entry = daemon.wait_until(lambda: find(daemon.feed(), entry_id("soon.txt")), timeout=15,
                              what="the scheduled entry")
    assert dt.datetime.now(dt.UTC) >= when
    assert entry.published_parsed[:6] == when.timetuple()[:6]
    assert find(daemon.feed(), entry_id("far.txt")) is None

    check = subprocess.run(
        [sys.executable, "-m", "feeder", "check", "--seeds", str(daemon.seeds)],
        env=daemon.env(), capture_output=True, text=True, timeout=30, cwd=daemon.root)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "far.txt: scheduled" in check.stdout
    assert "soon.txt" not in check.stdout


def test_seeds_folder_removed_and_recreated(daemon_factory, tmp_path):
    config = write_config(tmp_path / "feeder.toml", "[daemon]\nrescan_interval = 1\n")
    d = daemon_factory(config=config).start()
    shutil.rmtree(d.seeds)
    body = d.wait_until(lambda: (h := d.health())["status"] == "error" and h, timeout=10,
                        what="/healthz to report the missing folder")
    assert str(d.seeds) in body["error"]
    assert d.get("healthz").status_code == 503
    assert d.running

    d.seeds.mkdir()
    write_in_place(d.seeds / "back.txt", seed("2026-01-05", "Back again. New seed."))
    d.wait_until(lambda: find(d.feed(), entry_id("back.txt")), timeout=15,
                 what="a seed in the re-created folder")
    d.wait_until(lambda: d.health()["status"] == "ok", what="/healthz to recover")
    write_in_place(d.seeds / "later.txt", seed("2026-01-06", "Later seed. Seen by the watcher."))
    d.wait_until(lambda: find(d.feed(), entry_id("later.txt")), timeout=5,
                 what="a later seed")


def test_second_daemon_on_the_same_state_file_refuses(daemon_factory, tmp_path):
    first = daemon_factory().start()
    second = daemon_factory(state=first.state, out=tmp_path / "out2")
    assert second.run_to_exit(timeout=30) != 0
    log = second.log_text()
    assert "in use by another feeder process" in log
    assert f"pid {first.proc.pid}" in log


def test_sighup_reloads_the_config(daemon_factory, tmp_path):
    config = write_config(tmp_path / "feeder.toml", '[feed]\ntitle = "First title"\n')
    d = daemon_factory(config=config).start()
    write_in_place(d.seeds / "a.txt", seed("2026-01-05", "Some article. Text."))
    d.wait_until(lambda: find(d.feed(), entry_id("a.txt")), what="the entry")
    assert d.feed().feed.title == "First title"
    reload_with(d, config, '[feed]\ntitle = "Second title"\n')
    d.wait_until(lambda: d.feed().feed.title == "Second title", what="the new title")
    assert "config reloaded" in d.log_text()


def test_sighup_with_a_bad_value_keeps_the_running_config(daemon_factory, tmp_path):
    config = write_config(tmp_path / "feeder.toml", '[feed]\ntitle = "First title"\n')
    d = daemon_factory(config=config).start()
    reload_with(d, config, '[feed]\ntitle = "Bad title"\n[daemon]\ndebounce = nan\n')
    [line] = d.wait_until(lambda: d.log_lines("config reload failed"), what="the refusal")
    assert f"'debounce' has value nan (from {config} [daemon])" in line
    assert "between 0 and 10" in line

    write_in_place(d.seeds / "a.txt", seed("2026-01-05", "After a bad reload. Published."))
    d.wait_until(lambda: find(d.feed(), entry_id("a.txt")), what="a seed after a bad reload")
    assert d.feed().feed.title == "First title"  # the running config, kept

    reload_with(d, config, '[feed]\ntitle = "Fixed title"\n[daemon]\ndebounce = 0.5\n')
    d.wait_until(lambda: d.feed().feed.title == "Fixed title", what="the fixed config")
    write_in_place(d.seeds / "b.txt", seed("2026-01-06", "After the fix. Published too."))
    d.wait_until(lambda: find(d.feed(), entry_id("b.txt")), what="a seed after the fix")
    log = d.log_text()
    assert "Traceback" not in log and log.count("config reload failed") == 1, log


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """Send ``signum`` to one thread of another process (Linux tgkill)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, signum) != 0:  # SYS_tgkill on x86_64
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="tgkill's syscall number is x86_64's")
def test_sigterm_handed_to_another_thread_stops_the_daemon(daemon_factory) -> None:
    """The kernel may give a process's signal to any of its threads. Python runs the handler
    in the main thread only, and a main thread blocked in a wait without a timeout never
    runs it: the daemon ignored SIGTERM (seen in loaded test runs)."""
    d = daemon_factory().start()
    threads = [int(t) for t in os.listdir(f"/proc/{d.proc.pid}/task") if int(t) != d.proc.pid]
    assert threads
    _tgkill(d.proc.pid, threads[-1], signal.SIGTERM)
    assert d.proc.wait(10) == 0
    d.wait_for_log("received SIGTERM")


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Pss:")) / 1024


def holds_language_model(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as fh:
        return any("langid-" in line for line in fh)


def test_idle_daemon_lets_go_of_what_passes_need(daemon_factory):
    """Issue 13: an idle daemon holds at most 80 MB (125 MB with py3langid's model loaded).
    The model is mapped for passes and let go of a few seconds after the last one."""
    d = daemon_factory().start()
    path = d.write_seed("2026-01-05", "Hello world. This is a test article about feeds.")
    d.wait_until(lambda: find(d.feed(), entry_id(path.name)), what="the seed in the feed")
    pid = d.proc.pid
    d.wait_until(lambda: not holds_language_model(pid) and pss_mb(pid) < 90, timeout=60,
                 what="an idle daemon under 90 MB PSS, with no language model")
    path = d.write_seed("2026-01-06", "Il comune ha aperto la nuova biblioteca vicino al fiume.")
    d.wait_until(lambda: find(d.feed(), entry_id(path.name)), what="a seed after idling")
    assert b'xml:lang="it"' in d.get("atom.xml").content  # the model, mapped again


def test_a_cold_build_is_made_in_a_child_process(daemon_factory):
    """A first build of a big folder (an empty store, ``POOL_THRESHOLD`` seeds or more)
    runs in a child process, whose fragmented heap goes when it exits; the next seed is
    published by the daemon itself."""
    from feeder.pool import POOL_THRESHOLD

    d = daemon_factory()
    for i in range(POOL_THRESHOLD):
        path = d.seeds / f"s{i:03d}.txt"
        path.write_bytes(seed(f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}", f"Article {i}. Text."))
        os.utime(path, (path.stat().st_mtime - 3600,) * 2)  # settled before the start
    d.start(wait=False)
    builders = set()

    def built() -> bool:
        builders.update(children_running(d.proc.pid, b"feeder.apart"))
        try:
            return d.health().get("last_build", {}).get("entries") == POOL_THRESHOLD
        except httpx.TransportError:  # not listening yet
            return False

    d.wait_until(built, timeout=180, interval=0.02, what="the first build")
    assert len(builders) == 1
    assert not children_running(d.proc.pid, b"feeder.apart")
    d.write_seed("2026-01-05", "After the cold build. Published by the daemon.")
    d.wait_for_entry("After the cold build")
    # the feeds are served before the pass's report reaches /healthz: poll for it
    d.wait_until(lambda: d.health()["last_build"]["entries"] == POOL_THRESHOLD + 1,
                 what="the daemon's own pass in /healthz")

