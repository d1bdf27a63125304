"""When ``feeder run`` publishes: seeds written during start-up, a scheduled seed while a hub
hangs, and drop -> served latency.

    python bench/scheduling.py [--count 60] [--existing 100]

Three runs of ``python -m feeder run`` (this checkout, default settings unless said) on temp
folders, through the tests' harness (``tests/_daemon.py``, ``tests/_servers.py``):

1. Start-up: as soon as the daemon has taken its state file, 40 seeds are written 25 ms apart
   (a restart during an rsync); prints how long after the last write all 40 are in the
   served feed.json (polled over HTTP every 10 ms). Issue 11's goal: within 2 s.
2. Hung hub: a hub that accepts connections and never answers (``ping_timeout`` 10 s); once a
   ping hangs, a seed dated 3 s ahead is written; prints how long after its time it is in the
   served atom.xml. Goal: within 1 s.
3. Drop -> served: ``--existing`` seeds in the folder at start, one unmeasured warm-up seed,
   then ``--count`` seeds one at a time: from the seed's close() to atom.xml served over HTTP
   holding it (polled every 2 ms on one connection). Prints p50, p99, max and the passes
   ("built in" lines) they cost. Issue 13's goal: p50 <= 60 ms, p99 <= 200 ms.

Loopback only; everything lives in a temp folder removed at exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test harness is the package ``tests`` of this tree

from tests._daemon import FeederDaemon  # noqa: E402
from tests._servers import hanging_hub, http_client  # noqa: E402

START_SEEDS = 40
PACE = 0.025


def percentile(samples: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (statistics.quantiles, inclusive)."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[round(p) - 1]


def start_up(root: Path) -> float:
    """Seconds from the last of 40 writes during start-up until all 40 are served."""
    d = FeederDaemon(root).start(wait=False)
    try:
        d.wait_until(d.state.exists, timeout=30, interval=0.002, what="the state file")
        titles = set()
        pause = threading.Event()
        for i in range(START_SEEDS):
            title = f"Start-up seed number {i}"
            d.write_seed("2025-06-01", f"{title}. Some text.", name=f"start_{i:03d}.txt")
            titles.add(title)
            last = time.monotonic()
            pause.wait(PACE)
        d.wait_until(lambda: d.titles() >= titles, timeout=60, interval=0.01,
                     what="all start-up seeds served")
        return time.monotonic() - last
    finally:
        d.stop()


def hung_hub(root: Path) -> float:
    """Seconds from a scheduled seed's time until it is served, while every ping hangs."""
    with hanging_hub() as (hub, accepted):
        d = FeederDaemon(root, hubs=[hub], config={"websub": {"ping_timeout": 10}}).start()
        try:
            if not accepted.wait(10):
                raise SystemExit("the start-up build did not ping the hub")
            when = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).replace(microsecond=0)
            d.write_seed(when.isoformat(), "Due soon. Published at its time.", name="soon.txt")
            with http_client() as client:
                d.wait_until(lambda: b"Due soon" in client.get(d.url("atom.xml")).content,
                             timeout=30, interval=0.005, what="the scheduled seed")
            late = (dt.datetime.now(dt.UTC) - when).total_seconds()
            if d.health()["hubs"][hub] is not None:
                print("  (the ping did not hang throughout: figure not meaningful)")
        except BaseException:
            d.kill()
            raise
    d.stop()  # the hub has closed its connections: the hung ping ends
    return late


def drop_to_served(root: Path, count: int, existing: int) -> tuple[list[float], int]:
    d = FeederDaemon(root)
    for i in range(existing):
        d.write_seed("2025-01-01", f"Existing seed number {i}. Some text.", name=f"old_{i:05d}.txt")
    samples = []
    with d, http_client() as client:
        def served(needle: bytes) -> bool:
            return needle in client.get(d.url("atom.xml")).content

        before = 0
        for n in range(-1, count):  # one warm-up seed first
            title = f"Latency probe number {n + 1}"
            when = dt.datetime(2026, 1, 5, tzinfo=dt.UTC) + dt.timedelta(minutes=n + 1)
            d.write_seed(when.isoformat(), f"{title}. Some text about feeds.")
            closed = time.monotonic()  # write_seed returns after close()
            d.wait_until(partial(served, title.encode()), timeout=30, interval=0.002,
                         what=title)
            if n >= 0:
                samples.append(time.monotonic() - closed)
            else:
                before = d.log_text().count("built in")
        passes = d.log_text().count("built in") - before
    return samples, passes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="drop -> served probes")
    parser.add_argument("--existing", type=int, default=100, help="seeds in the folder at start")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="feeder-scheduling-") as tmp:
        root = Path(tmp)
        print(f"{START_SEEDS} seeds written during start-up: all served "
              f"{start_up(root / 'startup'):.2f} s after the last write", flush=True)
        print(f"hung hub: scheduled seed published {hung_hub(root / 'hung') * 1000:.0f} ms "
              f"after its time", flush=True)
        samples, passes = drop_to_served(root / "latency", args.count, args.existing)
    ms = [s * 1000 for s in samples]
    print(f"drop -> served over HTTP, {len(ms)} seeds into {args.existing} existing: "
          f"p50 {statistics.median(ms):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
          f"max {max(ms):.0f} ms; {passes} passes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
