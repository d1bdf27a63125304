"""The durable-write floor of one new seed's pass: writing and flush-renaming its files alone.

    python bench/pass_floor.py SITE [--reps 30]

``SITE`` is a copy of a built site (as for ``pass_ab.py``: ``cp -al`` of the site
``scale.py`` left, then a real copy of ``state.sqlite3``; files are replaced by rename, never
changed in place). One pass of a new seed (``Builder.build(names={seed})``, this checkout's
feeder) says which files such a pass writes; then, ``--reps`` times, those very files (their
bytes as they are now, ``.gz`` siblings too) are written again as a pass writes them, with
no rendering and no store: in two rounds, as ``publish.py`` does (the entry pages, feeds,
index and language files, then the archive pages and sitemap), each round a temp file per
file, all fdatasync'ed at once on threads, renamed in order, then their folders fsync'ed at
once (the first round's with the second's). Prints the median and p90 wall time of the
rounds and the main thread's CPU: what the pass could not go below while it keeps every file
durable, on this disk under this load. The new seed is removed after.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path

BASE = "http://127.0.0.1:8080/"
TAIL = ("archive/", "sitemap", "robots.txt")  # the second round's files


def files_of_a_pass(site: Path) -> list[str]:
    """The outputs (and their .gz siblings) one new seed's pass writes, relative to public/."""
    from feeder.builder import Builder
    from feeder.config import load
    from feeder.store import Store

    cfg = load(None, env={}, seeds=site / "seeds", out=site / "public",
               state=site / "state.sqlite3", base_url=BASE)
    store = Store(cfg.state)
    builder = Builder(cfg, store, progress=False)
    stem = f"zzfloor_{random.getrandbits(64):016x}"
    name = f"{stem}.txt"
    (cfg.seeds / name).write_text(
        f" date {dt.date.today().isoformat()} A brand new article arrives in the folder today. "
        "The council will open the new library next week, people said.\n\nWhat next\n\n"
        "More text follows in a second paragraph, as every seed has.\n", encoding="utf-8")
    try:
        written = builder.build(names={name}).written
    finally:
        (cfg.seeds / name).unlink()
        builder.build(names={name})
        store.close()
    return [p for path in written for p in (path, f"{path}.gz")
            if (cfg.out / p).is_file()]


def _synced(path: str | Path, folder: bool = False) -> None:
    """fdatasync a written file, or fsync a folder (its renames)."""
    fd = os.open(path, (os.O_RDONLY if folder else os.O_WRONLY) | os.O_CLOEXEC)
    try:
        (os.fsync if folder else os.fdatasync)(fd)
    finally:
        os.close(fd)


def write_round(out: Path, paths: list[str], data_of: dict[str, bytes],
                pool: concurrent.futures.Executor, folders: set[Path],
                sync_folders: bool) -> None:
    staged = []
    for rel in paths:
        path, data = out / rel, data_of[rel]
        tmp = f"{path.parent}{os.sep}.{path.name}.floor-{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        staged.append((tmp, path))

    list(pool.map(_synced, [tmp for tmp, _path in staged]))
    for tmp, path in staged:
        os.replace(tmp, path)
        folders.add(path.parent)
    if sync_folders:
        list(pool.map(_synced, sorted(folders), [True] * len(folders)))
        folders.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    site = args.site.resolve()
    paths = files_of_a_pass(site)
    tail = [p for p in paths if p.startswith(TAIL)]
    head = [p for p in paths if p not in tail]
    out = site / "public"
    data_of = {p: (out / p).read_bytes() for p in paths}
    size = sum(map(len, data_of.values()))
    walls, cpus = [], []
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        for _ in range(args.reps):
            folders: set[Path] = set()
            c0, t0 = time.thread_time(), time.perf_counter()
            write_round(out, head, data_of, pool, folders, sync_folders=False)
            write_round(out, tail, data_of, pool, folders, sync_folders=True)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
    walls_ms = sorted(w * 1000 for w in walls)
    print(f"{len(paths)} files of one new seed's pass ({len(head)} + {len(tail)} in two "
          f"rounds, {size / 1024:.0f} KB), {args.reps} reps; load average "
          f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
    print(f"  durable writes alone: wall median {statistics.median(walls_ms):.1f} ms, "
          f"p90 {walls_ms[int(0.9 * (len(walls_ms) - 1))]:.1f} ms; main-thread CPU median "
          f"{statistics.median(cpus) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
