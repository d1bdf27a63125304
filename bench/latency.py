"""Publishing latency of ``feeder run``: from a seed's close() to the entry in atom.xml.

    python bench/latency.py [--count 120] [--existing N] [--keep]

Starts ``python -m feeder run`` (this checkout, default debounce and settle) on a temp
folder, optionally pre-filled with N seeds, waits for its first build, then COUNT times:
writes one seed (open/write/close), records the time of close(), and polls ``atom.xml`` on
disk (stat, then read when the mtime or size changed) until it holds the new entry's id.
Prints median, p90, p99 and max in ms, and how many rebuilds ("built in" lines) the log
shows. Loopback only; stops the daemon with SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLL = 0.001


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(i: int, day: int = 5) -> bytes:
    """Probes are dated one minute apart from 2026-01-05, so each is the newest entry."""
    when = dt.datetime(2026, 1, day, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
    return (f" date {when.isoformat()} Latency probe number {i}. This is a test article about "
            f"feeds, written by bench/latency.py.\n\nMore text here.").encode()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def wait_for(path: Path, needle: bytes, timeout: float, last: list) -> float:
    """Poll ``path`` until it contains ``needle``; return the monotonic time it did."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        try:
            st = os.stat(path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            if key != last[0]:
                last[0] = key
                if needle in path.read_bytes():
                    return time.monotonic()
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{needle!r} not in {path} after {timeout}s")
        pause.wait(POLL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=120, help="seeds to publish one by one")
    ap.add_argument("--existing", type=int, default=0, help="seeds in the folder at start")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="feeder-latency-"))
    seeds, out = tmp / "seeds", tmp / "out"
    seeds.mkdir()
    for i in range(args.existing):
        (seeds / f"old_{i:06d}.txt").write_bytes(seed(i, day=1))
    port = free_port()
    log_path = tmp / "daemon.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "feeder", "run", "--seeds", str(seeds), "--out", str(out),
           "--state", str(tmp / "state.sqlite3"), "--port", str(port),
           "--base-url", f"http://127.0.0.1:{port}/"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    atom = out / "atom.xml"
    last: list = [None]
    try:
        t0 = time.monotonic()
        expected = b"<title>feeder</title>"
        wait_for(atom, expected, 120, last)
        # the first build is done when its log line is there
        while log_path.read_text().count("built in") < 1:
            threading.Event().wait(0.01)
        print(f"daemon up, first build done in {time.monotonic() - t0:.1f} s "
              f"({args.existing} existing seeds)")
        # warm up (language model, caches) with one seed that is not measured
        (seeds / "warmup.txt").write_bytes(seed(0))
        wait_for(atom, b":warmup</id>", 60, last)
        builds_before = log_path.read_text().count("built in")

        latencies: list[float] = []
        for i in range(args.count):
            name = f"probe_{i:04d}"
            with open(seeds / f"{name}.txt", "wb") as fh:
                fh.write(seed(i + 1))
            closed = time.monotonic()
            done = wait_for(atom, f":{name}</id>".encode(), 30, last)
            latencies.append((done - closed) * 1000)
        builds = log_path.read_text().count("built in") - builds_before
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
            print("daemon did not stop within 10 s of SIGTERM")
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    print(f"{len(latencies)} seeds, close() -> entry in atom.xml on disk:")
    print(f"  median {statistics.median(latencies):.0f} ms, "
          f"p90 {percentile(latencies, 90):.0f} ms, p99 {percentile(latencies, 99):.0f} ms, "
          f"max {max(latencies):.0f} ms")
    print(f"  rebuilds in the log: {builds} (for {len(latencies)} seeds); daemon exit {code}")


if __name__ == "__main__":
    main()
