"""Site check: what one new seed rewrites in a built site (HTML pages, sitemap files).

    python bench/site.py [--size 100000] [--data /work/bench-data] [--reps 5]

Builds ``--size`` generated seeds (bench/generate.py, kept under --data) into a fresh output
folder, in-process, then adds ``--reps`` new seeds one at a time; for each, prints the
time of ``Builder.build(names={new})``, the HTML files and the sitemap files it wrote, and
the bytes of the sitemap files written. Loopback only; nothing is served.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # noqa: E402

BASE = "http://127.0.0.1:8080/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data"))
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    from feeder.builder import Builder
    from feeder.config import load
    from feeder.store import Store

    seeds = args.data / f"seeds-{args.size}"
    if not seeds.is_dir() or len(list(seeds.iterdir())) < args.size:
        t0 = time.perf_counter()
        generate.generate(seeds, args.size)
        print(f"generated {args.size} seeds in {time.perf_counter() - t0:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="feeder-site-bench-"))
    try:
        fresh = work / "seeds"
        shutil.copytree(seeds, fresh)
        cfg = load(None, env={}, seeds=fresh, out=work / "out", state=work / "state.sqlite3",
                   base_url=BASE)
        store = Store(cfg.state)
        builder = Builder(cfg, store, progress=False)
        t0 = time.perf_counter()
        report = builder.build()
        print(f"cold build of {args.size}: {time.perf_counter() - t0:.1f} s, "
              f"{len(report.written)} files written, "
              f"{len(list((work / 'out').glob('sitemap-*.xml')))} sitemap chunks, "
              f"sitemap.xml {(work / 'out' / 'sitemap.xml').stat().st_size} bytes")
        today = dt.date.today().isoformat()
        for i in range(args.reps):
            name = f"zz{i:04d}.txt"
            (fresh / name).write_text(f" date {today} New article {i}. It is short.\n",
                                      encoding="utf-8")
            t0 = time.perf_counter()
            report = builder.build(names={name})
            ms = (time.perf_counter() - t0) * 1000
            html = sorted(p for p in report.written if p.endswith(".html"))
            maps = sorted(p for p in report.written if p.startswith("sitemap"))
            size = sum((work / "out" / p).stat().st_size for p in maps)
            print(f"new seed {i}: {ms:.0f} ms; {len(html)} HTML files {html}; "
                  f"sitemap files {maps} ({size} bytes)")
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
