"""Issue 13's five performance targets, each printed beside its reference from the same run.

Runs the three benchmarks that measure them and prints one table:

1. cold ``feeder build`` against the naive script, and the peak PSS (``scale.py``);
2. drop -> served through ``feeder run``, p50 and p99 (``daemon.py``);
3. one new seed, in-process median (``scale.py``);
4. idle ``feeder run`` PSS after its first build (``daemon.py``);
5. gzip GETs of ``/atom.xml`` against nginx (``load.py``; skipped without nginx).

Usage: ``python bench/targets.py [--sizes 10000,100000] [--probes 40] [--repeat 3]``.
A full run at 10k and 100k takes about 15 minutes on 2 cores; ``--sizes 10000`` about 4.
Each benchmark's own output is shown as it runs, and the table comes last.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def run(args: list[str]) -> str:
    """Run a benchmark script, echo its output, and return it."""
    proc = subprocess.run([sys.executable, str(BENCH / args[0]), *args[1:]],
                          capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        sys.stdout.write(proc.stderr)
        raise SystemExit(f"{args[0]} exited with {proc.returncode}")
    return proc.stdout


def scale_rows(text: str) -> dict[str, list[str]]:
    """scale.py's table: row label -> one cell per size."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 1 and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells[1:]
    return rows


def row_starting(rows: dict[str, list[str]], prefix: str) -> list[str]:
    """The cells of the one row whose label starts with ``prefix``."""
    return next(cells for label, cells in rows.items() if label.startswith(prefix))


