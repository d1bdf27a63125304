"""APScheduler jobs: the debounced rebuild, the periodic rescan, timed publishing, pings.

Changes are coalesced: the first change of a burst schedules one rebuild ``debounce``
seconds later, and every change that arrives meanwhile (or while that rebuild runs) joins it
or the next one, so a burst of 1,000 files costs a few rebuilds, not 1,000. Rebuilds run on
one worker thread, so they never overlap; pings run on another, so a slow hub never delays
a rebuild. A rebuild that fails keeps its work pending and is retried.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("feeder")

RETRY_AFTER_FAILURE = 5.0


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


class Scheduler:
    def __init__(self, rebuild: Callable[[set[str] | None], object],
                 ping: Callable[[], float | None], *, debounce: float = 0.2,
                 rescan_interval: float = 300.0) -> None:
        self._rebuild, self._ping = rebuild, ping
        self.debounce, self.rescan_interval = debounce, rescan_interval
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self._full = False
        self._poked = False  # notify() was called since the last pass started
        self._queued = False
        self._running = False
        self._closing = False
        self._jobs_lock = threading.Lock()  # orders adding jobs against shutdown()
        self.builds = 0
        self._aps = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1), "pings": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.UTC,
        )

    def start(self) -> None:
        self._aps.start()
        self._aps.add_job(self.notify, "interval", seconds=self.rescan_interval,
                          id="rescan", args=[None], executor="pings")
        # Long-lived jobs that are woken early (next_run_time=None: paused until woken).
        # Jobs are never added or removed under a fixed id while running: APScheduler's
        # loop removes a finished one-off job by id, which races with replacing it.
        day = 24 * 3600
        many = {"max_instances": 3}  # one-thread executors still run them one at a time
        self._aps.add_job(self._run_rebuild, "interval", seconds=day, id="rebuild",
                          next_run_time=None, **many)
        self._aps.add_job(self._run_ping, "interval", seconds=60, id="ping",
                          executor="pings", next_run_time=None, **many)
        self._aps.add_job(self.notify, "interval", seconds=day, id="timed", args=[set()],
                          kwargs={"delay": 0}, next_run_time=None, executor="pings")

    def shutdown(self) -> None:
        """Stop taking work; wait for the job in progress (a build stops at its next batch)."""
        with self._jobs_lock:
            self._closing = True
        self._aps.shutdown(wait=True)

    def _wake(self, job_id: str, when: dt.datetime) -> None:
        """Run a long-lived job at ``when`` unless it already runs earlier. Not while shutting
        down: APScheduler's shutdown(wait=True) holds its job-store lock until the running
        job ends, so a job that touched the job store then would deadlock it."""
        with self._jobs_lock:
            if self._closing:
                return
            with contextlib.suppress(LookupError, RuntimeError):  # not started / shut down
                job = self._aps.get_job(job_id)
                if job is not None and (job.next_run_time is None or when < job.next_run_time):
                    job.modify(next_run_time=when)

    # rebuilds ---------------------------------------------------------------------------------
    def notify(self, names: set[str] | None, delay: float | None = None) -> None:
        """Seeds changed (``names``), or ``None`` for a full rescan of the folder."""
        with self._lock:
            if names is None:
                self._full = True
            else:
                self._names |= names
                self._poked = True  # even with no names: a timed publish needs a pass
            if self._queued or self._running:
                return
            self._queued = True
        self._wake("rebuild", _at(self.debounce if delay is None else delay))

    def _run_rebuild(self) -> None:
        with self._lock:
            if not self._queued:  # the daily safety run with nothing to do
                return
            names, full = self._names, self._full
            self._names, self._full, self._poked = set(), False, False
            self._queued, self._running = False, True
        retry = False
        try:
            self.builds += 1
            self._rebuild(None if full else names)
        except Exception:
            log.exception("rebuild failed; retrying in %.0f s", RETRY_AFTER_FAILURE)
            with self._lock:
                self._names |= names
                self._full |= full
                self._poked = True
            retry = True
        finally:
            with self._lock:
                self._running = False
                again = (self._full or self._poked) and not self._queued
                if again:
                    self._queued = True
        if again:
            self._wake("rebuild", _at(RETRY_AFTER_FAILURE if retry else self.debounce))

    def publish_at(self, when: dt.datetime | None) -> None:
        """Rebuild when the next scheduled (future-dated) seed is due."""
        if when is not None:
            self._wake("timed", when)

    # pings ------------------------------------------------------------------------------------
    def ping_soon(self, delay: float = 0.0) -> None:
        self._wake("ping", _at(delay))

    def _run_ping(self) -> None:
        try:
            next_try = self._ping()
        except Exception:
            log.exception("pinging hubs failed; retrying in %.0f s", RETRY_AFTER_FAILURE)
            self.ping_soon(RETRY_AFTER_FAILURE)
            return
        if next_try is not None:
            self._wake("ping", dt.datetime.fromtimestamp(next_try, dt.UTC))
