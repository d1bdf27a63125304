"""Scale check: feeder against the naive script at 1k / 10k / 100k seeds.

    python bench/scale.py [--sizes 1000,10000,100000] [--data /work/bench-data] [--reps 50]

Per size, in one run: (1) cold build, feeder and naive, each in a subprocess: wall time,
CPU time, peak RSS of the biggest process and of the whole process tree (sampled from
/proc); (2) a restart with nothing changed; (3) one new seed: time until the feeds on disk
hold it, median and p99 of ``--reps``, in-process (``Builder.build(names={new})``) and
through a running ``python -m feeder run`` (write the file, poll atom.xml on disk);
(4) one seed edited, one deleted, in-process; (5) floors: the required work of a build on
all cores (``floor_build``, alternating with the naive script), and two partial ones (read +
parse + normalize in one process, and creating as many small files). Prints a table and
writes bench/RESULTS.md.
Seeds come from bench/generate.py (kept under --data between runs); outputs and state
are rebuilt from scratch each run. Loopback only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BASE = "http://127.0.0.1:8080/"
sys.path.insert(0, str(ROOT))


# -- measuring subprocesses ----------------------------------------------------------------

def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return pids


def _pss_kb(pid: int) -> int:
    """Proportional set size: pages shared by the pool's forked workers count once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Wall seconds, CPU seconds (the process and the children it reaped), peak RSS of the
    largest process and peak PSS summed over the process tree (sampled every 0.1 s), MB."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env or ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.wait(0.1):
            peak_tree = max(peak_tree, sum(_pss_kb(p) for p in _tree(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd} failed:\n{stderr.decode(errors='replace')[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024, "rss_tree": peak_tree / 1024}


def feeder_args(seeds: Path, out: Path, state: Path) -> list[str]:
    return ["--seeds", str(seeds), "--out", str(out), "--state", str(state),
            "--base-url", BASE]


# -- timing one change ---------------------------------------------------------------------

def new_seed(seeds: Path, i: int) -> tuple[str, str]:
    stem = f"zz{i:04d}_{random.getrandbits(64):016x}"
    today = dt.date.today().isoformat()
    text = (f" date {today} A brand new article number {i} arrives in the folder today. "
            "The council will open the new library next week, people said.\n\nWhat next\n\n"
            "More text follows in a second paragraph, as every seed has.\n")
    (seeds / f"{stem}.txt").write_text(text, encoding="utf-8")
    return f"{stem}.txt", stem


def pct(values: list[float]) -> dict:
    values = sorted(values)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return {"median": statistics.median(values) * 1000, "p99": p99 * 1000, "n": len(values)}


def in_process(seeds: Path, out: Path, state: Path, reps: int) -> dict:
    """Runs in a subprocess (``--inproc``): new / edit / delete timings through Builder."""
    from feeder.builder import Builder
    from feeder.config import load
    from feeder.store import Store

    cfg = load(None, env={}, seeds=seeds, out=out, state=state, base_url=BASE)
    store = Store(cfg.state)
    builder = Builder(cfg, store, progress=False)
    from feeder.normalizer import _identifier

    _identifier(cfg.languages)  # load the language model before timing (about a second)
    rng = random.Random(7)
    old = sorted(n for n in os.listdir(seeds) if not n.startswith("zz"))
    results: dict[str, list[float]] = {"new": [], "edit": [], "delete newest": [],
                                       "delete old": []}
    added = []
    for i in range(reps):
        name, stem = new_seed(seeds, i)
        t0 = time.perf_counter()
        report = builder.build(names={name})
        results["new"].append(time.perf_counter() - t0)
        assert report.added == [name] and stem.encode() in (out / "atom.xml").read_bytes()
        added.append(name)
    for i in range(reps):
        path = seeds / rng.choice(old)
        text = path.read_text(encoding="utf-8")
        path.write_text(text.rstrip("\n") + f" Edited {i}.\n", encoding="utf-8")
        t0 = time.perf_counter()
        report = builder.build(names={path.name})
        results["edit"].append(time.perf_counter() - t0)
        assert report.changed == [path.name], report.summary()
    for name in reversed(added):
        (seeds / name).unlink()
        t0 = time.perf_counter()
        report = builder.build(names={name})
        results["delete newest"].append(time.perf_counter() - t0)
        assert report.removed == [name]
    # An old seed moves every later entry one place: every later archive page changes.
    for name in rng.sample(old, min(5, len(old))):
        data = (seeds / name).read_bytes()
        (seeds / name).unlink()
        t0 = time.perf_counter()
        builder.build(names={name})
        results["delete old"].append(time.perf_counter() - t0)
        (seeds / name).write_bytes(data)
        builder.build(names={name})
    store.close()
    return {k: pct(v) for k, v in results.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def through_daemon(seeds: Path, out: Path, state: Path, reps: int) -> dict:
    """Start ``feeder run``, then time file written -> its id in atom.xml on disk."""
    port = free_port()
    log = open(state.with_suffix(".daemon.log"), "wb")
    proc = subprocess.Popen([PY, "-m", "feeder", "run", *feeder_args(seeds, out, state),
                             "--port", str(port)], env=ENV, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 600
        while True:  # ready when it answers HTTP (its start-up scan is done by then)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("feeder run did not start") from None
                time.sleep(0.05)
        while True:  # and its start-up reconciliation (a full scan) has finished
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:
                if json.load(r).get("last_build"):
                    break
            if time.monotonic() > deadline:
                raise SystemExit("feeder run did not finish its first build")
            time.sleep(0.05)
        times = []
        atom = out / "atom.xml"
        for i in range(reps):
            t0 = time.perf_counter()
            _name, stem = new_seed(seeds, 1000 + i)
            needle = stem.encode()
            while needle not in atom.read_bytes():
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"daemon did not publish {stem} within 30 s")
                time.sleep(0.001)
            times.append(time.perf_counter() - t0)
            time.sleep(0.3)
        for name in os.listdir(seeds):
            if name.startswith("zz1"):
                (seeds / name).unlink()
        return pct(times)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


# -- the run -------------------------------------------------------------------------------

def machine() -> str:
    model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    return (f"{os.cpu_count()} cores ({model}), {mem_kb / 1024**2:.1f} GB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def write_files(folder: Path, n: int) -> float:
    """Seconds to create ``n`` files of 4 KB in a new folder (temp file + rename, as
    feeder's entry pages are): a floor of any build that writes a page per seed."""
    folder.mkdir(parents=True)
    data = b"x" * 4096
    t0 = time.perf_counter()
    for i in range(n):
        tmp, final = folder / f".{i:06d}.html.tmp", folder / f"{i:06d}.html"
        tmp.write_bytes(data)
        os.replace(tmp, final)
    return time.perf_counter() - t0


def read_only(seeds: Path) -> dict:
    """Runs in a subprocess (``--read-only``): read, parse and normalize every seed (language
    detection included) in one process, writing nothing: the CPU any build must spend."""
    from feeder.config import load
    from feeder.normalizer import Rules, normalize
    from feeder.seed import parse_seed

    rules = Rules.from_config(load(None, env={}))
    normalize(parse_seed(b" date 2025-01-01 Warm up the language model. Text.", "w.txt"),
              "w", rules)
    t0 = time.process_time()
    for entry in os.scandir(seeds):
        with open(entry.path, "rb") as fh:
            normalize(parse_seed(fh.read(), entry.name), entry.name[:-4], rules)
    return {"cpu": time.process_time() - t0}


# -- the floor of the required work, on all cores -------------------------------------------

FLOOR_ROWS = 250  # entries per message from a floor worker to the parent


def slices(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, stop) ranges over ``range(n)``, their sizes differing by
    at most one, none empty (fewer ranges when ``n < parts``)."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts if n else 0):
        stop = start + size + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def _floor_worker(seeds: str, pages: str, names: list[str], rules, info, rows,  # noqa: ANN001
                  archive: tuple[str, int, int, int, int]) -> None:
    """One process's share of the floor: for each of its seeds (a contiguous slice of the
    sorted names) read, parse, normalize (language included), render the entry page (its
    neighbours: the seeds before and after it in the slice) into a temp file; for the
    archived seeds (``archive``: the pages' folder, the archive's size, the index of this
    slice's first seed among all, how many seeds are archived, the page count), every
    archive page once its last seed is read, as HTML, Atom and RSS with feeder's renderers
    (``render.fit``, as feeder), into temp files too; send the minimal rows to the parent every
    ``FLOOR_ROWS`` seeds; then one ``syncfs`` for all the temp files, the renames, and one
    fsync of each folder (feeder's guarantee: a page is on disk before its rename)."""
    from feeder import output, render
    from feeder.normalizer import normalize
    from feeder.seed import parse_seed

    cpu0, wall0 = time.process_time(), time.perf_counter()

    def read(name: str):  # noqa: ANN202
        with open(os.path.join(seeds, name), "rb") as fh:
            return normalize(parse_seed(fh.read(), name), name[:-4], rules)

    def near(entry) -> render.Neighbour | None:  # noqa: ANN001
        return None if entry is None else render.Neighbour(entry.title, entry.slug,
                                                           entry.language)

    staged, batch, pid = [], [], os.getpid()
    folder, size, start, archived, count = archive
    held: list = []  # the entries of the archive page being filled, oldest first

    def stage(final: str, data: bytes) -> None:
        tmp = f"{os.path.dirname(final)}/.{os.path.basename(final)}.{pid}-{len(staged)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        staged.append((tmp, final))

    def archive_page(n: int, entries: list) -> None:  # noqa: ANN001 - feeder's Entry
        entries = entries[::-1]  # newest first, as feeder writes them
        stage(os.path.join(folder, f"page-{n}.html"),
              render.render_archive_page(info, n, count, entries))
        for kind in ("atom", "rss"):
            links = render.Archive(
                prev=render.archive_path(kind, n - 1) if n > 1 else None,
                next=render.archive_path(kind, n + 1) if n < count else None,
                current=f"{kind}.xml", is_archive=True)
            path = render.archive_path(kind, n)
            stage(os.path.join(folder, os.path.basename(path)),
                  render.fit(kind, info, entries, self_path=path, archive=links).data)

    prev, entry = None, read(names[0]) if names else None
    for i in range(len(names)):
        after = read(names[i + 1]) if i + 1 < len(names) else None
        stage(os.path.join(pages, f"{entry.slug}.html"),
              render.render_entry_page(info, entry, near(prev), near(after)))
        if start + i < archived:  # one of the oldest: not in the current feeds
            held.append(entry)
            if len(held) == size or start + i == archived - 1:
                archive_page((start + i) // size + 1, held)
                held = []
        batch.append((entry.stem, entry.published.isoformat(), entry.title, entry.language,
                      entry.content_html))
        if len(batch) == FLOOR_ROWS:
            rows.put(batch)
            batch = []
        prev, entry = entry, after
    if batch:
        rows.put(batch)
    t0 = time.perf_counter()
    output._syncfs(Path(pages))
    synced = time.perf_counter() - t0
    for tmp, final in staged:
        os.replace(tmp, final)
    output.fsync(Path(pages))
    output.fsync(Path(folder))
    rows.put({"cpu": time.process_time() - cpu0, "wall": time.perf_counter() - wall0,
              "syncfs": synced, "files": len(staged)})


def floor_build(seeds: Path, out: Path, db_path: Path, processes: int) -> dict:
    """Runs in a subprocess (``--floor``), timed from its start like the builds: the least
    a build must do, with feeder's own per-seed functions and none of its orchestration.
    The language model is loaded once, before the fork; ``processes`` workers each take a
    contiguous slice of the sorted names (``_floor_worker``); the parent inserts the rows
    they send, as they come, into one SQLite table in one transaction (WAL, synchronous
    NORMAL, as feeder's store). The archive pages (RFC 5005 pages of ``archive_size``
    entries, HTML, Atom and RSS: issue 13's target 1 counts them) hold, as feeder's, every
    seed but the ``max_entries`` newest (here: the last names), the last page alone short;
    the slices are cut at page boundaries, so each page is written by one worker. No current
    feeds (3 documents of 50 entries), no language files, no sitemap."""
    import multiprocessing
    import sqlite3

    from feeder import render
    from feeder.config import load
    from feeder.normalizer import Rules, _identifier

    start = time.perf_counter()
    cfg = load(None, env={}, base_url=BASE)
    rules, info = Rules.from_config(cfg), render.FeedInfo.from_config(cfg)
    _identifier(rules.languages)  # the model, shared by the forked workers
    names = sorted(n for n in os.listdir(seeds) if n.endswith(".txt"))
    pages, archives = out / "entries", out / "archive"
    pages.mkdir(parents=True)
    archives.mkdir()
    ctx = multiprocessing.get_context("fork")
    rows = ctx.Queue()
    size = cfg.archive_size
    archived = max(0, len(names) - cfg.max_entries)
    count = -(-archived // size)  # archive pages
    if count:  # the seeds of whole pages to each worker; the last takes the newest too
        parts = [(a * size, min(b * size, archived)) for a, b in slices(count, processes)]
        parts[-1] = (parts[-1][0], len(names))
    else:
        parts = slices(len(names), processes)
    info = dataclasses.replace(info, archive_count=count)
    workers = [ctx.Process(target=_floor_worker, args=(
                   str(seeds), str(pages), names[a:b], rules, info, rows,
                   (str(archives), size, a, archived, count)))
               for a, b in parts]
    for w in workers:
        w.start()
    setup = time.perf_counter() - start
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE entries (stem TEXT PRIMARY KEY, published TEXT, title TEXT, "
               "language TEXT, content TEXT)")
    db.execute("BEGIN")
    stats, insert = [], 0.0
    while len(stats) < len(workers):
        msg = rows.get()
        if isinstance(msg, dict):
            stats.append(msg)
            continue
        t0 = time.process_time()
        db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", msg)
        insert += time.process_time() - t0
    t0 = time.process_time()
    db.execute("COMMIT")
    insert += time.process_time() - t0
    rows_in = db.execute("SELECT count(*) FROM entries").fetchone()[0]
    db.close()
    for w in workers:
        w.join()
        if w.exitcode:
            raise SystemExit(f"floor worker exited with {w.exitcode}")
    files, expected = sum(s["files"] for s in stats), len(names) + 3 * count
    if rows_in != len(names) or files != expected:
        raise SystemExit(f"floor: {rows_in} rows for {len(names)} seeds, {files} files "
                         f"written of {expected}")
    return {"processes": len(workers), "setup": setup, "insert_cpu": insert,
            "inner": time.perf_counter() - start, "worker_cpu": [s["cpu"] for s in stats],
            "worker_wall": [s["wall"] for s in stats], "syncfs": max(s["syncfs"] for s in stats)}


def run_floor(seeds: Path, work: Path, processes: int) -> dict:
    """``floor_build`` in a subprocess, measured as the builds are, into the new folder
    ``work`` (left in place: see ``one_size``)."""
    work.mkdir(parents=True)
    report = work / "floor.json"
    r = run_measured([PY, __file__, "--floor", str(seeds), str(work / "floor"),
                      str(work / "floor.sqlite3"), str(processes), str(report)])
    r.update(json.loads(report.read_text()))
    return r


def one_size(n: int, data: Path, reps: int, daemon: bool, floor_reps: int = 3) -> dict:
    from generate import generate

    seeds = data / f"seeds-{n}"
    if not seeds.is_dir() or len(os.listdir(seeds)) != n:
        shutil.rmtree(seeds, ignore_errors=True)
        generate(seeds, n)
    work = data / f"run-{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out, state = work / "public", work / "state.sqlite3"
    r: dict = {"n": n}
    # Both builds read the seeds from the page cache: read once here, untimed. (Without it
    # the naive script, which runs first, paid for reading them from the disk: 21.0 s at
    # 100k in one run where it took 10.4 s right after another reader.)
    for path in seeds.iterdir():
        path.read_bytes()
    cores = os.cpu_count() or 1
    naives, floors = [], []
    # The outputs of the naive and floor runs stay until the end of this size: on ext4
    # without a journal (this machine's), allocating inodes skips those freed in the last
    # minutes, so deleting 100,000 pages just before a build slows the build down by
    # seconds (perf record: 12 % of its samples).
    for k in range(max(1, floor_reps)):  # alternating, so both see the same load
        print(f"[{n}] naive cold build", flush=True)
        naives.append(run_measured([PY, str(ROOT / "bench" / "naive.py"), str(seeds),
                                    str(work / f"naive-{k}")]))
        # Each phase starts with the previous one's writes on disk: the kernel's write-back
        # of one phase (the naive feeds are 600 MB at 100k) is not billed to the next.
        os.sync()
        # On cores, one more, and twice as many processes in turn: with more processes than
        # cores, one computes while another waits for the disk (at 100k on 2 cores, one run
        # each: 60.2 s on 2, 51.5 s on 3, 51.3 s on 4). The best of them is the floor.
        processes = (cores, cores + 1, 2 * cores)[k % 3]
        print(f"[{n}] floor: the required work on {processes} processes ({k + 1} of "
              f"{floor_reps})", flush=True)
        floors.append(run_floor(seeds, work / f"floor-{k}", processes))
        os.sync()
    r["naive"] = naives[0]  # feeder's cold build is compared with one naive run, as before
    r["naive_best"] = {key: min(x[key] for x in naives) for key in ("wall", "cpu")}
    r["floor"] = {**min(floors, key=lambda x: x["wall"]),
                  "cpu": min(x["cpu"] for x in floors), "reps": len(floors), "cores": cores}
    print(f"[{n}] feeder cold build", flush=True)
    r["cold"] = run_measured([PY, "-m", "feeder", "build", *feeder_args(seeds, out, state)])
    os.sync()
    print(f"[{n}] feeder restart, nothing changed", flush=True)
    r["restart"] = run_measured([PY, "-m", "feeder", "build",
                                 *feeder_args(seeds, out, state)])
    os.sync()
    print(f"[{n}] one change, in-process x{reps}", flush=True)
    res = subprocess.run([PY, __file__, "--inproc", str(seeds), str(out), str(state),
                          str(reps)], env=ENV, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    r["inproc"] = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"[{n}] floor: one new seed's files written durably, alone x{reps}", flush=True)
    res = subprocess.run([PY, str(ROOT / "bench" / "pass_floor.py"), "--seeds", str(seeds),
                          "--out", str(out), "--state", str(state), "--reps", str(reps),
                          "--json"], env=ENV, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    r["pass_floor"] = json.loads(res.stdout.strip().splitlines()[-1])
    if daemon:
        print(f"[{n}] one new seed through feeder run x{reps}", flush=True)
        r["daemon"] = through_daemon(seeds, out, state, reps)
    mine = [*out.rglob("*"), *work.glob(state.name + "*")]  # the naive and floor runs' aside
    r["disk_mb"] = sum(f.stat().st_size for f in mine if f.is_file()) / 1e6
    r["files"] = sum(1 for _ in out.rglob("*"))
    print(f"[{n}] floor: reading every seed, writing nothing", flush=True)
    res = subprocess.run([PY, __file__, "--read-only", str(seeds)], env=ENV,
                         capture_output=True, text=True, check=True)
    r["read_floor"] = json.loads(res.stdout.strip().splitlines()[-1])["cpu"]
    os.sync()
    print(f"[{n}] floor: writing {n:,} files of 4 KB", flush=True)
    r["files_floor"] = write_files(work / "floor", n)
    shutil.rmtree(work)
    return r


def table(results: list[dict]) -> str:
    rows = ["| measure | " + " | ".join(f"{r['n']:,} seeds" for r in results) + " |",
            "|---|" + "---|" * len(results)]

    def row(label: str, fn) -> None:  # noqa: ANN001
        rows.append(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")

    row("naive: cold build, wall / peak RSS",
        lambda r: f"{r['naive']['wall']:.1f} s / {r['naive']['rss']:.0f} MB")
    row("floor: read + parse + normalize every seed (language included), CPU, no output",
        lambda r: f"{r['read_floor']:.1f} s")
    row("floor: creating as many 4 KB files, one process (temp + rename)",
        lambda r: f"{r['files_floor']:.1f} s")
    row("floor: required work on all cores (read, parse, normalize + language, entry page "
        "and archive pages written atomically, one SQLite transaction; no feeds or sitemap), best "
        "of runs alternating with naive: wall (ratio to naive's best) / CPU",
        lambda r: f"{r['floor']['wall']:.1f} s ({r['floor']['wall'] / r['naive_best']['wall']:.2f}"
                  f"× naive's {r['naive_best']['wall']:.1f} s) / {r['floor']['cpu']:.1f} s on "
                  f"{r['floor']['processes']} processes, best of {r['floor']['reps']} on "
                  f"{r['floor']['cores']} to {2 * r['floor']['cores']}")
    row("CPU, least of the runs: naive / floor (÷ the cores it ran on: ratio to naive) / "
        "feeder cold build",
        lambda r: f"{r['naive_best']['cpu']:.1f} / {r['floor']['cpu']:.1f} ("
                  f"{r['floor']['cpu'] / r['floor']['cores'] / r['naive_best']['cpu']:.2f}×)"
                  f" / {r['cold']['cpu']:.1f} s")
    row("feeder: cold build, wall (ratio to naive)", lambda r: f"{r['cold']['wall']:.1f} s "
        f"({r['cold']['wall'] / r['naive']['wall']:.2f}× naive)")
    row("feeder: cold build, peak RSS of largest process / peak PSS of all processes",
        lambda r: f"{r['cold']['rss']:.0f} MB / {r['cold']['rss_tree']:.0f} MB")
    row("feeder: output files, disk (seeds excluded)",
        lambda r: f"{r['files']:,}, {r['disk_mb']:.0f} MB")
    row("feeder: restart, nothing changed (wall / peak RSS)",
        lambda r: f"{r['restart']['wall']:.2f} s / {r['restart']['rss']:.0f} MB")
    for key, label in (("new", "one new seed, in-process"), ("edit", "one seed edited"),
                       ("delete newest", "newest seed deleted"),
                       ("delete old", "an old seed deleted")):
        row(f"{label}: median / p99 (n)",
            lambda r, k=key: f"{r['inproc'][k]['median']:.1f} / {r['inproc'][k]['p99']:.1f}"
                             f" ms ({r['inproc'][k]['n']})")
    row("floor: one new seed's files written durably alone, median (bench/pass_floor.py): "
        "overlapped as a pass writes them / in two rounds",
        lambda r: f"{r['pass_floor']['overlapped']:.1f} / {r['pass_floor']['in two rounds']:.1f}"
                  " ms")
    row("one new seed vs naive rebuild (naive wall / median)",
        lambda r: f"{r['naive']['wall'] * 1000 / r['inproc']['new']['median']:,.0f}×")
    if all("daemon" in r for r in results):
        row("one new seed through `feeder run` (debounce 0.2 s): median / p99",
            lambda r: f"{r['daemon']['median']:.0f} / {r['daemon']['p99']:.0f} ms")
    return "\n".join(rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--inproc":
        seeds, out, state, reps = sys.argv[2:6]
        print(json.dumps(in_process(Path(seeds), Path(out), Path(state), int(reps))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--floor":
        seeds, out, db, processes, report = sys.argv[2:7]
        Path(report).write_text(json.dumps(floor_build(Path(seeds), Path(out), Path(db),
                                                       int(processes))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--read-only":
        print(json.dumps(read_only(Path(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data"))
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--no-daemon", action="store_true")
    parser.add_argument("--floor-reps", type=int, default=3,
                        help="naive and floor runs, alternating (the best of each counts)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    results = [one_size(int(n), args.data, args.reps, not args.no_daemon, args.floor_reps)
               for n in args.sizes.split(",")]
    text = table(results)
    print(text)
    load = os.getloadavg()
    section = (
        f"# Scale results\n\n{dt.date.today().isoformat()}, {machine()}.\n"
        f"Load average at the end: {load[0]:.1f} (the benchmark's own processes count in "
        "it). Wall times on this kind of shared VM move by about ±20 % between runs.\n"
        f"Run: `python bench/scale.py --sizes {args.sizes} --reps {args.reps}`\n\n"
        f"{text}\n")
    args.results.write_text(replace_section(args.results, section), encoding="utf-8")


def replace_section(path: Path, section: str) -> str:
    """``path``'s text with its "# Scale results" section (up to the next top-level
    heading) replaced by ``section``, put first if it had none: the other benchmarks'
    sections in the same file stay."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    parts = re.split(r"(?m)^(?=# )", old)
    kept = [p for p in parts if p.strip() and not p.startswith("# Scale results")]
    return "\n".join([section, *(p.rstrip("\n") + "\n" for p in kept)])


if __name__ == "__main__":
    main()
