"""The periodic rescan (a full pass with nothing changed), in-process, on two code trees.

    python bench/rescan_ab.py BASE_CODE SITE_A SITE_B [--reps 6] [--profile OUT]

``BASE_CODE`` is a checkout of the commit to compare with (``git archive <commit> | tar -x
-C /tmp/base``); this checkout is B. ``SITE_A`` and ``SITE_B`` are two copies of one built
site (``cp -al`` of it, then a real copy of ``state.sqlite3``). Each worker keeps one Builder
(as the daemon does) and runs one full pass first (the daemon's start-up pass, left out of
the figures), then the two take turns at one full pass each, alternating who goes first.
Prints, per tree, median and max wall time, and median process CPU, of a rescan, and the
wall time of the start-up pass (both trees' at once: only a rough figure).
``--profile OUT`` writes a cProfile of B's last rescan to OUT instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8080/"


def worker(site: Path, profile: str | None) -> None:
    """Read lines from stdin, one full pass each; print [wall, process CPU]."""
    from feeder.builder import Builder
    from feeder.config import load
    from feeder.store import Store

    cfg = load(None, env={}, seeds=site / "seeds", out=site / "public",
               state=site / "state.sqlite3", base_url=BASE)
    store = Store(cfg.state)
    builder = Builder(cfg, store, progress=False)
    t0 = time.perf_counter()
    builder.build(None)  # the start-up pass: every page read and hashed
    print(f"ready {time.perf_counter() - t0:.3f}", flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            break
        prof = None
        if profile and line.strip() == "last":
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        report = builder.build(None)
        t1 = time.perf_counter()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        assert not report.added and not report.changed and not report.written, report
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        print(json.dumps([t1 - t0, cpu]), flush=True)
    store.close()


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_code", type=Path)
    ap.add_argument("site_a", type=Path)
    ap.add_argument("site_b", type=Path)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--profile", default=None)
    args = ap.parse_args()
    procs = {}
    for label, code, site in (("A (base)", args.base_code, args.site_a),
                              ("B (this)", ROOT, args.site_b)):
        extra = [args.profile] if args.profile and label.startswith("B") else []
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(site), *extra], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code.resolve())})
        procs[label] = proc
    first = {}
    for label, proc in procs.items():
        line = proc.stdout.readline().split()
        if line[:1] != ["ready"]:
            raise SystemExit(f"the worker {label} did not start")
        first[label] = float(line[1])
    rows: dict[str, list[list[float]]] = {label: [] for label in procs}
    for i in range(args.reps):
        for label in list(procs)[::1 if i % 2 == 0 else -1]:  # alternate who goes first
            proc = procs[label]
            proc.stdin.write("last\n" if i == args.reps - 1 else f"{i}\n")
            proc.stdin.flush()
            rows[label].append(json.loads(proc.stdout.readline()))
    for proc in procs.values():
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        proc.wait()
    for label, got in rows.items():
        wall = [r[0] for r in got]
        cpu = [r[1] for r in got]
        print(f"{label}: rescan wall median {statistics.median(wall):.3f} s, "
              f"max {max(wall):.3f} s; process CPU median {statistics.median(cpu):.3f} s "
              f"({len(got)} passes); start-up pass {first[label]:.3f} s (the two at once)")


if __name__ == "__main__":
    main()
