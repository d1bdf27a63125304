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

    def shutdown(self) -> None:
        """Stop taking work; wait for the job in progress (a build stops at its next batch)."""
        with self._jobs_lock:
            self._closing = True
        self._aps.shutdown(wait=True)

    def _add_job(self, func: Callable[[], object], **kwargs: object) -> None:
        """Add or replace a job, unless shutting down: APScheduler's shutdown(wait=True)
        holds its job-store lock while the running job finishes, so a job that added a job
        then (a follow-up rebuild, the timed-publish job) would deadlock the shutdown."""
        with self._jobs_lock:
            if self._closing:
                return
            with contextlib.suppress(RuntimeError):  # scheduler already shut down
                self._aps.add_job(func, **kwargs)

    # rebuilds ---------------------------------------------------------------------------------
    def notify(self, names: set[str] | None, delay: float | None = None) -> None:
        """Seeds changed (``names``), or ``None`` for a full rescan of the folder."""
        with self._lock:
            if names is None:
                self._full = True
            else:
                self._names |= names
            if self._queued or self._running:
                return
            self._queued = True
        self._schedule_rebuild(self.debounce if delay is None else delay)

    def _schedule_rebuild(self, delay: float) -> None:
        self._add_job(self._run_rebuild, trigger="date", run_date=_at(delay), id="rebuild",
                      replace_existing=True)

    def _run_rebuild(self) -> None:
        with self._lock:
            names, full = self._names, self._full
            self._names, self._full = set(), False
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
            retry = True
        finally:
            with self._lock:
                self._running = False
                again = (self._full or bool(self._names)) and not self._queued
                if again:
                    self._queued = True
        if again:
            self._schedule_rebuild(RETRY_AFTER_FAILURE if retry else self.debounce)

    def publish_at(self, when: dt.datetime | None) -> None:
        """Rebuild when the next scheduled (future-dated) seed is due."""
        if when is None:
            with self._jobs_lock:
                if self._closing:
                    return
                with contextlib.suppress(Exception):  # no such job
                    self._aps.remove_job("timed")
            return
        self._add_job(self.notify, trigger="date", run_date=when, id="timed", args=[set()],
                      kwargs={"delay": 0}, replace_existing=True)

    # pings ------------------------------------------------------------------------------------
    def ping_soon(self, delay: float = 0.0) -> None:
        self._add_job(self._run_ping, trigger="date", run_date=_at(delay), id="ping",
                      executor="pings", replace_existing=True)

    def _run_ping(self) -> None:
        try:
            next_try = self._ping()
        except Exception:
            log.exception("pinging hubs failed; retrying in %.0f s", RETRY_AFTER_FAILURE)
            self.ping_soon(RETRY_AFTER_FAILURE)
            return
        if next_try is not None:
            run_date = dt.datetime.fromtimestamp(next_try, dt.UTC)
            self._add_job(self._run_ping, trigger="date", run_date=run_date, id="ping",
                          executor="pings", replace_existing=True)
