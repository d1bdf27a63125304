"""A cold `feeder build` in this process, with per-phase timers and the peak PSS of the tree.

    python bench/cold_phases.py SEEDS WORK

Builds SEEDS into WORK (a new or empty folder; the workers run as usual) and prints, per phase of
the parent (inclusive): wall seconds, CPU of the main thread, CPU of the whole process, and
calls, and the CPU of the workers meanwhile (phases called once per pass); then the peak PSS
of the process tree and the phase it was reached in. A thread of this process samples /proc
(the threads' CPU every 0.1 s, the PSS every 0.3 s); its own CPU is left out of the phases'
and the parent's CPU and printed apart, but it still takes a core's time from the build
(~4 % of a core now; 12 % when it read the PSS every 0.1 s). For A/B runs of another checkout:
``PYTHONPATH=that/checkout python bench/cold_phases.py ...``
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

TIMES: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0, 0.0])
STACK = ["start"]
PEAK = {"tree": 0, "at": "", "parent": 0, "each": []}


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
    return pids


def _pss_kb(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


THREADS: dict[int, tuple[str, int]] = {}  # the parent's threads: tid -> (name, CPU ticks)
KIDS: dict[int, int] = {}  # the parent's descendants: pid -> CPU ticks, as last seen


def _kids_cpu() -> float:
    """CPU seconds of the parent's descendants so far (the workers, the fork server), each
    as last seen alive: a process that ended keeps its last reading (up to ~0.1 s short)."""
    me = os.getpid()
    for pid in _tree(me)[1:]:
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
            KIDS[pid] = max(KIDS.get(pid, 0), int(fields[11]) + int(fields[12]))
    return sum(KIDS.values()) / os.sysconf("SC_CLK_TCK")


def _threads(me: int) -> None:
    """Note the CPU of each of this process's threads (those that end are kept as last seen)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{me}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{me}/task/{tid}/stat") as fh:
                head, rest = fh.read().rsplit(")", 1)
                fields = rest.split()
                name = names.get(int(tid)) or head.split("(", 1)[1]
                THREADS[int(tid)] = (name.split("_")[0], int(fields[11]) + int(fields[12]))


# The sampling thread's own CPU so far, which the phases' process CPU and the parent's CPU
# leave out: reading smaps_rollup walks a process's pages (~2 ms for a worker), and sampling
# the PSS of the tree 10 times a second took 11 s of CPU in a 90 s build of 100,000 seeds.
SAMPLER = [0.0]
PSS_EVERY = 3  # samples: the tree's PSS is read every 0.3 s, the threads' CPU every 0.1 s


def _sample(done: threading.Event) -> None:
    me, n = os.getpid(), 0
    while not done.wait(0.1):
        _threads(me)
        _kids_cpu()
        if n % PSS_EVERY == 0:
            parent = _pss_kb(me)
            each = [(p, _name(p, me), _pss_kb(p)) for p in _tree(me)[1:]]
            tree = parent + sum(kb for _p, _n, kb in each)
            if tree > PEAK["tree"]:
                PEAK.update(tree=tree, at="/".join(STACK[-3:]), parent=parent, each=each)
        n += 1
        SAMPLER[0] = time.thread_time()


def _name(pid: int, me: int) -> str:
    """A child's role: a worker (a grandchild: the fork server's), else from its command
    line (the fork server, the resource tracker)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if int(fh.read().rsplit(")", 1)[1].split()[1]) != me:
                return "worker"
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    for role in ("forkserver", "resource_tracker"):
        if role in cmd:
            return role
    return cmd[:40]


HOT = {"put_entry", "page_entries", "_record", "_check"}  # called per seed or page: no /proc reads


def _proc() -> float:
    """This process's CPU so far, less the sampling thread's."""
    return time.process_time() - SAMPLER[0]


def _timed(owner: object, name: str) -> None:
    fn = getattr(owner, name)
    label = f"{getattr(owner, '__name__', owner)}.{name}"

    @functools.wraps(fn)
    def timed(*args: object, **kw: object) -> object:
        wall, cpu, proc = time.perf_counter(), time.thread_time(), _proc()
        kids = 0.0 if name in HOT else _kids_cpu()
        STACK.append(label)
        try:
            return fn(*args, **kw)
        finally:
            STACK.pop()
            row = TIMES[label]
            row[0] += time.perf_counter() - wall
            row[1] += time.thread_time() - cpu
            row[2] += _proc() - proc
            row[3] += 1
            if name not in HOT:
                row[4] += _kids_cpu() - kids

    setattr(owner, name, timed)


def main() -> None:
    seeds, work = Path(sys.argv[1]), Path(sys.argv[2])
    if work.exists() and any(work.iterdir()):
        # Not emptied here: its deletion would count in the parent's CPU, and on ext4
        # without a journal (this machine's) allocating inodes skips those freed in the
        # last minutes, so a build right after deleting 100,000 pages is seconds slower.
        raise SystemExit(f"{work} is not empty: give a new folder")
    work.mkdir(parents=True, exist_ok=True)
    from feeder import builder, folder, langfeeds, publish, site, store, sync
    from feeder.cli import main as cli

    for owner, names in ((builder.Builder, ["build"]), (folder.Folder, ["look"]),
                         (sync.Sync, ["run", "_read", "_record", "_check"]),
                         (store.Store, ["put_entry", "page_entries"]),
                         (publish.Publisher, ["run", "_assign_pages", "_entry_pages",
                                              "_feeds", "_render_all"]),
                         (langfeeds, ["publish"]), (site, ["write"])):
        for name in names:
            _timed(owner, name)
    done = threading.Event()
    threading.Thread(target=_sample, args=(done,), name="sampler", daemon=True).start()
    t0 = time.perf_counter()
    cli(["build", "--seeds", str(seeds), "--out", str(work / "public"), "--state",
         str(work / "state.sqlite3"), "--base-url", "http://127.0.0.1:8080/"],
        standalone_mode=False)
    wall = time.perf_counter() - t0
    done.set()
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{'phase':36s} {'wall':>8s} {'main CPU':>9s} {'proc CPU':>9s} {'calls':>7s} "
          f"{'workers CPU':>12s}")
    for label, (w, c, p, n, k) in TIMES.items():
        print(f"{label:36s} {w:8.2f} {c:9.2f} {p:9.2f} {n:7d} {k:12.2f}")
    print(f"wall {wall:.2f} s, CPU of the parent {me.ru_utime + me.ru_stime - SAMPLER[0]:.2f} s "
          f"(the sampling thread's {SAMPLER[0]:.2f} s left out) and of the workers "
          f"{kids.ru_utime + kids.ru_stime:.2f} s, peak RSS of the parent "
          f"{me.ru_maxrss / 1024:.0f} MB, load average {os.getloadavg()[0]:.2f}")
    _threads(os.getpid())
    by_name: defaultdict[str, float] = defaultdict(float)
    for name, ticks in THREADS.values():
        by_name[name] += ticks / os.sysconf("SC_CLK_TCK")
    print("CPU of the parent's threads, by name (sampled every 0.1 s): " + ", ".join(
        f"{name} {sec:.2f} s" for name, sec in sorted(by_name.items(), key=lambda kv: -kv[1])))
    print(f"peak PSS of the process tree (every 0.3 s) {PEAK['tree'] / 1024:.0f} MB, in {PEAK['at']} "
          f"(the parent's {PEAK['parent'] / 1024:.0f} MB; "
          + ", ".join(f"{n} {kb / 1024:.0f}" for _p, n, kb in PEAK["each"]) + ")")


if __name__ == "__main__":  # the pool's fork server imports this module again
    main()
