"""Normal clients among 1,100 idle connections, with the daemon limited to 1024 descriptors.

    python bench/starve.py [--idle 1100] [--slow 50] [--requests 200] [--nofile 1024]

Starts ``feeder run`` under ``prlimit --nofile=N:N`` (util-linux; systemd's default soft
limit is 1024) on a temp folder with a few seeds, opens ``--idle`` connections that never
send a byte and ``--slow`` connections that trickle header bytes (one every 0.5 s), then
makes ``--requests`` GETs of /atom.xml one after another, each on a new connection (the same
number first without them, for comparison). Prints how many were served (200 with the whole
body), p50/p99/max latency, and the daemon's open descriptors and RSS. Target: every request
served, p99 < 1 s. Exits 1 if not.
Loopback only; uses the tests' harness (``tests/_daemon.py``, ``tests/_flood.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test harness is the package ``tests`` of this tree

from tests._flood import (  # noqa: E402
    LimitedDaemon,
    Outcome,
    SlowSenders,
    close_all,
    normal_requests,
    open_idle,
    raise_own_fd_limit,
)


def percentile(samples: list[float], p: float) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[round(p) - 1]


def process_figures(pid: int) -> str:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return f"{fds} open descriptors, RSS {int(rss) / 1024:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1100)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--nofile", type=int, default=1024)
    args = parser.parse_args(argv)
    if not raise_own_fd_limit(args.idle + args.slow + 256):
        sys.exit("this shell's hard RLIMIT_NOFILE is too low for the client side")

    with tempfile.TemporaryDirectory(prefix="feeder-starve-") as tmp:
        daemon = LimitedDaemon(Path(tmp), nofile=args.nofile)
        for n in range(3):
            daemon.write_seed("2026-01-05", f"Probe article {n}. Some text for the feed.")
        with daemon:
            assert daemon.proc is not None
            print(f"feeder run (pid {daemon.proc.pid}) under prlimit --nofile={args.nofile}:"
                  f"{args.nofile}: {process_figures(daemon.proc.pid)}")
            report("alone", normal_requests(daemon.port, args.requests), args.requests)
            start = time.monotonic()
            idle = open_idle(daemon.port, args.idle)
            print(f"opened {len(idle)} of {args.idle} idle connections in "
                  f"{time.monotonic() - start:.1f} s")
            try:
                with SlowSenders(daemon.port, args.slow).running() as slow:
                    print(f"{len(slow.socks)} slow header senders; daemon: "
                          f"{process_figures(daemon.proc.pid)}")
                    outcome = normal_requests(daemon.port, args.requests)
                    print(f"daemon after the requests: {process_figures(daemon.proc.pid)}")
            finally:
                close_all(idle)
    ok = report(f"among {len(idle)} idle and {args.slow} slow connections", outcome,
                args.requests)
    return 0 if ok else 1


def report(label: str, outcome: Outcome, wanted: int) -> bool:
    """Print what ``outcome`` holds; whether every request was served with p99 < 1 s."""
    served = len(outcome.latencies)
    line = f"{label}: served {served} of {wanted} normal requests"
    if served:
        ms = sorted(x * 1000 for x in outcome.latencies)
        line += (f"; latency p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms,"
                 f" max {ms[-1]:.1f} ms (target p99 < 1000 ms)")
    print(line)
    if outcome.failures:
        print(f"  failures (first 5 of {len(outcome.failures)}): {outcome.failures[:5]}")
    return served == wanted and percentile(outcome.latencies, 99) < 1.0


if __name__ == "__main__":
    sys.exit(main())
