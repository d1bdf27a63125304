"""The scheduling core (pure, driven by Hypothesis' stateful testing) and the Scheduler that
runs it on a real thread with a real APScheduler (no mocks; events for synchronisation)."""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import feeder.scheduler
from feeder.scheduler import MAX_DEBOUNCE, MAX_RETRY, Pass, RebuildState, Scheduler

TIMEOUT = 5.0
QUIET = 0.5


# -- the core -----------------------------------------------------------------------------------

ANY, FULL = object(), object()  # "some pass is owed", "a full pass is owed"
DELAYS = st.one_of(st.floats(0, 10), st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e300]))


class CoreMachine(RuleBasedStateMachine):
    """Random notices, clock moves, passes that succeed or fail, and reloads.

    The model keeps, for each thing noticed (a name, "the whole folder", "a pass"), the step
    of its latest notice; a successful pass that *started after* that step covers it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.core = RebuildState(debounce=0.2, retry=5.0, max_retry=60.0)
        self.now = 1000.0
        self.step = 0
        self.uncovered: dict[object, int] = {}
        self.running: Pass | None = None
        self.running_step = 0
        self.due_at = -math.inf
        self.notices_during = 0  # notify calls while the pass runs
        self.failures = 0

    def _notice(self, key: object) -> None:
        if self.running is None and not self.uncovered:
            self.due_at = self.now  # after a quiet spell: at once
        self.step += 1
        self.uncovered[key] = self.step

    def _due(self) -> bool:
        return self.running is None and bool(self.uncovered) and self.now >= self.due_at

    @rule(names=st.sets(st.sampled_from("abcdefgh"), max_size=4))
    def notify(self, names: set[str]) -> None:
        self.core.notify(names, self.now)
        self.notices_during += self.running is not None
        self._notice(ANY)  # even no names (timed publishing) owe a pass
        for name in names:
            self._notice(name)

    @rule()
    def notify_full(self) -> None:
        self.core.notify(None, self.now)
        self.notices_during += self.running is not None
        self._notice(ANY)
        self._notice(FULL)

    @rule(seconds=st.one_of(st.floats(0, 0.5), st.floats(0, 100)))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def advance_to_deadline(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is not None:
            self.now = max(self.now, deadline)

    @rule()
    def start_pass(self) -> None:
        due = self._due()
        work = self.core.take(self.now)
        if self.running is not None:
            assert work is None, "two passes at once"
            return
        assert (work is not None) == due, f"take() gave {work} when due={due}"
        if work is None:
            return
        # Nothing made up: every name was noticed and is owed; a full pass only if owed.
        assert work.names is None or all(n in self.uncovered for n in work.names)
        assert (work.names is None) == (FULL in self.uncovered)
        self.step += 1
        self.running, self.running_step = work, self.step
        self.notices_during = 0

    @precondition(lambda self: self.running is not None)
    @rule(ok=st.booleans())
    def finish_pass(self, ok: bool) -> None:
        self.core.done(ok, self.now)
        self._finished(ok)

    def _finished(self, ok: bool) -> None:
        work, self.running = self.running, None
        assert work is not None
        self.failures = 0 if ok else self.failures + 1
        # what is owed now waits: not for one change, debounce for a burst, a backoff
        # after a failure
        if self.failures:
            gap = min(5.0 * 2 ** (self.failures - 1), 60.0)
        else:
            gap = self.core.debounce if self.notices_during > 1 else 0.0
        self.due_at = self.now + gap
        if not ok:
            return
        for key, noticed in list(self.uncovered.items()):
            covers = (work.names is None or key is ANY
                      or (key is not FULL and key in work.names))
            if covers and noticed < self.running_step:
                del self.uncovered[key]

    @rule(debounce=DELAYS)
    def reload(self, debounce: float) -> None:
        self.core.debounce = debounce

    @rule()
    def quiesce(self) -> None:
        """Liveness: with time moving on and passes succeeding, all that was noticed is
        covered, by at most the running pass and one more (everything else gathered)."""
        passes = 0
        if self.running is not None:
            self.core.done(True, self.now)
            self._finished(True)
            passes += 1
        while (deadline := self.core.next_deadline()) is not None:
            self.now = max(self.now, deadline)
            self.start_pass()
            assert self.running is not None
            self.core.done(True, self.now)
            self._finished(True)
            passes += 1
        assert not self.uncovered, f"never covered: {self.uncovered}"
        assert self.core.state == "idle"
        assert passes <= 2

    @invariant()
    def nothing_owed_is_forgotten(self) -> None:
        """The sticky-flag bug: work owed while no pass runs and no deadline is set."""
        deadline = self.core.next_deadline()
        if self.running is None and self.uncovered:
            assert deadline == self.due_at
            assert deadline <= self.now + max(MAX_DEBOUNCE, MAX_RETRY)
        else:
            assert deadline is None
        assert self.core.state == ("running" if self.running else
                                   "pending" if self.uncovered else "idle")

    @invariant()
    def debounce_is_a_usable_delay(self) -> None:
        assert 0 <= self.core.debounce <= MAX_DEBOUNCE


TestCore = CoreMachine.TestCase
TestCore.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_a_burst_costs_two_passes_the_first_at_once():
    core = RebuildState(debounce=0.2)
    core.notify({"0.txt"}, 0.0)
    first = core.take(0.0)
    assert first == Pass(frozenset({"0.txt"}), 0.0)
    for i in range(1, 1000):
        core.notify({f"{i}.txt"}, 0.01)
    assert core.take(0.05) is None  # one pass at a time
    core.done(True, 0.1)
    assert core.next_deadline() == pytest.approx(0.3)  # gathered for `debounce` after it
    assert core.take(0.29) is None
    second = core.take(0.31)
    assert second is not None and len(second.names) == 999
    core.done(True, 0.5)
    assert core.state == "idle" and core.next_deadline() is None
    core.notify({"next.txt"}, 0.51)  # nothing ran or waited: at once, however recent
    assert core.take(0.51) == Pass(frozenset({"next.txt"}), 0.51)
    core.notify({"during.txt"}, 0.52)  # one change during a pass: when it ends
    core.done(True, 0.53)
    assert core.take(0.53) == Pass(frozenset({"during.txt"}), 0.53)


def test_failures_back_off_and_keep_the_work():
    core = RebuildState(debounce=0.2, retry=5.0, max_retry=60.0)
    core.notify({"a.txt"}, 0.0)
    now = 0.0
    gaps = []
    for _ in range(6):
        assert core.take(now) is not None
        core.done(False, now)
        gaps.append(core.next_deadline() - now)
        now = core.next_deadline()
    assert gaps == [5, 10, 20, 40, 60, 60]
    assert core.take(now) == Pass(frozenset({"a.txt"}), now)


# -- the Scheduler: a real thread and a real APScheduler ----------------------------------------

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

    def make(rebuild: Recorder, debounce: float = 0.2, ping: Callable[[], object] = lambda: None,
             start: bool = True, **kw: float) -> Scheduler:
        s = Scheduler(rebuild, ping, debounce=debounce, **{"rescan_interval": 3600, **kw})
        if start:
            s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.shutdown()


def test_a_change_after_a_quiet_spell_is_built_at_once(make_scheduler):
    """The leading edge: no waiting for `debounce` (here far longer than TIMEOUT)."""
    rebuild = Recorder()
    s = make_scheduler(rebuild, debounce=30)
    s.notify({"a.txt"})
    assert rebuild.next() == {"a.txt"}


def test_a_burst_of_notices_makes_at_most_two_rebuilds(make_scheduler):
    rebuild = Recorder()
    s = make_scheduler(rebuild, debounce=0.3)
    for i in range(100):
        s.notify({f"{i}.txt"})
    seen = rebuild.next()
    if seen != {f"{i}.txt" for i in range(100)}:
        seen |= rebuild.next()
    assert seen == {f"{i}.txt" for i in range(100)}
    assert rebuild.none_within()
    assert s.builds <= 2


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


def test_notices_before_start_are_built_after_it(make_scheduler):
    """The start-up wedge: seeds noticed while the daemon starts must not stop all passes."""
    rebuild = Recorder()
    s = make_scheduler(rebuild, start=False)
    s.notify({"early.txt"})
    s.start()
    s.notify(None)
    seen = rebuild.next()
    if seen is not None:  # the early name came first; the full pass follows
        assert seen == {"early.txt"}
        seen = rebuild.next()
    assert seen is None


@pytest.mark.parametrize("debounce", [math.nan, math.inf, 1e300, -1.0])
def test_an_unusable_debounce_never_stops_rebuilds(make_scheduler, debounce):
    rebuild = Recorder()
    s = make_scheduler(rebuild)
    s.debounce = debounce  # as a reload would set it
    s.notify({"a.txt"})
    assert rebuild.next() == {"a.txt"}
    if math.isfinite(debounce) and debounce > MAX_DEBOUNCE:
        assert s.debounce == MAX_DEBOUNCE
        return
    s.notify({"b.txt"})  # within the gap: waits for the default debounce, not forever
    assert rebuild.next() == {"b.txt"}


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


def test_a_repeated_failure_logs_one_traceback_then_a_count(make_scheduler, monkeypatch,
                                                            caplog):
    monkeypatch.setattr(feeder.scheduler, "RETRY_AFTER_FAILURE", 0.01)
    rebuild = Recorder()
    rebuild.fail_times = 4
    s = make_scheduler(rebuild)
    with caplog.at_level(logging.INFO, logger="feeder"):
        s.notify({"a.txt"})
        for _ in range(5):
            assert rebuild.next() == {"a.txt"}
        assert rebuild.none_within(0.2)
    lines = [r for r in caplog.records if r.name == "feeder"]
    assert [r.exc_info is not None for r in lines] == [True, False, False, False, False]
    assert lines[0].getMessage().startswith("rebuild failed; retrying in")
    for count, record in zip((2, 3, 4), lines[1:4], strict=True):
        text = record.getMessage()
        assert text.startswith(f"rebuild still failing ({count} times since ")
        assert "RuntimeError: disk full (test)" in text
    assert lines[4].getMessage() == "rebuild recovered after 4 failed passes"


def test_full_rescan_wins_over_names(make_scheduler):
    rebuild = Recorder()
    rebuild.release.clear()
    s = make_scheduler(rebuild, debounce=0.2)
    s.notify({"first.txt"})
    assert rebuild.next() == {"first.txt"}
    s.notify({"a.txt"})
    s.notify(None)
    s.notify({"b.txt"})
    rebuild.release.set()
    assert rebuild.next() is None
    assert rebuild.none_within()


def test_a_delayed_notice_waits_its_delay(make_scheduler):
    """A file put aside while still being written is looked at again `settle` later."""
    rebuild = Recorder()
    s = make_scheduler(rebuild)
    asked = time.monotonic()
    s.notify({"slow.txt"}, delay=0.3)
    assert rebuild.next() == {"slow.txt"}
    assert time.monotonic() - asked >= 0.3


def test_back_to_back_rebuilds_are_never_lost(make_scheduler):
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


def test_a_hung_ping_delays_neither_timed_publishing_nor_rescans(make_scheduler):
    pinging, unblock = threading.Event(), threading.Event()

    def hung_ping() -> None:
        pinging.set()
        unblock.wait(30)

    rebuild = Recorder()
    s = make_scheduler(rebuild, ping=hung_ping, rescan_interval=0.3)
    try:
        s.ping_soon()
        assert pinging.wait(TIMEOUT)
        assert rebuild.next() is None  # a rescan, while the ping hangs
        s.publish_at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.2))
        for _ in range(10):  # a timed pass (no names) among the rescans
            if rebuild.next() == set():
                break
        else:
            raise AssertionError("the timed pass never ran")
        assert not unblock.is_set()
    finally:
        unblock.set()


def test_shutdown_waits_for_a_rebuild_that_schedules_more_work(make_scheduler):
    """A pass that ends during shutdown may still ask for timed publishing; that must not
    deadlock APScheduler's shutdown."""
    rebuild = Recorder()
    rebuild.release.clear()
    s = make_scheduler(rebuild, debounce=0.05)
    s.notify({"a.txt"})
    assert rebuild.started.wait(TIMEOUT)
    s.notify({"b.txt"})
    stopper = threading.Thread(target=s.shutdown, daemon=True)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive()  # waiting for the running rebuild, as it should
    rebuild.after = lambda: s.publish_at(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    rebuild.release.set()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive(), "Scheduler.shutdown() deadlocked"
    assert rebuild.next() == {"a.txt"}
    assert rebuild.none_within(0.1)  # b.txt waits for the next start (a full pass)


def test_timed_publish_during_a_rebuild_is_not_dropped(make_scheduler):
    """The timed-publish job calls notify(set()): no names, but a pass is still owed."""
    rebuild = Recorder()
    rebuild.release.clear()
    s = make_scheduler(rebuild, debounce=0.05)
    s.notify({"a.txt"})
    assert rebuild.started.wait(TIMEOUT)
    s.publish_at(dt.datetime.now(dt.UTC))  # a scheduled seed came due while the pass runs
    rebuild.release.set()
    assert rebuild.next() == {"a.txt"}
    assert rebuild.next() == set()
