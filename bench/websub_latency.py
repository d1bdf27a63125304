"""WebSub delivery latency: from a seed file's close to the subscriber receiving the feed.

    python bench/websub_latency.py [--count 30] [--debounce 0.2] [--settle 1.0]

Starts a real Flask-WebSub hub (web + Celery worker), a subscriber and ``feeder run``
(subprocesses on loopback; the test harness: ``tests/_daemon.py`` and ``tests/e2e``),
subscribes to ``atom.xml``, then writes ``--count`` seeds one at a time. Each sample is the
time from the ``close()`` of a new seed to the hub's signed POST of an ``atom.xml`` that
holds its title, on one monotonic clock. Prints every sample, then median, p90, p99 and max.
Omitted options use feeder's defaults. Everything lives in a temp folder removed at exit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test harness is the package ``tests`` of this tree

from tests._daemon import FeederDaemon  # noqa: E402
from tests.e2e.subscriber import Subscriber  # noqa: E402
from tests.e2e.websub_hub import run_hub  # noqa: E402


def percentile(samples: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (statistics.quantiles, inclusive)."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[round(p) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30, help="seeds to time (default 30)")
    parser.add_argument("--debounce", type=float, help="[daemon] debounce (default: feeder's)")
    parser.add_argument("--settle", type=float, help="[daemon] settle (default: feeder's)")
    parser.add_argument("--timeout", type=float, default=20.0, help="per-seed wait, seconds")
    args = parser.parse_args(argv)
    daemon_cfg = {k: v for k, v in (("debounce", args.debounce), ("settle", args.settle))
                  if v is not None}
    config = {"daemon": daemon_cfg} if daemon_cfg else {}

    with tempfile.TemporaryDirectory(prefix="websub-latency-") as tmp:
        root = Path(tmp)
        with run_hub(root) as hub, Subscriber() as sub:
            daemon = FeederDaemon(root / "site", hubs=[hub.url], config=config)
            with daemon:
                subscription = sub.subscribe(hub.url, daemon.topic)
                hub.wait_for_subscription(daemon.topic, subscription.callback)
                samples = []
                # one warm-up seed: the first build in a fresh process loads templates etc.
                for n in range(-1, args.count):
                    title = f"Latency probe number {n + 1} of {args.count}"
                    daemon.write_seed("2026-01-05", f"{title}. Body text for the probe.")
                    closed = time.monotonic()  # write_seed returns after close()
                    delivery = sub.wait_for(lambda d, t=title: t.encode() in d.body,
                                            timeout=args.timeout)
                    if delivery.signature_valid is not True:
                        raise SystemExit(f"bad signature on delivery of {title!r}")
                    if n >= 0:
                        samples.append(delivery.received_at - closed)
                        print(f"{n + 1:3d}  {samples[-1] * 1000:7.1f} ms", flush=True)
                pings = daemon.pinged_count(daemon.topic)
    print(f"\nseed close -> subscriber delivery, {len(samples)} seeds, "
          f"debounce={args.debounce if args.debounce is not None else 'default'}, "
          f"settle={args.settle if args.settle is not None else 'default'}:")
    print(f"  median {statistics.median(samples) * 1000:7.1f} ms")
    print(f"  p90    {percentile(samples, 90) * 1000:7.1f} ms")
    print(f"  p99    {percentile(samples, 99) * 1000:7.1f} ms")
    print(f"  max    {max(samples) * 1000:7.1f} ms")
    print(f"  ({pings} pings logged for atom.xml, including the start-up build's)")
    return 0 if percentile(samples, 99) < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
