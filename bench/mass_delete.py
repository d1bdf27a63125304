"""What the mass-deletion guard costs a pass of the daemon that deletes a seed.

    python bench/mass_delete.py [--seeds 1000,10000,100000] [--repeat 5]

A pass for the watcher's names that would remove an entry (or runs while a removal is held)
looks at the whole seeds folder (one ``listdir``) and at every seed in the store, so that a
burst of deletions spread over several passes is judged as one. This prints that check's
median time for folders of each size
(seed and entry rows are put straight into a fresh store; nothing is rendered).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feeder.store import Store  # noqa: E402
from feeder.sync import missing_entries  # noqa: E402


def fill(root: Path, count: int) -> Store:
    seeds = root / "seeds"
    seeds.mkdir()
    store = Store(root / "state.sqlite3")
    now = dt.datetime.now(dt.UTC).isoformat()
    names = [f"{i:06d}.txt" for i in range(count)]
    with store.transaction():
        store.db.executemany("INSERT INTO seeds VALUES (?, 1, 1, 'h', NULL, ?, ?)",
                             [(n, now, now) for n in names])
        store.db.executemany(
            "INSERT INTO entries (id, name, stem, slug, title, summary, content_html, published,"
            " updated, language, pub_ts) VALUES (?, ?, ?, ?, 't', 's', 'c', ?, ?, 'en', 0)",
            [(f"tag:x,2025:{n}", n, n[:-4], n[:-4], now, now) for n in names])
    for name in names:
        (seeds / name).touch()
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| seeds | whole-folder check, median |")
    print("|---|---|")
    for count in map(int, args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            store = fill(root, count)
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                assert missing_entries(store, root / "seeds") == 0
                times.append(time.perf_counter() - t0)
            store.close()
        print(f"| {count:,} | {statistics.median(times) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
