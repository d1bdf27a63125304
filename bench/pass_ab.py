"""One new seed, in-process, on two code trees at once: A/B under the same load.

    python bench/pass_ab.py BASE_CODE SITE_A SITE_B [--reps 30]

``BASE_CODE`` is a checkout of the commit to compare with (``git archive <commit> | tar -x
-C /tmp/base``); this checkout is B. ``SITE_A`` and ``SITE_B`` are two copies of one built
site (a folder with ``seeds/``, ``public/`` and ``state.sqlite3``, as ``scale.py`` leaves
under its data folder; ``cp -al`` of the site, then a real copy of ``state.sqlite3``, is
enough: outputs are replaced by rename, never changed in place). Two worker processes, one
per tree, take turns at one pass each (``Builder.build(names={new seed})``, the same pass as
``scale.py``'s "one new seed, in-process" row), so both see the same load from other work.
Prints, per tree, the median wall time, main-thread CPU and process CPU of a pass (the
first pass, which compiles the templates, left out). The new seeds are removed after.

``--writer MB`` runs a neighbour beside the passes: a process that writes ``MB`` megabytes
to a file beside ``SITE_B``, fdatasyncs it, and starts again (as another program's big
writes would), so the passes' flushes wait behind a busy disk; p90 and max are printed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8080/"


def new_seed(seeds: Path, i: int) -> tuple[str, str]:
    """``scale.new_seed``'s seed, written here: importing ``scale`` would put this checkout
    first on ``sys.path`` (it inserts its root there), and the base worker would then run
    this checkout's feeder, not its own."""
    stem = f"zz{i:04d}_{random.getrandbits(64):016x}"
    today = dt.date.today().isoformat()
    text = (f" date {today} A brand new article number {i} arrives in the folder today. "
            "The council will open the new library next week, people said.\n\nWhat next\n\n"
            "More text follows in a second paragraph, as every seed has.\n")
    (seeds / f"{stem}.txt").write_text(text, encoding="utf-8")
    return f"{stem}.txt", stem


def worker(site: Path) -> None:
    """Say which feeder this process imported, then read seed numbers from stdin, one pass
    each; print [wall, thread CPU, process CPU]."""
    import feeder
    from feeder.builder import Builder
    from feeder.config import load
    from feeder.normalizer import _identifier
    from feeder.store import Store

    cfg = load(None, env={}, seeds=site / "seeds", out=site / "public",
               state=site / "state.sqlite3", base_url=BASE)
    store = Store(cfg.state)
    builder = Builder(cfg, store, progress=False)
    _identifier(cfg.languages)
    added = []
    print(f"ready {Path(feeder.__file__).resolve()}", flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            break
        name, stem = new_seed(cfg.seeds, int(line))
        c0, t0 = time.thread_time(), time.perf_counter()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        report = builder.build(names={name})
        t1, c1 = time.perf_counter(), time.thread_time()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        assert report.added == [name] and stem.encode() in (cfg.out / "atom.xml").read_bytes()
        added.append(name)
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        print(json.dumps([t1 - t0, c1 - c0, cpu]), flush=True)
    for name in reversed(added):
        (cfg.seeds / name).unlink()
        builder.build(names={name})
    store.close()


def writer(path: Path, mb: int) -> None:
    """Write ``mb`` MB to ``path`` and fdatasync it, again and again, until killed."""
    block = b"\0" * (1 << 20)
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(mb):
                os.write(fd, block)
            os.fdatasync(fd)
        finally:
            os.close(fd)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]))
        return
    if sys.argv[1:2] == ["--writer"]:
        writer(Path(sys.argv[2]), int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_code", type=Path)
    ap.add_argument("site_a", type=Path)
    ap.add_argument("site_b", type=Path)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--writer", type=int, default=0, metavar="MB",
                    help="a neighbour writing and flushing MB megabytes at a time meanwhile")
    args = ap.parse_args()
    procs = {}
    for label, code, site in (("A (base)", args.base_code, args.site_a),
                              ("B (this)", ROOT, args.site_b)):
        # -P: the script's folder (this checkout's bench/) is not put on sys.path either
        proc = subprocess.Popen(
            [sys.executable, "-P", __file__, "--worker", str(site)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONPATH": str(code.resolve())})
        ready, _, loaded = proc.stdout.readline().strip().partition(" ")
        if ready != "ready":
            raise SystemExit(f"the worker for {code} on {site} did not start")
        want = (code / "feeder" / "__init__.py").resolve()
        print(f"  {label}: {loaded}")
        if Path(loaded) != want:
            for p in (*procs.values(), proc):
                p.kill()
            raise SystemExit(f"the worker for {code} imported {loaded}, not {want}")
        procs[label] = proc
    noise = None
    if args.writer:
        noise_file = args.site_b.resolve().parent / f".pass_ab-writer-{os.getpid()}"
        noise = subprocess.Popen([sys.executable, __file__, "--writer", str(noise_file),
                                  str(args.writer)])
    rows: dict[str, list[list[float]]] = {label: [] for label in procs}
    loads = []
    for i in range(args.reps):
        for label in list(procs)[::1 if i % 2 == 0 else -1]:  # alternate who goes first
            proc = procs[label]
            proc.stdin.write(f"{i}\n")
            proc.stdin.flush()
            rows[label].append(json.loads(proc.stdout.readline()))
        loads.append(os.getloadavg()[0])
    if noise is not None:
        noise.kill()
        noise.wait()
        noise_file.unlink(missing_ok=True)
    for proc in procs.values():
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        proc.wait()
    print(f"one new seed, in-process, {args.reps} passes each, alternating; "
          f"load average {min(loads):.1f}-{max(loads):.1f}")
    for label, done in rows.items():
        wall, thread, process = ([row[k] * 1000 for row in done[1:]] for k in range(3))
        tail = (f" (p90 {sorted(wall)[int(0.9 * (len(wall) - 1))]:.1f}, max {max(wall):.1f})"
                if args.writer else "")
        print(f"  {label}: wall median {statistics.median(wall):.1f} ms{tail}, main-thread "
              f"CPU median {statistics.median(thread):.1f} ms, process CPU median "
              f"{statistics.median(process):.1f} ms")


if __name__ == "__main__":
    main()
