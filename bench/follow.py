"""How fast ``feeder run`` follows its folders by path.

    python bench/follow.py [--existing 1000] [--count 10]

Starts ``feeder run`` (the tests' harness, ``tests/_daemon.py``; default settings, so the
rescan every 300 s cannot help) with a seeds folder that is a symlink to a release folder
of N generated seeds (``bench/generate.py``). Then, ``--count`` times each, it

1. prepares the next release (the current seeds hard-linked, plus one new seed whose mtime
   is a minute back, as a release copied with ``rsync -a`` or made ahead of time leaves
   it), swaps the symlink (``ln -s release seeds.new && mv -T seeds.new seeds``), and
   times from the swap until ``atom.xml``, over HTTP, holds the new seed;
2. does the same with the new seed written just before the swap: a full pass cannot tell
   whether such a file's writer has closed it, so it puts it aside for a while;
3. deletes the output folder (``rm -rf``) and times until ``/healthz`` says "ok" again,
   which it says only once every output has been written again, then checks that every
   file is back.

Prints each sample, then the median and max of each. Loopback only; everything lives in a
temp folder removed at exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test harness is the package ``tests`` of this tree
sys.path.insert(0, str(ROOT / "bench"))

from generate import generate  # noqa: E402

from tests._daemon import FeederDaemon, seed_bytes  # noqa: E402

POLL = 0.002


def wait(check: Callable[[], bool], timeout: float = 30.0) -> float:
    """Poll ``check`` until true; return the monotonic time it was."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s")
        pause.wait(POLL)
    return time.monotonic()


class Releases:
    """release0, release1, ... beside a ``seeds`` symlink to the current one."""

    def __init__(self, root: Path, existing: int) -> None:
        self.root = root
        self.n = 0
        generate(self.path(0), existing)
        self.link = root / "seeds"
        self.link.symlink_to("release0")

    def path(self, n: int) -> Path:
        return self.root / f"release{n}"

    def prepare(self, name: str, data: bytes, fresh: bool) -> None:
        """The next release: this one's seeds hard-linked, plus ``name``."""
        old, new = self.path(self.n), self.path(self.n + 1)
        new.mkdir()
        for entry in os.scandir(old):
            os.link(entry.path, new / entry.name)
        (new / name).write_bytes(data)
        if not fresh:
            back = time.time() - 60
            os.utime(new / name, (back, back))

    def swap(self) -> float:
        """Point ``seeds`` at the prepared release; returns the time of the swap."""
        self.n += 1
        tmp = self.root / "seeds.new"
        tmp.symlink_to(self.path(self.n).name)
        os.rename(tmp, self.link)
        swapped = time.monotonic()
        shutil.rmtree(self.path(self.n - 1))  # after the clock: not part of the sample
        return swapped


def summary(label: str, samples: list[float]) -> str:
    return (f"{label} {statistics.median(samples) * 1000:.0f} ms later "
            f"(median of {len(samples)}; max {max(samples) * 1000:.0f} ms)")


def files(folder: Path) -> set[str]:
    """The outputs in ``folder`` (not the temp files of a write in progress)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, default=1000, help="seeds in the release")
    parser.add_argument("--count", type=int, default=10, help="samples of each kind")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="follow-") as tmp, httpx.Client() as http:
        root = Path(tmp)
        releases = Releases(root, args.existing)
        daemon = FeederDaemon(root, seeds=releases.link)
        with daemon:
            def holds(needle: bytes) -> bool:
                return needle in http.get(daemon.url("atom.xml")).content

            results = {}
            for fresh in (False, True):
                samples = []
                for i in range(args.count):
                    when = dt.datetime(2025, 6, 1, tzinfo=dt.UTC) + dt.timedelta(
                        minutes=len(results) * args.count + i)
                    name = f"zz_{'fresh' if fresh else 'ahead'}_{i:03d}.txt"
                    releases.prepare(name, seed_bytes(when.isoformat(), f"Release probe "
                                     f"{name}. Some text about feeds."), fresh)
                    swapped = releases.swap()
                    samples.append(wait(lambda n=name: holds(Path(n).stem.encode()))
                                   - swapped)
                    print(f"swap, seed {'written just before' if fresh else 'made ahead'}:"
                          f" {samples[-1] * 1000:7.1f} ms", flush=True)
                results[fresh] = samples

            def quiet() -> bool:
                """No pass for half a second: an ``rm -rf`` racing a write would fail."""
                last = http.get(daemon.url("healthz")).json()["last_build"].get("time")
                threading.Event().wait(0.5)
                return last == http.get(daemon.url("healthz")).json()["last_build"].get("time")

            wait(quiet)
            before = files(daemon.out)
            rewrites = []
            for _ in range(args.count):
                wait(quiet)
                shutil.rmtree(daemon.out)
                gone = time.monotonic()
                done = wait(lambda: http.get(daemon.url("healthz")).json()["status"] == "ok")
                rewrites.append(done - gone)
                missing = before - files(daemon.out)
                if missing:
                    raise SystemExit(f"not written again: {sorted(missing)[:5]}")
                print(f"output folder deleted: {rewrites[-1] * 1000:7.1f} ms", flush=True)

    print(f"\n{args.existing + 2 * args.count} seeds ({len(before)} output files), "
          f"feeder's default settings, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores:")
    print(summary("after a symlink swap of the seeds folder, a new seed is served",
                  results[False]))
    print("  " + summary("with the new seed written just before the swap (put aside as maybe "
                         "still being written), it is served", results[True]))
    print(summary("after the output folder is deleted, it is re-written", rewrites))
    return 0


if __name__ == "__main__":
    sys.exit(main())
