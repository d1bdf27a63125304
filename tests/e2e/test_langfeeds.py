"""``feeder run`` with feeds per language, against a real WebSub hub (Flask-WebSub) and a
real subscriber: a new Italian article pings the hub for the Italian feeds (and the main
ones) only, reaches a subscriber of the Italian feed, and the Italian feed answers a
conditional GET with 304."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from .._daemon import FeederDaemon
from .subscriber import Subscriber
from .websub_hub import Hub

pytestmark = pytest.mark.slow

CONFIG = {"websub": {"ping_backoff": 0.2, "ping_timeout": 2.0, "ping_max_attempts": 30}}
WAIT = 20.0
ITALIAN = ("Il consiglio comunale ha approvato il nuovo piano per le piste ciclabili. I lavori"
           " cominceranno in primavera e dureranno circa due anni, secondo il sindaco.")
ENGLISH = ("The town council approved the new plan for cycle lanes on Monday. Work will start"
           " in the spring and should take about two years, the mayor said.")
FEEDS = ("atom.xml", "rss.xml", "feed.json")


@pytest.fixture
def daemon(tmp_path: Path, hub: Hub) -> Iterator[FeederDaemon]:
    d = FeederDaemon(tmp_path / "site", hubs=[hub.url], config=CONFIG)
    an_hour_ago = time.time() - 3600  # older than `settle`: built by the first pass
    for body in (ITALIAN, ENGLISH):
        os.utime(d.write_seed("2026-01-05", body), (an_hour_ago, an_hour_ago))
    with d:
        topics = [d.url(f"lang/{code}/{name}") for code in ("it", "en") for name in FEEDS]
        d.wait_until(lambda: all(d.pinged_count(t) == 1 for t in [d.topic, *topics])
                     and not d.pending(), timeout=WAIT, what="the first build's pings")
        yield d
    assert "Traceback" not in d.log_text(), d.log_text()


def test_a_new_article_pings_and_reaches_only_its_language(
        hub: Hub, subscriber: Subscriber, daemon: FeederDaemon) -> None:
    it_topic, en_topic = daemon.url("lang/it/atom.xml"), daemon.url("lang/en/atom.xml")
    subscription = subscriber.subscribe(hub.url, it_topic)
    hub.wait_for_subscription(it_topic, subscription.callback)
    watched = [daemon.url(p) for p in FEEDS] + [
        daemon.url(f"lang/{code}/{name}") for code in ("it", "en") for name in FEEDS]
    before = {t: daemon.pinged_count(t) for t in watched}

    title = "Il mercato del sabato torna in piazza"
    daemon.write_seed("2026-01-06", f"{title}. Dopo due anni di lavori, il mercato contadino"
                                    " torna nella piazza del centro ogni sabato mattina.")
    delivery = subscriber.wait_for(lambda x: title.encode() in x.body, timeout=WAIT)
    assert delivery.signature_valid is True
    parsed = feedparser.parse(delivery.body)
    assert parsed.bozo == 0 and parsed.feed.id.endswith(":feed/lang/it")
    # every ping of that pass was queued together, before any was sent: none pending now
    # means every feed it changed was pinged
    daemon.wait_until(lambda: not daemon.pending() and all(
        daemon.pinged_count(t) > before[t] for t in watched if "/lang/en/" not in t),
        timeout=WAIT, what="the pings of the new article")
    after = {t: daemon.pinged_count(t) for t in watched}
    assert {t: after[t] - before[t] for t in watched} == {
        t: 0 if "/lang/en/" in t else 1 for t in watched}, daemon.log_text()
    assert subscriber.invalid_deliveries == []

    # conditional GET of a language feed, through the daemon's server
    first = daemon.get("lang/it/atom.xml")
    assert first.status_code == 200 and title.encode() in first.content
    assert f'<{it_topic}>; rel="self"' in first.headers.get_list("link")
    again = daemon.get("lang/en/atom.xml")
    for topic, response in ((it_topic, first), (en_topic, again)):
        not_modified = httpx.get(topic, headers={"If-None-Match": response.headers["etag"]},
                                 timeout=5.0)
        assert not_modified.status_code == 304
