"""When passes run, seen from outside: seeds written while ``feeder run`` starts, during
rescans, and while a hub hangs are all published (issue 11, items 1 and 9)."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest

from .._daemon import FeederDaemon, seed_bytes
from .._servers import hanging_hub

pytestmark = pytest.mark.slow

SEEDS = 40
PACE = 0.025  # seconds between two writes: 40 seeds span about a second


def write_paced(d: FeederDaemon, count: int, prefix: str) -> list[str]:
    """Write ``count`` seeds at a steady pace, like an rsync; return their titles."""
    titles = []
    pause = threading.Event()
    for i in range(count):
        title = f"{prefix} seed number {i}"
        d.write_seed("2025-06-01", f"{title}. Some text about feeds.", name=f"{prefix}_{i:03d}.txt")
        titles.append(title)
        pause.wait(PACE)  # the writer's pace, not synchronisation
    return titles


def test_seeds_written_during_start_up_are_all_served(daemon_factory):
    """A restart during an rsync: the daemon takes its state file first, then starts watching,
    serving and building; seeds land throughout."""
    d = daemon_factory().start(wait=False)
    d.wait_until(d.state.exists, timeout=30, interval=0.005, what="the state file")
    titles = write_paced(d, SEEDS, "startup")
    d.wait_until(lambda: d.titles() >= set(titles), timeout=30, interval=0.1,
                 what=f"all {SEEDS} seeds in feed.json")
    d.wait_until(lambda: d.health()["status"] == "ok", what="/healthz to say ok")


def test_seeds_written_during_rescans_are_all_served_whole(daemon_factory):
    """A rescan puts aside a file still being written; the file comes back ``settle`` seconds
    later (its writer has closed it by then), not after the short ``debounce``."""
    d = daemon_factory(config={"daemon": {"rescan_interval": 1.0, "settle": 2.0}}).start()
    def slow_writer() -> None:
        with open(d.seeds / "slow.txt", "wb") as fh:
            fh.write(seed_bytes("2025-06-02", "Slowly written. FIRSTHALF of the text"))
            fh.flush()
            threading.Event().wait(1.5)  # a slow writer (a rescan falls inside), not a sync
            fh.write(b" and SECONDHALF of the text.")

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        titles = write_paced(d, SEEDS, "rescan")
    finally:
        writer.join()
    d.wait_until(lambda: d.titles() >= {*titles, "Slowly written"}, timeout=30, interval=0.1,
                 what=f"all {SEEDS + 1} seeds in feed.json")
    assert "SECONDHALF" in d.get("feed.json").text
    assert d.log_lines("changed slow.txt") == [], "slow.txt was published half-written"


def test_hung_hub_delays_no_scheduled_seed(daemon_factory):
    with hanging_hub() as (hub, accepted):
        d = daemon_factory(hubs=[hub], config={"websub": {"ping_timeout": 10}}).start()
        assert accepted.wait(10), "the start-up build did not ping the hub"
        # the ping hangs now (for 10 s); a seed comes due in 2-3 s meanwhile
        when = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).replace(microsecond=0)
        d.write_seed(when.isoformat(), "Due soon. Published at its time.", name="soon.txt")
        d.wait_for_log("scheduled soon.txt")
        d.wait_until(lambda: b"Due soon" in d.get("atom.xml").content, timeout=30,
                     interval=0.05, what="the scheduled seed in atom.xml")
        late = (dt.datetime.now(dt.UTC) - when).total_seconds()
        assert late < 5, f"published {late:.1f} s after its time"
        assert d.health()["hubs"][hub] is None, "the ping was supposed to hang still"
    d.stop()


def test_a_file_name_that_is_not_utf8_stops_no_pass(daemon_factory):
    """Written while the daemon runs, such a name reaches a named pass, whose store lookups
    cannot encode it: every pass failed, and nothing more was published until a restart."""
    d = daemon_factory().start()
    bad = os.path.join(os.fsencode(d.seeds), b"caf\xe9.txt")  # a Latin-1 name
    with open(bad, "wb") as fh:
        fh.write(seed_bytes("2026-01-04", "A Latin-1 file name. Some text."))
    d.write_seed("2026-01-05", "Written after the bad name. Some text.", name="after.txt")
    d.wait_for_entry("Written after the bad name")
    body = d.wait_until(lambda: (h := d.health())["rejected_count"] == 1 and h,
                        what="the bad name listed as rejected")
    assert body["status"] == "ok"
    assert "not valid UTF-8" in body["rejected"][0]["reason"]


def test_sigterm_does_not_wait_for_a_hung_ping(daemon_factory):
    """feeder.service gives a stop 10 s (TimeoutStopSec); ping_timeout may be 120 s. The ping
    stays pending in the state file and is sent after the next start."""
    with hanging_hub() as (hub, accepted):
        d = daemon_factory(hubs=[hub], config={"websub": {"ping_timeout": 60}}).start()
        assert accepted.wait(10), "the start-up build pinged no hub"
        d.stop()  # fails unless it exits 0 within 5 s (STOP_TIMEOUT)
    assert d.log_lines("sent again at the next start")
