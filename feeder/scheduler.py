"""When rebuild passes run, and the timers around them.

:class:`RebuildState` is the core, pure (no threads, no clock of its own)::

    idle --notify: due now--> pending --take, when due--> running --done--> idle
                                 ^                              |
                                 +---- owed: due after a gap ---+

- ``notify`` adds names (``None``: rescan the whole folder) and sets one flag, ``owed``.
  Only ``take`` clears it, so a change noticed while a pass runs is owed by the next pass.
- A change noticed while no pass runs or waits is due at once (a leading edge: one new
  seed is served in the time of one pass), and so is a single change noticed during a
  pass, when that pass ends. Two or more changes during a pass are a burst: the next pass
  starts ``debounce`` after that pass ended and takes all that arrived meanwhile, so a
  burst of 1,000 files costs a few passes.
- A failed pass owes its work again, due after 5 s, 10 s, 20 s ... at most 60 s.

:class:`Scheduler` drives it with one plain thread that waits on a condition until the next
deadline (the shape of Django's autoreloader and of watchdog's observers), and uses
APScheduler only as a timer: the periodic rescan, timed publishing of scheduled seeds, a
second look at files that were still being written, ping retries. Timers only notify the
core, and pings run on their own executor, so rebuilds, timers and pings never wait on
each other: a hung hub delays no scheduled seed and no rescan.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("feeder")

DEBOUNCE = 0.2
MAX_DEBOUNCE = 60.0
RETRY_AFTER_FAILURE = 5.0
MAX_RETRY = 60.0
RESCAN_INTERVAL = 300.0
MAX_DELAY = 24 * 3600.0  # of a timer: datetime arithmetic overflows on huge values


def seconds(value: float, default: float, most: float = math.inf) -> float:
    """A delay fit to schedule with: ``default`` for NaN, infinity or a negative value (a
    setting that slipped through would otherwise stop every pass), at most ``most``."""
    if not math.isfinite(value) or value < 0:
        return default
    return min(value, most)


@dataclass(frozen=True)
class Pass:
    """The work of one pass: ``names`` to look at, or ``None`` for the whole folder."""

    names: frozenset[str] | None
    started: float


def backoff(failures: int, first: float = RETRY_AFTER_FAILURE,
            most: float = MAX_RETRY) -> float:
    """The wait after ``failures`` in a row: ``first``, doubling, at most ``most``."""
    return min(first * 2 ** min(max(failures - 1, 0), 16), most)


class RebuildState:
    """The scheduling core; times are seconds on the caller's monotonic clock."""

    def __init__(self, debounce: float = DEBOUNCE, retry: float = RETRY_AFTER_FAILURE,
                 max_retry: float = MAX_RETRY) -> None:
        self.debounce = debounce
        self.retry = seconds(retry, RETRY_AFTER_FAILURE)
        self.max_retry = seconds(max_retry, MAX_RETRY)
        self._names: set[str] = set()
        self._full = False
        self._owed = False
        self._burst = False  # more than one notice during the running pass
        self._due = -math.inf  # when the owed pass may start
        self._running: Pass | None = None
        self.failures = 0  # passes failed in a row

    @property
    def debounce(self) -> float:
        return self._debounce

    @debounce.setter
    def debounce(self, value: float) -> None:
        self._debounce = seconds(value, DEBOUNCE, MAX_DEBOUNCE)

    @property
    def state(self) -> str:
        if self._running is not None:
            return "running"
        return "pending" if self._owed else "idle"

    def notify(self, names: Iterable[str] | None, now: float) -> None:
        """Seeds changed (``names``; empty for a pass without names, as timed publishing
        needs), or ``None``: the whole folder is to be looked at."""
        if self._running is None:
            if not self._owed:
                self._due = now
        elif self._owed:
            self._burst = True
        if names is None:
            self._full = True
        else:
            self._names.update(names)
        self._owed = True

    def retry_delay(self) -> float:
        """The wait after the latest failure: doubling from ``retry``, at most ``max_retry``."""
        return backoff(self.failures, self.retry, self.max_retry)

    def next_deadline(self) -> float | None:
        """When the next pass may start (maybe in the past); None while a pass runs or
        nothing is owed."""
        if self._running is not None or not self._owed:
            return None
        return self._due

    def take(self, now: float) -> Pass | None:
        """Start the owed pass if it is due: all names gathered so far, or the whole folder."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        work = Pass(None if self._full else frozenset(self._names), now)
        self._names, self._full, self._owed, self._burst = set(), False, False, False
        self._running = work
        return work

    def done(self, ok: bool, now: float) -> None:
        """The running pass ended. What is owed now is due at once (one change noticed
        meanwhile), after ``debounce`` (a burst), or after a backoff (the work of a failed
        pass, with whatever was noticed meanwhile)."""
        work = self._running
        if work is None:
            raise RuntimeError("done() without a running pass")
        if ok:
            self.failures = 0
            self._due = now + (self.debounce if self._burst else 0.0)
        else:
            self.notify(work.names, now)
            self.failures += 1
            self._due = now + self.retry_delay()
        self._running = None


def _at(delay: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)


class Scheduler:
    """Runs ``rebuild(names or None)`` as :class:`RebuildState` says, on one thread of its
    own; ``ping()`` (returning when to come back, epoch seconds, or None) on another."""

    def __init__(self, rebuild: Callable[[set[str] | None], object],
                 ping: Callable[[], float | None], *, debounce: float = DEBOUNCE,
                 rescan_interval: float = RESCAN_INTERVAL) -> None:
        self._rebuild, self._ping = rebuild, ping
        self.rescan_interval = seconds(rescan_interval, RESCAN_INTERVAL) or RESCAN_INTERVAL
        self._core = RebuildState(debounce, retry=RETRY_AFTER_FAILURE, max_retry=MAX_RETRY)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="feeder-rebuild", daemon=True)
        self._closing = False
        self._jobs_lock = threading.Lock()  # orders touching the job store against shutdown()
        self._timed: set[dt.datetime] = set()  # publishing times with a job waiting
        self._first_ping: dt.datetime | None = None  # asked for before start()
        self._last_error = ""
        self._failing_since = ""
        self.builds = 0
        self._aps = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1), "pings": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.UTC,
        )

    @property
    def debounce(self) -> float:
        return self._core.debounce

    @debounce.setter
    def debounce(self, value: float) -> None:
        with self._cond:
            self._core.debounce = value
            self._cond.notify_all()

    def start(self) -> None:
        self._aps.start()
        self._aps.add_job(self.notify, "interval", seconds=self.rescan_interval,
                          id="rescan", args=[None])
        # One long-lived job, paused (next_run_time=None) until ping_soon wakes it.
        self._aps.add_job(self._run_ping, "interval", seconds=60, id="ping",
                          executor="pings", next_run_time=self._first_ping, max_instances=3)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop taking work; wait for the pass in progress (a build stops at its next batch)
        and for a ping in flight."""
        with self._jobs_lock, self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if self._aps.running:
            # Jobs out first: APScheduler marks itself stopped before it takes its job-store
            # lock, so a one-off job that fires meanwhile fails to be removed (JobLookupError).
            self._aps.remove_all_jobs()
            self._aps.shutdown(wait=True)

    # rebuilds ---------------------------------------------------------------------------------
    def notify(self, names: Iterable[str] | None, delay: float | None = None) -> None:
        """Seeds changed (``names``), or ``None`` for a full rescan of the folder; with a
        ``delay``, take notice that many seconds from now (a file to look at again once it
        has settled)."""
        if delay is not None and seconds(delay, 0.0) > 0:
            self._later(_at(seconds(delay, 0.0, MAX_DELAY)),
                        None if names is None else set(names))
            return
        with self._cond:
            self._core.notify(names, time.monotonic())
            self._cond.notify_all()

    def publish_at(self, when: dt.datetime | None) -> None:
        """Pass again when the next scheduled (future-dated) seed is due."""
        if when is not None and when not in self._timed:
            self._timed.add(when)
            self._later(when, set())

    def _later(self, when: dt.datetime, names: Iterable[str] | None) -> None:
        with self._jobs_lock:
            if not self._closing:
                self._aps.add_job(self._timer, "date", run_date=when, args=[when, names])

    def _timer(self, when: dt.datetime, names: Iterable[str] | None) -> None:
        self._timed.discard(when)
        self.notify(names)

    def _loop(self) -> None:
        """The rebuild thread: wait until a pass is due, run it, report how it went."""
        while True:
            with self._cond:
                while True:
                    if self._closing:
                        return
                    now = time.monotonic()
                    work = self._core.take(now)
                    if work is not None:
                        break
                    deadline = self._core.next_deadline()
                    self._cond.wait(None if deadline is None else deadline - now)
            self._run(work)

    def _run(self, work: Pass) -> None:
        self.builds += 1
        try:
            self._rebuild(None if work.names is None else set(work.names))
        except Exception as exc:  # noqa: BLE001 - kept and retried; logged in _failed
            with self._cond:
                self._core.done(False, time.monotonic())
                failures, retry = self._core.failures, self._core.retry_delay()
            self._failed(exc, failures, retry)
            return
        with self._cond:
            failures = self._core.failures
            self._core.done(True, time.monotonic())
        if failures:
            log.info("rebuild recovered after %d failed %s", failures,
                     "pass" if failures == 1 else "passes")
            self._last_error = ""

    def _failed(self, exc: Exception, failures: int, retry: float) -> None:
        """Log a failure with its traceback once; the same failure again as one line."""
        error = f"{type(exc).__name__}: {exc}"
        if failures == 1:
            self._failing_since = time.strftime("%H:%M:%S")
        if error != self._last_error:
            log.error("rebuild failed; retrying in %.0f s", retry, exc_info=exc)
        else:
            log.error("rebuild still failing (%d times since %s): %s; retrying in %.0f s",
                      failures, self._failing_since, error, retry)
        self._last_error = error

    # pings ------------------------------------------------------------------------------------
    def ping_soon(self, delay: float = 0.0) -> None:
        self._wake_ping(_at(seconds(delay, 0.0, MAX_DELAY)))

    def _wake_ping(self, when: dt.datetime) -> None:
        """Run the ping job at ``when`` unless it already runs earlier. Not while shutting
        down: APScheduler's shutdown(wait=True) holds its job-store lock until the running
        ping ends, so a ping that touched the job store then would deadlock it."""
        with self._jobs_lock:
            if self._closing:
                return
            if not self._aps.running:
                self._first_ping = min(when, self._first_ping or when)
                return
            job = self._aps.get_job("ping")
            if job is not None and (job.next_run_time is None or when < job.next_run_time):
                job.modify(next_run_time=when)

    def _run_ping(self) -> None:
        try:
            next_try = self._ping()
        except Exception:
            log.exception("pinging hubs failed; retrying in %.0f s", RETRY_AFTER_FAILURE)
            self.ping_soon(RETRY_AFTER_FAILURE)
            return
        if next_try is not None:
            self._wake_ping(dt.datetime.fromtimestamp(next_try, dt.UTC))
