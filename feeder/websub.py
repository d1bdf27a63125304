"""WebSub publish pings: queued in the store, sent through an injected httpx client, retried.

Per the W3C WebSub Recommendation, publishing to a hub is hub-specific; the widely used form
is a POST of ``hub.mode=publish`` with the topic URL. Hubs differ in which field they read
(Google's reads ``hub.url``, Flask-WebSub requires ``hub.topic``), so both are sent.
A ping that fails is retried with exponential backoff and jitter; pings wait in the store,
so a restart loses none, and several changes to one topic collapse into one ping.

Each change of a feed gets the whole attempt budget (``max_attempts``): a change queued
while an older one's ping is still failing restarts the count and is tried at once, since
the hub may be back by now. A ping in flight when a newer change is queued is accounted to
its own change only: if it succeeds or is given up, the newer change is still pinged; if it
fails, the newer change keeps its fresh count and is not postponed. An unchanged feed is
never queued, so once its ping succeeded or was given up it is not pinged again.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable

import httpx

from .errors import PublishError
from .store import PingStore

log = logging.getLogger("feeder")

USER_AGENT = "feeder (WebSub publisher)"
MAX_BACKOFF = 3600.0
STOP_POLL = 0.05  # seconds between two looks at ``stopping`` while a ping is in flight


def ping(client: httpx.Client, hub: str, topic: str) -> None:
    """POST one publish ping; raise PublishError unless the hub answers 2xx."""
    try:
        response = client.post(
            hub, data={"hub.mode": "publish", "hub.url": topic, "hub.topic": topic}
        )
    except httpx.TimeoutException:
        raise PublishError(hub, "timed out") from None
    except httpx.HTTPError as exc:
        raise PublishError(hub, f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        body = response.text[:200].strip().replace("\n", " ")
        raise PublishError(hub, f"HTTP {response.status_code} {body}".strip())


def make_client(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT},
                        follow_redirects=False)


class Pinger:
    """Sends the pings that are due, records each result, and says when to come back."""

    def __init__(self, store: PingStore, client: httpx.Client, *, max_attempts: int = 10,
                 backoff: float = 2.0, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random) -> None:
        self.store, self.client = store, client
        self.max_attempts, self.backoff = max_attempts, backoff
        self.clock, self.jitter = clock, jitter
        self.stopping = threading.Event()  # set at shutdown: send nothing more
        self.hubs: frozenset[str] | None = None  # if set, pings for other hubs are dropped

    def delay(self, attempts: int) -> float:
        """Seconds before try number ``attempts + 1``: exponential, with 50–150 % jitter."""
        return min(self.backoff * 2 ** max(attempts - 1, 0), MAX_BACKOFF) * (0.5 + self.jitter())

    def run_due(self) -> float | None:
        """Send every due ping once; return the time of the next one still pending."""
        now = self.clock()
        for p in self.store.pending_pings():
            if self.stopping.is_set():
                return None  # still pending in the store: sent after the next start
            if self.hubs is not None and p.hub not in self.hubs:
                self.store.drop_pings_except(self.hubs)  # that hub left the config
                continue
            if p.next_try > now:
                continue
            when = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
            try:
                if not self._ping_unless_stopping(p.hub, p.topic):
                    return None  # still pending in the store: sent after the next start
            except PublishError as exc:
                attempts = p.attempts + 1
                self.store.hub_result(p.hub, False, exc.reason, when)
                if attempts >= self.max_attempts:
                    # A change queued while this ping was in flight stays pending, with
                    # attempts of its own (PingStore.add_pings reset them).
                    self.store.ping_done(p.hub, p.topic, p.since)
                    log.error("gave up pinging %s for %s after %d attempts: %s",
                              p.hub, p.topic, attempts, exc.reason)
                    continue
                wait = self.delay(attempts)
                if self.store.ping_failed(p.hub, p.topic, self.clock() + wait, exc.reason,
                                          p.since):
                    log.warning("ping %s for %s failed (attempt %d): %s; retrying in %.1f s",
                                p.hub, p.topic, attempts, exc.reason, wait)
                else:  # the feed changed meanwhile: that change is due now, from attempt 1
                    log.warning("ping %s for %s failed (attempt %d): %s; the feed changed "
                                "since, announcing that now", p.hub, p.topic, attempts,
                                exc.reason)
            else:
                # A change queued while this ping was in flight stays pending: the hub may
                # have fetched the topic before that change was written.
                self.store.ping_done(p.hub, p.topic, p.since)
                self.store.hub_result(p.hub, True, "accepted", when)
                log.info("pinged %s for %s", p.hub, p.topic)
        pending = self.store.pending_pings()
        return min((p.next_try for p in pending), default=None)

    def _ping_unless_stopping(self, hub: str, topic: str) -> bool:
        """:func:`ping` (raising its PublishError); False, at once, if shutdown begins first.

        A hub that accepts and never answers holds a ping for ``ping_timeout`` (up to two
        minutes), and a stop must not wait for it: the ping runs on a daemon thread, which is
        left behind at shutdown. It touches nothing but the client."""
        done = threading.Event()
        failure: list[PublishError] = []

        def send() -> None:
            try:
                ping(self.client, hub, topic)
            except PublishError as exc:
                failure.append(exc)
            except Exception as exc:  # noqa: BLE001 - the client closed under it at shutdown
                failure.append(PublishError(hub, f"{type(exc).__name__}: {exc}"))
            finally:
                done.set()

        threading.Thread(target=send, name="feeder-ping", daemon=True).start()
        while not done.wait(STOP_POLL):
            if self.stopping.is_set():
                log.info("stopping: the ping of %s for %s in flight is sent again at the "
                         "next start", hub, topic)
                return False
        if failure:
            raise failure[0]
        return True

    def run_once(self, budget: float) -> int:
        """One round for a command that must end (``feeder build``): each due ping is tried
        once, with the usual accounting of failures, and none is started after ``budget``
        seconds (one in flight ends within the client's timeout). Returns how many pings
        stay pending, for ``feeder run`` to send."""
        timer = threading.Timer(budget, self.stopping.set)
        timer.daemon = True
        timer.start()
        try:
            self.run_due()
        finally:
            timer.cancel()
            timer.join()
        return len(self.store.pending_pings())
