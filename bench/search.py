"""Search index: what Pagefind costs on a built site of N generated seeds.

    python bench/search.py [--sizes 1000,10000] [--data /work/bench-data]

For each size: builds the generated seeds (bench/generate.py, kept under --data) into a fresh
output folder in-process, then prints the wall time of ``search.update`` (Pagefind over every
entry page, and the swap), Pagefind's peak RSS, the pages indexed and the index's files and
bytes; then the same after one new seed (Pagefind is not incremental: it indexes all again).
Needs ``pip install 'feeder[search]'``. Loopback only; nothing is served.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # noqa: E402

BASE = "http://127.0.0.1:8080/"


def index_size(out: Path) -> tuple[int, int]:
    files = [p for p in (out / "pagefind").resolve().rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def timed_update(cfg, report) -> str:  # noqa: ANN001
    from feeder import search

    t0 = time.perf_counter()
    line = search.update(cfg, report, force=True)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    files, size = index_size(cfg.out)
    return (f"{seconds:.1f} s wall, Pagefind peak RSS so far {rss:.0f} MB, {files} files, "
            f"{size / 1e6:.1f} MB ({line})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data"))
    args = parser.parse_args()

    from feeder import search
    from feeder.builder import Builder
    from feeder.config import load
    from feeder.store import Store

    if search.executable() is None:
        sys.exit(f"Pagefind is not installed: {search.INSTALL}")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    for size in (int(s) for s in args.sizes.split(",")):
        seeds = args.data / f"seeds-{size}"
        if not seeds.is_dir() or len(list(seeds.iterdir())) < size:
            generate.generate(seeds, size)
        work = Path(tempfile.mkdtemp(prefix="feeder-search-bench-"))
        try:
            fresh = work / "seeds"
            shutil.copytree(seeds, fresh)
            cfg = load(None, env={}, seeds=fresh, out=work / "out",
                       state=work / "state.sqlite3", base_url=BASE, search=True)
            with Store(cfg.state) as store:
                builder = Builder(cfg, store, progress=False)
                t0 = time.perf_counter()
                report = builder.build()
                print(f"{size}: cold build {time.perf_counter() - t0:.1f} s; "
                      f"index: {timed_update(cfg, report)}")
                (fresh / "zz.txt").write_text(f" date {dt.date.today()} A new article. Short.\n",
                                              encoding="utf-8")
                report = builder.build(names={"zz.txt"})
                print(f"{size}: after one new seed, index: {timed_update(cfg, report)}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
