"""What the start-up check of the state file costs: SQLite's quick_check, cold and warm.

    python bench/state_check.py STATE [--repeat 3]

Make a large state first, e.g. ``python bench/generate.py /tmp/s 100000`` then ``feeder build
--seeds /tmp/s --out /tmp/o --state /tmp/state.sqlite3``; stop every feeder using it. "Cold"
drops the file's pages from the page cache first (posix_fadvise DONTNEED), as after a
reboot. Prints the file's size, then the best of ``--repeat`` for: quick_check cold and warm,
integrity_check warm, and ``Store.open_locked`` (lock, check, open; cold and warm) against
``Store`` (open only), warm. The writer's start runs quick_check only when reading the first
row of each table meets damage, so a sound file opens in about the time of ``Store``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from feeder.store import Store  # noqa: E402


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def best(repeat: int, work: Callable[[], object], before: Callable[[], object] = lambda: None
         ) -> float:
    times = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def pragma(path: Path, name: str) -> None:
    db = sqlite3.connect(path)
    (result,) = db.execute(f"PRAGMA {name}").fetchone()
    db.close()
    assert result == "ok", result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path, n = args.state, args.repeat
    with Store(path) as store:
        entries = store.total()
    print(f"{path}: {entries} entries, {path.stat().st_size / 1e6:.0f} MB")
    rows = [
        ("quick_check, cold", best(n, lambda: pragma(path, "quick_check"),
                                   lambda: drop_cache(path))),
        ("quick_check, warm", best(n, lambda: pragma(path, "quick_check"))),
        ("integrity_check, warm", best(n, lambda: pragma(path, "integrity_check"))),
        ("Store.open_locked (checked), cold", best(n, lambda: Store.open_locked(path).close(),
                                                   lambda: drop_cache(path))),
        ("Store.open_locked (checked), warm", best(n, lambda: Store.open_locked(path).close())),
        ("Store (not checked), warm", best(n, lambda: Store(path).close())),
    ]
    for what, seconds in rows:
        print(f"  {what:36s} {seconds * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
