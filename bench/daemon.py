"""``feeder run`` at scale: idle memory, drop -> served latency, passes for a burst.

    python bench/daemon.py [--sizes 10000[,100000]] [--probes 60] [--burst 1000] [--work DIR]
                           [--reuse]

For each size, generates that many seeds once (``bench/generate.py``, kept in ``--work`` for
the next run), starts ``python -m feeder run`` from this checkout with a fresh state and
output folder (so the daemon makes the cold build itself; with ``--reuse``, those of the
last run), and prints, each beside its target
(issue 13):

* idle PSS of the whole process tree (``/proc/<pid>/smaps_rollup``, the daemon and any
  child) once the first build is done and the daemon has settled; again after the probes
  and the burst;
* drop -> served: from a seed's ``close()`` until ``atom.xml`` on disk holds its entry,
  for ``--probes`` seeds written one after another, the first one right after the first
  build (so the first seed after a start is included);
* how many passes (``built in`` log lines) a burst of ``--burst`` files costs.

Loopback only; stops the daemon with SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import free_port, percentile, seed, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IDLE_PSS_MB = 80
P50_MS, P99_MS = 60, 200
BURST_PASSES = 10
SETTLE = 3.0  # seconds the PSS must stay within 1 MB to count as idle
IDLE_FROM = 8.0  # seconds after the last pass (the daemon lets go of pass memory after 5)
PROBE_PREFIXES = ("probe_", "burst_")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux ``/proc``)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except OSError:
                pass
    return found


def pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` and its descendants, in MB."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def settled_pss(pid: int, timeout: float = 60.0) -> float:
    """The tree's PSS once it has stayed within 1 MB for ``SETTLE`` seconds."""
    pause = threading.Event()
    pause.wait(IDLE_FROM)
    deadline = time.monotonic() + timeout
    last, since = pss_mb(pid), time.monotonic()
    while time.monotonic() < deadline:
        pause.wait(0.25)
        now = pss_mb(pid)
        if abs(now - last) > 1:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= SETTLE:
            return now
    return pss_mb(pid)


def health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # 503 while starting
        return json.load(exc)
    except OSError:  # not listening yet
        return {}


def entries(port: int) -> int:
    return health(port)["entries"]


def seeds_folder(work: Path, size: int) -> Path:
    """``size`` generated seeds in ``work``, made once; probes of an earlier run removed."""
    folder = work / f"seeds-{size}"
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"generating {size} seeds in {folder} ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(folder),
                        str(size)], check=True, stdout=subprocess.DEVNULL)
        done.touch()
    for name in os.listdir(folder):
        if name.startswith(PROBE_PREFIXES):
            os.unlink(folder / name)
    return folder


def run_size(work: Path, size: int, probes: int, burst: int, reuse: bool) -> dict:
    seeds = seeds_folder(work, size)
    if reuse:  # the state and output of the last run: its first pass reconciles them
        tmp = work / f"run-{size}"
        tmp.mkdir(exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="feeder-daemon-", dir=work))
    out, log_path, port = tmp / "out", tmp / "daemon.log", free_port()
    cmd = [sys.executable, "-m", "feeder", "run", "--seeds", str(seeds), "--out", str(out),
           "--state", str(tmp / "state.sqlite3"), "--port", str(port),
           "--base-url", f"http://127.0.0.1:{port}/"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result: dict = {"size": size, "burst": burst}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    atom, last = out / "atom.xml", [None]
    pause = threading.Event()

    def passes() -> int:
        return log_path.read_text().count("built in")

    try:
        t0 = time.monotonic()
        deadline = t0 + 1800
        while not health(port).get("last_build"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no first build; log:\n{log_path.read_text()[-3000:]}")
            pause.wait(0.05)
        result["first_build_s"] = time.monotonic() - t0
        print(f"  {size}: first build done in {result['first_build_s']:.1f} s", flush=True)
        result["idle_pss"] = settled_pss(proc.pid)

        latencies = []
        log_from = len(log_path.read_text())
        for i in range(probes):
            name = f"probe_{i:04d}"
            with open(seeds / f"{name}.txt", "wb") as fh:
                fh.write(seed(i + 1, day=5 + size // 10_000))
            closed = time.monotonic()
            done = wait_for(atom, f":{name}</id>".encode(), 60, last)
            latencies.append((done - closed) * 1000)
        result["latencies"] = latencies
        result["pass_ms"] = [float(m) for m in re.findall(
            r"built in (\d+) ms", log_path.read_text()[log_from:])]

        expected = entries(port) + burst
        before = passes()
        for i in range(burst):
            (seeds / f"burst_{i:04d}.txt").write_bytes(seed(probes + i + 1, day=20))
        deadline = time.monotonic() + 600
        while entries(port) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"burst not in the store after 600 s; log:\n"
                                   f"{log_path.read_text()[-3000:]}")
            pause.wait(0.05)
        # the pass that recorded the last seed has published once its line is logged
        wait_for(atom, f":burst_{burst - 1:04d}</id>".encode(), 120, last)
        result["burst_passes"] = passes() - before
        result["after_pss"] = settled_pss(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            result["exit"] = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            result["exit"] = proc.wait()
        for name in os.listdir(seeds):
            if name.startswith(PROBE_PREFIXES):
                os.unlink(seeds / name)
        if not reuse:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(r: dict) -> None:
    lat = r["latencies"]
    p50, p99 = statistics.median(lat), percentile(lat, 99)
    n = f"{r['size']:,}"
    print(f"\n{n} seeds (first pass of the daemon: {r['first_build_s']:.1f} s; "
          f"daemon exit {r['exit']})")
    print(f"  idle PSS after the first build    {r['idle_pss']:6.1f} MB   target <= "
          f"{IDLE_PSS_MB} MB  {verdict(r['idle_pss'] <= IDLE_PSS_MB)}")
    print(f"  idle PSS after probes and burst   {r['after_pss']:6.1f} MB   target <= "
          f"{IDLE_PSS_MB} MB  {verdict(r['after_pss'] <= IDLE_PSS_MB)}")
    print(f"  drop -> served p50 ({len(lat)} seeds)     {p50:6.0f} ms   target <= "
          f"{P50_MS} ms  {verdict(p50 <= P50_MS)}")
    print(f"  drop -> served p99                {p99:6.0f} ms   target <= "
          f"{P99_MS} ms {verdict(p99 <= P99_MS)}")
    print(f"  drop -> served, first after start {lat[0]:6.0f} ms   (max {max(lat):.0f} ms; "
          f"the passes' own median {statistics.median(r['pass_ms'] or [0]):.0f} ms)")
    print(f"  passes for a burst of {r['burst']:,} files  {r['burst_passes']:6d}      "
          f"target <= {BURST_PASSES}     "
          f"{verdict(r['burst_passes'] <= BURST_PASSES)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000", help="comma-separated seed counts")
    ap.add_argument("--probes", type=int, default=60, help="seeds published one by one")
    ap.add_argument("--burst", type=int, default=1000, help="files written at once")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "feeder-bench",
                    help="where generated seed folders are kept between runs")
    ap.add_argument("--reuse", action="store_true",
                    help="keep each size's state and output in --work for the next run (its "
                         "first pass is then a check, not a cold build)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    for size in (int(s) for s in args.sizes.split(",")):
        report(run_size(args.work, size, args.probes, args.burst, args.reuse))


if __name__ == "__main__":
    main()
