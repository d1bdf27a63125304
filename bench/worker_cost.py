"""Where a cold build's per-seed CPU goes in the pool workers, step by step, in one process.

    python bench/worker_cost.py SEEDS [--limit N] [--profile]

For each seed, as the workers do it: read + hash (``sync.read_seed`` up to its hash), parse
(``seed.parse_seed``), normalize (the language detection apart), detect the languages (of
each chunk of ``sync.READ_CHUNK`` seeds, a worker's job), pickle the chunk's read results to the parent and
back, render the entry page, pickle the page job, write the page (one ``output.Batch`` per
``publish.PAGE_CHUNK`` pages, into a temp folder). Prints the CPU microseconds per seed of
each step (``time.process_time``), and with ``--profile`` the top functions of a cProfile
of the whole loop. Run it before and after a change, in the same minute (it runs on older
commits too: copy it there).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import inspect
import pickle
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feeder import normalizer, output, publish, render, sync  # noqa: E402
from feeder.errors import SeedError  # noqa: E402
from feeder.normalizer import Rules  # noqa: E402
from feeder.seed import parse_seed  # noqa: E402

# as a cold build's workers write them: known absent from the pass's listing (older commits:
# looked up)
ABSENT = ({"absent": True} if "absent" in inspect.signature(output.Batch.write).parameters
          else {})
STEPS = ("read+hash", "parse", "normalize", "language", "pickle result",
         "render page", "pickle page job", "write page")


def _stop(data: bytes, name: str) -> NoReturn:
    raise SeedError(name, "stopped")


def _default(text: str, default: str, languages: tuple[str, ...] = ()) -> str:
    return default


def run(seeds: list[Path], out: Path, rules: Rules, info: render.FeedInfo,
        cost: dict[str, float]) -> None:
    clock = time.process_time
    root = str(seeds[0].parent.resolve()) if seeds else None
    entries = []
    detect = normalizer.detect_language
    for start in range(0, len(seeds), sync.READ_CHUNK):  # a worker's job
        results, bodies = [], []
        for path in seeds[start:start + sync.READ_CHUNK]:
            t0 = clock()
            sync.parse_seed = _stop  # read_seed() up to its hash
            sync.read_seed(path, path.name, 4 << 20, rules, root)
            sync.parse_seed = parse_seed
            t1 = clock()
            data = path.read_bytes()
            doc = parse_seed(data, path.name)
            t2 = clock()
            normalizer.detect_language = _default  # normalize() without its detection...
            entry = normalizer.normalize(doc, path.stem, rules)
            normalizer.detect_language = detect
            t3 = clock()
            cost["read+hash"] += t1 - t0
            cost["parse"] += t2 - t1
            cost["normalize"] += t3 - t2
            bodies.append(" ".join(doc.paragraphs) or doc.blocks[0].text)
            results.append(sync.ReadResult(path.name, len(data), 0, "x" * 32, entry, "utf-8"))
        t0 = clock()  # ...which runs here, for the chunk
        languages = [detect(b, rules.default_language, rules.languages) for b in bodies]
        t1 = clock()
        results = [dataclasses.replace(r, entry=dataclasses.replace(r.entry, language=lang))
                   for r, lang in zip(results, languages, strict=True)]
        t2 = clock()
        pickle.loads(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
        t3 = clock()
        cost["language"] += t1 - t0
        cost["pickle result"] += t3 - t2
        entries += [r.entry for r in results]
    for start in range(0, len(entries), publish.PAGE_CHUNK):
        chunk = entries[start:start + publish.PAGE_CHUNK]
        items = [(e, render.Neighbour(e.title, e.slug, e.language), None) for e in chunk]
        t0 = clock()
        pages = [render.render_entry_page(info, e, p, n) for e, p, n in items]
        t1 = clock()
        pickle.loads(pickle.dumps(("pages", info, out, items), protocol=pickle.HIGHEST_PROTOCOL))
        t2 = clock()
        with output.Batch() as batch:
            for (e, _p, _n), data in zip(items, pages, strict=True):
                batch.write(out / render.entry_path(e), data, compress=False, **ABSENT)
        t3 = clock()
        cost["render page"] += t1 - t0
        cost["pickle page job"] += t2 - t1
        cost["write page"] += t3 - t2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("seeds", type=Path)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    seeds = sorted(args.seeds.glob("*.txt"))
    if args.limit:
        seeds = seeds[:args.limit]
    rules = Rules(authority="example.org", tag_date="2025")
    info = render.FeedInfo("Bench", "sub", "me", "http://127.0.0.1:8080/", "en",
                           "tag:example.org,2025:feed")
    normalizer._identifier(())  # the model loaded before timing, as in the fork server
    cost = dict.fromkeys(STEPS, 0.0)
    out = Path(tempfile.mkdtemp(prefix="worker-cost-"))
    profiler = cProfile.Profile() if args.profile else None
    try:
        t0 = time.process_time()
        if profiler is not None:
            profiler.enable()
        run(seeds, out, rules, info, cost)
        if profiler is not None:
            profiler.disable()
        total = time.process_time() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    n = len(seeds)
    print(f"{n} seeds from {args.seeds}; CPU per seed, in-process (µs):")
    for step in STEPS:
        print(f"  {step:26} {cost[step] / n * 1e6:8.1f}")
    print(f"  {'total':26} {sum(cost.values()) / n * 1e6:8.1f}   (loop {total / n * 1e6:.1f})")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
