"""The durable-write floor of one new seed's pass: writing and flush-renaming its files alone.

    python bench/pass_floor.py SITE [--reps 30]
    python bench/pass_floor.py --seeds DIR --out DIR --state FILE [--reps 30] [--json]

``SITE`` is a copy of a built site (as for ``pass_ab.py``: ``cp -al`` of the site
``scale.py`` left, then a real copy of ``state.sqlite3``; files are replaced by rename, never
changed in place). One pass of a new seed (``Builder.build(names={seed})``, this checkout's
feeder) says which files such a pass writes; then, ``--reps`` times, those very files (their
bytes as they are now, ``.gz`` siblings too) are written again, with no rendering and no
store, in two ways taken in turn:

- overlapped, as ``publish.py`` writes them since 070d081/42a0aef: every temp file written
  and fdatasync'ed at once, each on a thread of its own, then the first round's files (the
  entry pages, feeds, index and language files) renamed in order, then the second's (the
  archive pages and sitemap), then all their folders fsync'ed at once;
- in two rounds, as it wrote them before: each round's temp files written, then all
  fdatasync'ed at once on threads, renamed in order, and the folders of both rounds
  fsync'ed after the second.

Prints the median and p90 wall time of each and the main thread's CPU: what the pass could
not go below while it keeps every file durable, on this disk under this load. The new seed
is removed after.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

BASE = "http://127.0.0.1:8080/"
TAIL = ("archive/", "sitemap", "robots.txt")  # the second round's files


def files_of_a_pass(seeds: Path, out: Path, state: Path) -> list[str]:
    """The outputs (and their .gz siblings) one new seed's pass writes, relative to ``out``."""
    from feeder.builder import Builder
    from feeder.config import load
    from feeder.store import Store

    cfg = load(None, env={}, seeds=seeds, out=out, state=state, base_url=BASE)
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


def _temp(path: Path, data: bytes, flush: bool) -> tuple[str, Path]:
    """A temp file beside ``path`` holding ``data`` (fdatasync'ed if ``flush``)."""
    tmp = f"{path.parent}{os.sep}.{path.name}.floor-{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        if flush:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    return tmp, path


def _staged(job: tuple[Path, bytes]) -> tuple[str, Path]:
    """A temp file beside the path, written and fdatasync'ed."""
    return _temp(*job, flush=True)


def write_overlapped(out: Path, rounds: list[list[str]], data_of: dict[str, bytes],
                     pool: concurrent.futures.Executor) -> None:
    staged = list(pool.map(_staged, [(out / rel, data_of[rel]) for paths in rounds
                                     for rel in paths]))
    folders = set()
    for tmp, path in staged:  # in order: the first round's, then the second's
        os.replace(tmp, path)
        folders.add(path.parent)
    list(pool.map(_synced, sorted(folders), [True] * len(folders)))


def write_round(out: Path, paths: list[str], data_of: dict[str, bytes],
                pool: concurrent.futures.Executor, folders: set[Path],
                sync_folders: bool) -> None:
    staged = [_temp(out / rel, data_of[rel], flush=False) for rel in paths]
    list(pool.map(_synced, [tmp for tmp, _path in staged]))
    for tmp, path in staged:
        os.replace(tmp, path)
        folders.add(path.parent)
    if sync_folders:
        list(pool.map(_synced, sorted(folders), [True] * len(folders)))
        folders.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path, nargs="?",
                    help="a folder with seeds/, public/ and state.sqlite3")
    ap.add_argument("--seeds", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--state", type=Path)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--json", action="store_true", help="also print the medians as JSON")
    args = ap.parse_args()
    if args.site is not None:
        site = args.site.resolve()
        args.seeds, args.out, args.state = (site / "seeds", site / "public",
                                            site / "state.sqlite3")
    elif None in (args.seeds, args.out, args.state):
        ap.error("give SITE, or --seeds, --out and --state")
    out = args.out.resolve()
    paths = files_of_a_pass(args.seeds.resolve(), out, args.state.resolve())
    tail = [p for p in paths if p.startswith(TAIL)]
    head = [p for p in paths if p not in tail]
    data_of = {p: (out / p).read_bytes() for p in paths}
    size = sum(map(len, data_of.values()))
    walls: dict[str, list[float]] = {"overlapped": [], "in two rounds": []}
    cpus: dict[str, list[float]] = {"overlapped": [], "in two rounds": []}
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        for _ in range(args.reps):
            for way in walls:
                c0, t0 = time.thread_time(), time.perf_counter()
                if way == "overlapped":
                    write_overlapped(out, [head, tail], data_of, pool)
                else:
                    folders: set[Path] = set()
                    write_round(out, head, data_of, pool, folders, sync_folders=False)
                    write_round(out, tail, data_of, pool, folders, sync_folders=True)
                walls[way].append(time.perf_counter() - t0)
                cpus[way].append(time.thread_time() - c0)
    print(f"{len(paths)} files of one new seed's pass ({len(head)} + {len(tail)} in two "
          f"rounds, {size / 1024:.0f} KB), {args.reps} reps; load average "
          f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
    for way, times in walls.items():
        walls_ms = sorted(w * 1000 for w in times)
        print(f"  durable writes alone, {way}: wall median {statistics.median(walls_ms):.1f} "
              f"ms, p90 {walls_ms[int(0.9 * (len(walls_ms) - 1))]:.1f} ms; main-thread CPU "
              f"median {statistics.median(cpus[way]) * 1000:.1f} ms")
    if args.json:
        print(json.dumps({way: statistics.median(times) * 1000 for way, times in walls.items()}))


if __name__ == "__main__":
    main()
