"""``feeder run`` with its seeds folder emptied: the site stays until the operator confirms.

The operator of a running daemon confirms by raising ``max_delete_fraction`` in the config
file and reloading (SIGHUP); ``feeder build --allow-mass-delete`` needs the daemon stopped,
as it takes the state file's lock.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from .._daemon import FeederDaemon
from .._servers import serve_in_thread

pytestmark = pytest.mark.slow

SEEDS = 12
TIMEOUT = 20.0  # generous: the machine is shared
FEEDS = ("atom.xml", "rss.xml", "feed.json")


class CountingHub:
    """A WebSub hub on loopback that accepts every publish ping and counts them."""

    def __init__(self) -> None:
        self.pings = 0

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the whole request body before answering
            more = (await receive()).get("more_body", False)
        if scope["method"] == "POST":
            self.pings += 1
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def move_all(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for path in source.iterdir():
        os.rename(path, target / path.name)


def served(d: FeederDaemon) -> dict[str, bytes]:
    """The feeds and entry pages as served."""
    paths = [*FEEDS, *(f"entries/{i:03d}_a.html" for i in range(SEEDS))]
    return {p: d.get(p).content for p in paths}


def settled(d: FeederDaemon, since: str = "", **expected: object) -> dict | None:
    """/healthz, once it shows ``expected`` after a pass that started after ``since`` (a
    last_build time) and finished with no ping left to send."""
    health = d.health()
    build = health["last_build"]
    done = build.get("ok") and build["time"] > since and not health["pending_pings"]
    return health if done and all(health.get(k) == v for k, v in expected.items()) else None


def test_an_emptied_seeds_folder_is_held_until_the_setting_is_raised(daemon_factory, tmp_path):
    hub = CountingHub()
    with serve_in_thread(hub) as hub_url:
        config = tmp_path / "feeder.toml"
        config.write_text("[daemon]\nmax_delete_fraction = 0.5\n", encoding="utf-8")
        d = daemon_factory(hubs=[hub_url], config=config)
        for i in range(SEEDS):
            d.write_seed(f"2025-11-{i + 1:02d}", f"Article {i}. Body text.", f"{i:03d}_a.txt")
        d.start()
        # seeds written just before the start may wait ``settle`` for a second pass: so the
        # baseline is the pings once the entries are in and none is pending any more
        d.wait_until(lambda: (h := settled(d, entries=SEEDS, status="ok")) is not None
                     and h["last_build"].get("entries") == SEEDS and hub.pings >= 3,
                     timeout=TIMEOUT, what="the first build announced")
        before = served(d)
        announced = hub.pings
        away = tmp_path / "away"

        def after(change, what: str, **expected: object) -> dict:
            since = d.health()["last_build"]["time"]
            change()
            return d.wait_until(lambda: settled(d, since, **expected), timeout=TIMEOUT,
                                what=what)

        # an unmounted volume, or rsync from the wrong folder
        health = after(lambda: move_all(d.seeds, away), "the deletions held",
                       status="degraded", held_deletions=SEEDS)
        assert health["entries"] == SEEDS
        d.wait_for_log(f"holding the removal of {SEEDS} of {SEEDS} entries")
        assert served(d) == before
        assert hub.pings == announced

        # mounted again: nothing happens
        after(lambda: move_all(away, d.seeds), "the hold lifted", status="ok", held_deletions=0)
        assert served(d) == before
        assert hub.pings == announced

        after(lambda: move_all(d.seeds, away), "the deletions held again", status="degraded",
              held_deletions=SEEDS)
        config.write_text("[daemon]\nmax_delete_fraction = 1\n", encoding="utf-8")
        # the operator confirms
        after(lambda: d.signal(signal.SIGHUP), "the deletions made", status="ok",
              held_deletions=0, entries=0)
        assert d.feed().entries == []
        assert d.get("entries/000_a.html").status_code == 404
        # the three main feeds and the three of the seeds' language (en), all emptied
        d.wait_until(lambda: hub.pings == announced + 6, timeout=TIMEOUT,
                     what="the emptied feeds announced")
        d.stop()