def number(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1).replace(",", "")) if m else None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def floor_verdict(limit: float, wall: float, cpu: float | None = None) -> str:
    """Whether a floor (its ratio to the reference by wall time, and by CPU per core where
    one is given) stops a target of ``limit`` times the reference."""
    stops = {wall > limit} if cpu is None else {wall > limit, cpu > limit}
    if stops == {True}:
        return "the floor stops it"
    if stops == {False}:
        return "not the floor: the rest is overhead above it"
    return "wall and CPU disagree (the machine's load): see both"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--reps", type=int, default=20, help="one-change repetitions")
    parser.add_argument("--probes", type=int, default=40, help="seeds timed through the daemon")
    parser.add_argument("--repeat", type=int, default=3, help="load.py runs per case")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "scale.md"
        scale = scale_rows(run(["scale.py", "--sizes", args.sizes, "--reps", str(args.reps),
                                "--no-daemon", "--results", str(results)]))
    daemon = {n: run(["daemon.py", "--sizes", str(n), "--probes", str(args.probes)])
              for n in sizes}
    load = run(["load.py", "--repeat", str(args.repeat)]) if shutil.which("nginx") else ""

    lines = target_lines(sizes, scale, daemon, load)
    print(f"\nIssue 13's targets (load average now {os.getloadavg()[0]:.1f})")
    widths = [max(len(row[k]) for row in lines) for k in range(4)]
    for row in [("target", "reference, same run", "measured", "verdict"), *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def target_lines(sizes: list[int], scale: dict[str, list[str]], daemon: dict[int, str],
                 load: str) -> list[tuple[str, str, str, str]]:
    """The table's rows (target, reference, measured, verdict) from the benchmarks' output."""
    lines = []
    for i, n in enumerate(sizes):
        naive = scale["naive: cold build, wall / peak RSS"][i].split(" / ")[0]
        cold = scale["feeder: cold build, wall (ratio to naive)"][i]
        ratio = number(r"\(([\d.]+)×", cold)
        pss = number(r"/ ([\d.]+) MB",
                     scale["feeder: cold build, peak RSS of largest process / peak PSS of all "
                           "processes"][i])
        new = number(r"^([\d.]+)", scale["one new seed, in-process: median / p99 (n)"][i])
        writes = number(r"^([\d.]+)", row_starting(scale, "floor: one new seed's files")[i])
        out = daemon[n]
        p50 = number(r"drop -> served p50 \(\d+ seeds\)\s+(\d+) ms", out)
        p99 = number(r"drop -> served p99\s+(\d+) ms", out)
        first = number(r"first after start\s+(\d+) ms", out)
        idle = number(r"idle PSS after the first build\s+([\d.]+) MB", out)
        floor = row_starting(scale, "floor: required work on all cores")[i]
        floor_ratio = number(r"\(([\d.]+)× naive", floor)
        floor_cpu = number(r"\(([\d.]+)×\)", row_starting(scale, "CPU, least of the runs")[i])
        lines += [
            (f"1  cold build, {n:,} seeds", f"naive {naive}", cold,
             verdict(ratio is not None and ratio <= 1.5)),
            (f"1  its floor: required work on all cores, {n:,}", "naive, best of the same runs",
             f"{floor.split(' / ')[0]}; CPU per core {floor_cpu:.2f}× naive's",
             floor_verdict(1.5, floor_ratio, floor_cpu)),
            (f"1  peak PSS of the cold build, {n:,}", "<= 250 MB", f"{pss:.0f} MB",
             verdict(pss <= 250) if n >= 100_000 else "n/a (target at 100k)"),
            (f"2  drop -> served, {n:,}", "p50 <= 60 ms, p99 <= 200 ms",
             f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, first {first:.0f} ms",
             verdict(p50 <= 60 and p99 <= 200)),
            (f"3  one new seed, {n:,}", "median <= 30 ms", f"{new:.1f} ms",
             verdict(new <= 30) if n >= 100_000 else "n/a (target at 100k)"),
            (f"3  its floor: its files written durably alone, {n:,}", "median <= 30 ms",
             f"{writes:.1f} ms (bench/pass_floor.py, overlapped)",
             floor_verdict(30, writes) if n >= 100_000 else "n/a (target at 100k)"),
            (f"4  idle feeder run PSS, {n:,}", "<= 80 MB", f"{idle:.1f} MB",
             verdict(idle <= 80) if n == 10_000 else "n/a (target at 10k)"),
        ]
    m = re.search(r"200 GET gzip: feeder (\d+) req/s, nginx (\d+) req/s, nginx/feeder "
                  r"([\d.]+)x; direct floor (\d+) req/s, nginx/floor ([\d.]+)x; ASGI floor "
                  r"\d+ req/s, nginx/ASGI floor [\d.]+x; best floor "
                  r"(.+?) (\d+) req/s, nginx/best floor ([\d.]+)x; CPU per request: "
                  r"feeder/nginx ([\d.]+)x, direct floor/nginx ([\d.]+)x, ASGI floor/nginx "
                  r"[\d.]+x, least floor (.+?)/nginx ([\d.]+)x", load)
    if m:
        g = m.groups()
        lines += [("5  gzip GETs of /atom.xml", f"nginx {g[1]} req/s",
                   f"feeder {g[0]} req/s: nginx {g[2]}x (by CPU per request {g[8]}x)",
                   verdict(float(g[2]) <= 2)),
                  ("5  its floor on feeder's server (uvicorn, direct path)", f"nginx {g[1]} req/s",
                   f"constant app {g[3]} req/s: nginx {g[4]}x (by CPU per request {g[9]}x)",
                   floor_verdict(2, float(g[4]), float(g[9])))]
        if g[5] != "direct floor":
            lines.append(("5  best floor of any server tried", f"nginx {g[1]} req/s",
                          f"{g[5]} {g[6]} req/s: nginx {g[7]}x (least CPU per request: "
                          f"{g[10]}, {g[11]}x nginx's)",
                          floor_verdict(2, float(g[7]), float(g[11]))))
    else:
        lines.append(("5  gzip GETs of /atom.xml",
                      "load.py's output not understood" if load else "nginx not installed",
                      "-", "n/a"))
    return lines


if __name__ == "__main__":
    main()
