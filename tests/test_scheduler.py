"""The Scheduler's coalescing with a real APScheduler (no mocks; events for sync)."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Callable

import pytest

import feeder.scheduler
from feeder.scheduler import Scheduler

TIMEOUT = 5.0
QUIET = 0.5


class Recorder:
    """A rebuild callable that records its arguments; optionally blocks or fails."""

    def __init__(self) -> None:
        self.calls: queue.Queue[set[str] | None] = queue.Queue()
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_times = 0
        self.after: Callable[[], object] | None = None  # run at the end, like the daemon's

    def __call__(self, names: set[str] | None) -> None:
        self.started.set()
        self.calls.put(None if names is None else set(names))
        assert self.release.wait(TIMEOUT)
        if self.after is not None:
            self.after()
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("disk full (test)")

    def next(self) -> set[str] | None:
        return self.calls.get(timeout=TIMEOUT)

    def none_within(self, timeout: float = QUIET) -> bool:
        try:
            self.calls.get(timeout=timeout)
        except queue.Empty:
            return True
        return False


@pytest.fixture
def make_scheduler():
    made: list[Scheduler] = []

    def make(rebuild: Recorder, debounce: float = 0.2) -> Scheduler:
        s = Scheduler(rebuild, lambda: None, debounce=debounce, rescan_interval=3600)
        s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        if s._aps.running:
            s.shutdown()


def test_notifications_within_the_debounce_make_one_rebuild(make_scheduler):
    rebuild = Recorder()
    s = make_scheduler(rebuild, debounce=0.3)
    for i in range(100):
        s.notify({f"{i}.txt"})
    assert rebuild.next() == {f"{i}.txt" for i in range(100)}
    assert rebuild.none_within()
    assert s.builds == 1


def test_notify_during_a_rebuild_makes_exactly_one_follow_up(make_scheduler):
    rebuild = Recorder()
    rebuild.release.clear()
    s = make_scheduler(rebuild, debounce=0.05)
    s.notify({"a.txt"})
    assert rebuild.next() == {"a.txt"}
    for name in ("b.txt", "c.txt", "d.txt"):
        s.notify({name})
    rebuild.release.set()
    assert rebuild.next() == {"b.txt", "c.txt", "d.txt"}
    assert rebuild.none_within()


def test_failed_rebuild_keeps_its_names_and_retries(make_scheduler, monkeypatch):
    monkeypatch.setattr(feeder.scheduler, "RETRY_AFTER_FAILURE", 0.05)
    rebuild = Recorder()
    rebuild.fail_times = 1
    s = make_scheduler(rebuild, debounce=0.05)
    s.notify({"a.txt"})
    assert rebuild.next() == {"a.txt"}
    assert rebuild.next() == {"a.txt"}  # the retry
    assert rebuild.none_within()


def test_failed_rebuild_retries_together_with_newer_names(make_scheduler, monkeypatch):
    monkeypatch.setattr(feeder.scheduler, "RETRY_AFTER_FAILURE", 0.05)
    rebuild = Recorder()
    rebuild.fail_times = 1
    rebuild.release.clear()
    s = make_scheduler(rebuild, debounce=0.05)
    s.notify({"a.txt"})
    assert rebuild.next() == {"a.txt"}
    s.notify({"b.txt"})
    rebuild.release.set()
    assert rebuild.next() == {"a.txt", "b.txt"}
    assert rebuild.none_within()


def test_full_rescan_wins_over_names(make_scheduler):
    rebuild = Recorder()
    s = make_scheduler(rebuild, debounce=0.2)
    s.notify({"a.txt"})
    s.notify(None)
    s.notify({"b.txt"})
    assert rebuild.next() is None
    assert rebuild.none_within()


def test_back_to_back_rebuilds_are_never_lost(make_scheduler):
    """With no debounce the follow-up job is due while the previous run is still finishing;
    it must run anyway (APScheduler skips a job whose previous instance still counts)."""
    rebuild = Recorder()
    s = make_scheduler(rebuild, debounce=0.0)
    for i in range(200):
        rebuild.started.clear()
        rebuild.release.clear()
        s.notify({f"{i}.txt"})
        assert rebuild.started.wait(TIMEOUT), f"rebuild {i} never ran"
        s.notify({f"again-{i}.txt"})  # arrives while rebuild i runs: needs a follow-up
        rebuild.release.set()
        seen: set[str] = set()
        while f"again-{i}.txt" not in seen:
            got = rebuild.next()
            assert got is not None
            seen |= got


def test_shutdown_waits_for_a_rebuild_that_schedules_more_work(make_scheduler):
    """APScheduler's shutdown(wait=True) holds its job-store lock while the running job
    finishes; a job that adds a job then (a follow-up rebuild, the timed-publish job) must
    not deadlock the shutdown."""
    rebuild = Recorder()
    rebuild.release.clear()
    s = make_scheduler(rebuild, debounce=0.05)
    s.notify({"a.txt"})
    assert rebuild.started.wait(TIMEOUT)
    s.notify({"b.txt"})  # pending: the running rebuild schedules a follow-up as it ends
    stopper = threading.Thread(target=s.shutdown, daemon=True)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive()  # waiting for the running rebuild, as it should
    rebuild.after = lambda: s.publish_at(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    rebuild.release.set()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive(), "Scheduler.shutdown() deadlocked"


def test_timed_publish_during_a_rebuild_is_not_dropped(make_scheduler):
    """The timed-publish job calls notify(set()): no names, but a pass is still owed."""
    rebuild = Recorder()
    rebuild.release.clear()
    s = make_scheduler(rebuild, debounce=0.05)
    s.notify({"a.txt"})
    assert rebuild.started.wait(TIMEOUT)
    s.notify(set(), delay=0)  # a scheduled seed came due while the pass runs
    rebuild.release.set()
    assert rebuild.next() == {"a.txt"}
    assert rebuild.next() == set()
