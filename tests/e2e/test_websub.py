"""``feeder run`` against a real WebSub hub (Flask-WebSub web + Celery worker) and a real
subscriber: a dropped seed reaches the subscriber signed and uncompressed; pings that fail
while the hub is down are retried until it is back, then stop; a rebuild that changes no
feed pings nobody.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from .._daemon import FeederDaemon
from .subscriber import Delivery, Subscriber
from .websub_hub import Hub

pytestmark = pytest.mark.slow

# Retries come quickly (0.2 s, 0.4 s, ... with jitter) so the hub-down case takes seconds.
CONFIG = {"websub": {"ping_backoff": 0.2, "ping_timeout": 2.0, "ping_max_attempts": 30}}
DATE = "2026-01-05"
WAIT = 15.0  # seconds, for each wait on the daemon

#: How long to watch for a ping that must not happen. Absence can only be shown over a
#: window; this one is several times the debounce (0.2 s) plus the first retry delay
#: (0.2 s * 1.5 jitter) plus a ping's round trip on loopback (~10 ms), so a ping that the
#: daemon were going to send would show up well within it.
QUIET_WINDOW = 2.0


def article(title: str) -> str:
    return f"{title}. This is a test article about feeds.\n\nMore text here."


@pytest.fixture
def daemon(tmp_path: Path, hub: Hub) -> Iterator[FeederDaemon]:
    d = FeederDaemon(tmp_path / "site", hubs=[hub.url], config=CONFIG)
    seed = d.write_seed(DATE, article("The first article was already there"))
    # An hour old: a seed younger than `settle` (1 s) at start-up is left for a later build,
    # which would ping again at a time of its own choosing.
    an_hour_ago = time.time() - 3600
    os.utime(seed, (an_hour_ago, an_hour_ago))
    with d:
        # the first build wrote the feeds, so it pings the hub: let that settle first
        d.wait_until(lambda: d.health()["entries"] == 1 and d.pinged_count(d.topic) >= 1
                     and not d.pending(), timeout=WAIT, what="the first build's pings")
        assert len(d.log_lines("built in")) == 1, d.log_text()
        yield d
    assert "Traceback" not in d.log_text(), d.log_text()


def delivery_of(sub: Subscriber, hub: Hub, d: FeederDaemon, title: str,
                timeout: float = 15.0) -> Delivery:
    try:
        return sub.wait_for(lambda x: title.encode() in x.body, timeout=timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nsubscriptions: {hub.subscriptions()}\n{hub.log_text()}"
                             f"\n===== feeder =====\n{d.log_text()}") from None


def assert_is_the_atom_feed_with(delivery: Delivery, title: str) -> None:
    assert delivery.signature_valid is True
    assert delivery.headers.get("Content-Encoding", "identity") != "gzip"
    assert delivery.content_type == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(delivery.body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert title in [e.title for e in parsed.entries]


def test_new_seed_reaches_subscriber_and_hub_outage_is_retried(
    hub: Hub, subscriber: Subscriber, daemon: FeederDaemon
) -> None:
    topic = daemon.topic  # exactly the URL the daemon pings and the feed's rel="self"
    subscription = subscriber.subscribe(hub.url, topic)
    hub.wait_for_subscription(topic, subscription.callback)

    title = "Zebra crossings arrive on Mill Street"
    daemon.write_seed(DATE, article(title))
    assert_is_the_atom_feed_with(delivery_of(subscriber, hub, daemon, title), title)
    assert subscriber.invalid_deliveries == [] and subscriber.unknown_requests == []

    # The hub goes away: the next change's ping fails and waits in the store to be retried.
    hub.stop()
    failures_before = len(daemon.log_lines(f"ping {hub.url} for {topic} failed"))
    title = "Harbour ferry timetable changes in spring"
    daemon.write_seed(DATE, article(title))
    daemon.wait_until(lambda: any(p["attempts"] >= 1 and p["last_error"]
                                  for p in daemon.pending(topic)),
                      timeout=WAIT, what="a failed ping pending for the atom feed")
    [pending] = daemon.pending(topic)
    assert pending["hub"] == hub.url
    assert "ConnectError" in pending["last_error"]
    assert daemon.health()["hubs"][hub.url]["ok"] is False
    assert len(daemon.log_lines(f"ping {hub.url} for {topic} failed")) > failures_before
    assert any("retrying in" in line for line in daemon.log_lines(f"for {topic} failed"))

    hub.start()  # same port, same subscriptions
    assert_is_the_atom_feed_with(delivery_of(subscriber, hub, daemon, title), title)
    daemon.wait_until(lambda: not daemon.pending(), timeout=WAIT,
                      what="pending pings to clear")
    assert daemon.health()["hubs"][hub.url]["ok"] is True

    # Once accepted, the change is announced no more.
    pinged = daemon.pinged_count(topic)
    deadline = time.monotonic() + QUIET_WINDOW
    while time.monotonic() < deadline:  # bounded window: proving absence needs one
        assert daemon.pinged_count(topic) == pinged, daemon.log_text()
        assert daemon.pending() == []
        time.sleep(0.05)
    assert subscriber.invalid_deliveries == []


def test_rebuild_that_changes_no_feed_sends_no_ping(hub: Hub, daemon: FeederDaemon) -> None:
    path = next(daemon.seeds.iterdir())
    pings = {topic: daemon.pinged_count(topic) for topic in
             (daemon.topic, daemon.base_url + "rss.xml", daemon.base_url + "feed.json")}
    assert all(pings.values()), pings

    # Each change below ends with a close-after-write event, so the daemon rebuilds, yet no
    # feed changes: identical bytes written again (new mtime, same hash); a file opened for
    # writing and closed untouched; a new mtime (as `touch` sets) followed by such a close.
    for change in ("rewrite", "close", "touch"):
        last_build = daemon.health()["last_build"]["time"]
        if change == "rewrite":
            path.write_bytes(path.read_bytes())
        else:
            if change == "touch":
                later = time.time() + 5
                os.utime(path, (later, later))
            open(path, "ab").close()  # opened for writing and closed: a close event
        daemon.wait_until(lambda b=last_build: daemon.health()["last_build"]["time"] != b,
                          timeout=WAIT, what=f"the rebuild after a {change}")
        assert daemon.health()["last_build"]["ok"] is True
        # bounded window: a ping would follow the rebuild within milliseconds
        deadline = time.monotonic() + QUIET_WINDOW
        while time.monotonic() < deadline:
            assert daemon.pending() == [], f"{change}:\n{daemon.log_text()}"
            assert {t: daemon.pinged_count(t) for t in pings} == pings, \
                f"{change}:\n{daemon.log_text()}"
            time.sleep(0.05)
