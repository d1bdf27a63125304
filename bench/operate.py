"""``feeder run`` against what operators do to it, one line per scenario.

    python bench/operate.py [--only NAME ...] [--big 3000]

Each scenario starts ``python -m feeder run`` from this checkout (the tests' harness,
``tests/_daemon.py``) on a temp folder, does one thing an operator does, and prints
``PASS`` or ``FAIL`` with a figure. Scenarios (``--only`` takes these names):

- ``cp``: 200 seeds copied one ``cp -p`` at a time while the daemon starts (after an earlier
  run); seconds from the last copy until all 200 are served.
- ``rsync``: 200 seeds written the way ``rsync -a`` writes them (hidden temp file, old mtime,
  rename) while the daemon starts.
- ``hup``: SIGHUP with ``debounce = nan``, ``inf``, an empty ``title``, then a good config;
  after each bad one a new seed must still be served, after the good one the new title.
- ``swap``: seeds folder re-pointed by ``mv -T`` of a symlink; then ``rm -rf`` and re-made;
  then renamed away for 10 s and back. /healthz must say "error" while it is away.
- ``outstate``: the output folder deleted (all files back, /healthz honest meanwhile), then
  the state file deleted (new seeds still served; a second daemon on the same paths refused).
- ``kill9``: kill -9 during the first pass of ``--big`` seeds: pool processes alive after,
  then a restart serves every entry and no ``.tmp`` file.
- ``slow``: a seed written in two halves 3 s apart, the file open throughout; the feed is
  polled every 20 ms and must never hold the first half alone.
- ``names``: a FIFO, a symlink to it, a Latin-1 and a newline file name, a sparse 5 GB file
  written while running; a later seed must be served, the four odd ones rejected.
- ``hungterm``: SIGTERM while a ping hangs on a hub that never answers (``ping_timeout`` 30).
- ``port``: a port already in use: one line, exit 1.
- ``term``: SIGTERM during the first pass of ``--big`` seeds: exit code and seconds.
- ``notify``: ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` set: READY=1 only after the first
  build is served, STATUS=, WATCHDOG=1, STOPPING=1.

The hung hub, 40 seeds during start-up, 1,100 idle connections and the pool after kill -9
have their own scripts (``scheduling.py``, ``starve.py``, ``orphans.py``). Exits 1 if any
scenario fails. Loopback only; everything lives in a temp folder removed at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test harness is the package ``tests`` of this tree
sys.path.insert(0, str(ROOT / "bench"))

from generate import generate  # noqa: E402

from tests._daemon import FeederDaemon, seed_bytes  # noqa: E402
from tests._servers import hanging_hub, http_client, wait_until  # noqa: E402

OLD = time.time() - 86400  # an mtime a day back, as ``cp -p`` and ``rsync -a`` leave them
ALL = {"feed": {"max_entries": 1000}}  # feed.json lists every entry


def poll(check: Callable[[], object], timeout: float = 30.0, interval: float = 0.01) -> float:
    """Poll ``check`` until true; the monotonic time it was (TimeoutError after ``timeout``)."""
    wait_until(check, timeout=timeout, interval=interval)
    return time.monotonic()


def step(out: list[str], label: str, check: Callable[[], object], since: float,
         timeout: float = 10.0) -> bool:
    """Poll ``check``; add "LABEL: N ms" (from ``since``) or "LABEL: NOT in T s" to ``out``."""
    try:
        done = poll(check, timeout=timeout)
    except TimeoutError:
        out.append(f"{label}: NOT in {timeout:.0f} s")
        return False
    out.append(f"{label}: {1000 * (done - since):.0f} ms")
    return True


def titles(d: FeederDaemon) -> set[str]:
    """The served titles; none while the server does not answer."""
    try:
        return d.titles()
    except Exception:  # noqa: BLE001 - not answering yet
        return set()


def served_count(d: FeederDaemon) -> int:
    return len(titles(d))


def status(d: FeederDaemon) -> str:
    try:
        return d.health()["status"]
    except Exception:  # noqa: BLE001 - not answering is a state too
        return "no answer"


# -- start-up ----------------------------------------------------------------------------------
def _during_start(root: Path, copy: Callable[[Path, Path], None]) -> tuple[bool, str]:
    src = root / "src"
    names = generate(src, 200)
    for name in names:
        os.utime(src / name, (OLD, OLD))
    d = FeederDaemon(root / "d", config=ALL)
    d.write_seed("2025-01-01", "An earlier seed. Some text.", name="earlier.txt")
    d.start().stop()
    d.start(wait=False)
    try:
        d.wait_until(d.state.exists, timeout=30, interval=0.002, what="the state file")
        for name in names:
            copy(src / name, d.seeds / name)
        last = time.monotonic()
        try:
            done = poll(lambda: served_count(d) >= 201, timeout=60, interval=0.02)
        except TimeoutError:
            return False, f"{served_count(d)} of 201 served 60 s after the last write"
        return True, f"all 201 served {done - last:.2f} s after the last write"
    finally:
        d.stop()


def cp(root: Path) -> tuple[bool, str]:
    def copy(src: Path, dst: Path) -> None:
        subprocess.run(["cp", "-p", str(src), str(dst)], check=True)
    ok, line = _during_start(root, copy)
    return ok, f"200 seeds cp -p'd during start-up: {line}"


def rsync(root: Path) -> tuple[bool, str]:
    def copy(src: Path, dst: Path) -> None:
        tmp = dst.with_name(f".{dst.name}.XXXX12")
        with open(tmp, "wb") as fh:
            fh.write(src.read_bytes()[:100])
            fh.flush()
            fh.write(src.read_bytes()[100:])
        os.utime(tmp, (OLD, OLD))
        os.rename(tmp, dst)
    ok, line = _during_start(root, copy)
    return ok, f"200 seeds rsync'd (temp + rename) during start-up: {line}"


# -- SIGHUP --------------------------------------------------------------------------------------
def hup(root: Path) -> tuple[bool, str]:
    conf = root / "feeder.toml"
    good = '[feed]\ntitle = "Good title"\n'
    conf.write_text('[feed]\ntitle = "First"\n')
    d = FeederDaemon(root, config=conf).start()
    results = []
    ok = True
    try:
        for i, (label, text) in enumerate([("debounce = nan", "[daemon]\ndebounce = nan\n"),
                                           ("debounce = inf", "[daemon]\ndebounce = inf\n"),
                                           ("title = ''", '[feed]\ntitle = ""\n'),
                                           ("debounce = 1e300", "[daemon]\ndebounce = 1e300\n")]):
            conf.write_text(text)
            before = d.log_text().count("config reload")
            d.signal(signal.SIGHUP)
            d.wait_until(lambda b=before: d.log_text().count("config reload") > b,
                         what="a reload line")
            title = f"After bad reload {i}"
            d.write_seed("2026-01-05", f"{title}. Some text.")
            start = time.monotonic()
            try:
                d.wait_for_entry(title, timeout=10)
                results.append(f"{label}: served {1000 * (time.monotonic() - start):.0f} ms")
            except AssertionError:
                ok = False
                results.append(f"{label}: NOT served")
            if status(d) != "ok":
                ok = False
                results.append(f"healthz {status(d)}")
        conf.write_text(good)
        d.signal(signal.SIGHUP)
        try:
            d.wait_until(lambda: b"Good title" in d.get("atom.xml").content, timeout=10)
            results.append("good config applied")
        except AssertionError:
            ok = False
            results.append("good config NOT applied")
        alive = d.running
        ok = ok and alive
    finally:
        d.stop()
    return ok, "SIGHUP bad configs then a good one: " + "; ".join(results)


# -- the seeds folder ---------------------------------------------------------------------------
def swap(root: Path) -> tuple[bool, str]:
    rel1, rel2 = root / "release1", root / "release2"
    generate(rel1, 20)
    seeds = root / "seeds"
    seeds.symlink_to(rel1)
    d = FeederDaemon(root, seeds=seeds, config=ALL).start()
    out, ok = [], True
    try:
        shutil.copytree(rel1, rel2)
        (rel2 / "swapped.txt").write_bytes(seed_bytes("2026-01-05", "Swapped in. Text."))
        os.utime(rel2 / "swapped.txt", (OLD, OLD))
        tmp_link = root / "seeds.new"
        tmp_link.symlink_to(rel2)
        t0 = time.monotonic()
        subprocess.run(["mv", "-T", str(tmp_link), str(seeds)], check=True)
        ok &= step(out, "symlink swap: new seed served",
                   lambda: "Swapped in" in titles(d), t0)
        d.write_seed("2026-01-06", "Into release two. Text.", name="into2.txt")
        ok &= step(out, "seed written into the new target served",
                   lambda: "Into release two" in titles(d), time.monotonic())
        # rm -rf and re-make a plain folder at the path
        seeds.unlink()
        shutil.rmtree(rel2)
        seeds.mkdir()
        (seeds / "fresh.txt").write_bytes(seed_bytes("2026-01-07", "Fresh folder. Text."))
        ok &= step(out, "rm -rf + mkdir: the new seed alone served",
                   lambda: titles(d) == {"Fresh folder"}, time.monotonic())
        # renamed away (an unmount) for 10 s, then back with a new seed
        away = root / "seeds.away"
        seeds.rename(away)
        ok &= step(out, "renamed away: /healthz error", lambda: status(d) == "error",
                   time.monotonic())
        time.sleep(10)  # the scenario: the folder stays away for 10 s
        (away / "back.txt").write_bytes(seed_bytes("2026-01-08", "Back again. Text."))
        away.rename(seeds)
        ok &= step(out, "back: its new seed served, /healthz ok",
                   lambda: "Back again" in titles(d) and status(d) == "ok", time.monotonic())
        d.write_seed("2026-01-09", "After return. Text.", name="after.txt")
        ok &= step(out, "a seed written after the return served",
                   lambda: "After return" in titles(d), time.monotonic())
    finally:
        d.stop()
    return ok, "; ".join(out)


# -- the output folder and the state file ---------------------------------------------------------
def outstate(root: Path) -> tuple[bool, str]:
    d = FeederDaemon(root, config=ALL)
    generate(d.seeds, 200)
    d.start()
    out, ok = [], True
    try:
        files = sorted(p.relative_to(d.out) for p in d.out.rglob("*") if p.is_file())
        t0 = time.monotonic()
        shutil.rmtree(d.out)
        seen = set()

        def back() -> bool:
            s = status(d)
            seen.add(s)
            complete = all((d.out / f).exists() for f in files)
            if s == "ok" and not complete:
                seen.add("LIE: ok while incomplete")
            return s == "ok" and complete
        try:
            t1 = poll(back, timeout=10, interval=0.005)
            out.append(f"rm -rf out: {len(files)} files back, healthz ok, "
                       f"{1000 * (t1 - t0):.0f} ms; states {sorted(seen)}")
        except TimeoutError:
            ok = False
            out.append(f"rm -rf out: not back in 10 s; states {sorted(seen)}")
        ok = ok and not any(s.startswith("LIE") for s in seen)
        # the state file
        d.state.unlink()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{d.state}{suffix}").unlink()
        d.write_seed("2026-01-05", "After state deleted. Text.", name="afterstate.txt")
        try:
            poll(lambda: "After state deleted" in titles(d), timeout=10)
            out.append(f"state deleted: new seed served, healthz {status(d)}")
        except TimeoutError:
            ok = False
            out.append(f"state deleted: new seed NOT served, healthz {status(d)}")
        twin = FeederDaemon(root, name="twin", seeds=d.seeds, out=d.out, state=d.state)
        code = None
        with contextlib.suppress(AssertionError):
            code = twin.run_to_exit(timeout=15)
        if code is None:
            ok = False
            out.append("a second daemon on the same state path RUNS alongside")
        else:
            out.append(f"second daemon refused (exit {code})")
        twin.kill()
    finally:
        d.stop()
    return ok, "; ".join(out)


# -- big passes: kill -9, SIGTERM -----------------------------------------------------------------
def _big(root: Path, count: int) -> FeederDaemon:
    d = FeederDaemon(root, config=ALL)
    for i in range(count):
        (d.seeds / f"{i:05d}.txt").write_bytes(
            seed_bytes(f"2020-01-{i % 28 + 1:02d}", f"Article {i:05d}. " + "Body text. " * 40))
        os.utime(d.seeds / f"{i:05d}.txt", (OLD, OLD))
    return d


def kill9(root: Path, count: int) -> tuple[bool, str]:
    d = _big(root, count)
    d.proc = d.spawn()
    out, ok = [], True
    try:
        d.wait_until(d.pool_processes, timeout=120, interval=0.01, what="pool workers")
        time.sleep(0.5)  # well inside the pass: some entries written, most not
        d.kill()
        t0 = time.monotonic()
        try:
            t1 = poll(lambda: not d.processes(), timeout=15, interval=0.005)
            out.append(f"no pool process alive {1000 * (t1 - t0):.0f} ms after")
        except TimeoutError:
            ok = False
            out.append(f"{len(d.processes())} processes alive 15 s after")
            for pid in d.processes():
                os.kill(pid, signal.SIGKILL)
        tmps_before = [p.name for p in d.out.rglob("*.tmp")]
        d.start(timeout=120)
        n = d.health()["entries"]
        pages = len(list((d.out / "entries").glob("*.html")))
        tmps = [p.name for p in d.out.rglob("*.tmp")]
        refused = all(d.get(str(p)).status_code == 404 for p in
                      [Path("entries") / t for t in tmps_before[:5]] + [Path(t) for t in
                                                                        tmps_before[:5]])
        ok = ok and n == count and pages == count and not tmps and refused
        out.append(f"restart: {n} of {count} entries, {pages} pages, {len(tmps)} .tmp left "
                   f"({len(tmps_before)} after the kill), .tmp served: {not refused}")
    finally:
        d.stop(timeout=30)
    return ok, "kill -9 mid-pass: " + "; ".join(out)


def term(root: Path, count: int) -> tuple[bool, str]:
    d = _big(root, count)
    d.proc = d.spawn()
    try:
        d.wait_until(d.pool_processes, timeout=120, interval=0.01, what="pool workers")
        time.sleep(0.5)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        try:
            code = d.proc.wait(30)
        except subprocess.TimeoutExpired:
            return False, "SIGTERM mid-pass: still running after 30 s"
        seconds = time.monotonic() - t0
        left = wait_until_gone(d)
    finally:
        d.kill()
    ok = code == 0 and seconds < 5 and not left
    return ok, (f"SIGTERM mid-pass of {count}: exit {code} in {seconds:.2f} s; "
                f"{len(left)} processes left 5 s later")


def wait_until_gone(d: FeederDaemon) -> dict[int, int]:
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not d.processes(), timeout=5, interval=0.01)
    left = d.processes()
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


# -- a slow writer ---------------------------------------------------------------------------------
def slow(root: Path) -> tuple[bool, str]:
    d = FeederDaemon(root).start()
    bad = 0
    polls = 0
    try:
        path = d.seeds / "slow.txt"
        with open(path, "wb") as fh:
            fh.write(b" date 2026-01-05 First half of a slow seed")
            fh.flush()
            os.fsync(fh.fileno())
            end = time.monotonic() + 3
            with http_client() as client:
                while time.monotonic() < end:
                    polls += 1
                    if b"First half" in client.get(d.url("atom.xml")).content:
                        bad += 1
                    time.sleep(0.02)
            fh.write(b" and the second half. More text.")
        closed = time.monotonic()
        d.wait_until(lambda: b"second half" in d.get("atom.xml").content, what="whole seed")
        after = time.monotonic() - closed
    finally:
        d.stop()
    return bad == 0, (f"seed open 3 s mid-write: half-written served in {bad} of {polls} polls; "
                      f"whole one served {1000 * after:.0f} ms after close")


# -- odd files, a hung ping at SIGTERM -------------------------------------------------------------
def names(root: Path) -> tuple[bool, str]:
    d = FeederDaemon(root).start()
    try:
        seeds = os.fsencode(d.seeds)
        os.mkfifo(d.seeds / "pipe.txt")  # opening it would block a reader for ever
        (d.seeds / "link.txt").symlink_to("pipe.txt")
        for name in (b"caf\xe9.txt", b"new\nline.txt"):
            with open(os.path.join(seeds, name), "wb") as fh:
                fh.write(seed_bytes("2026-01-03", "An odd file name. Some text."))
        with open(d.seeds / "huge.txt", "wb") as fh:  # sparse: 5 GB read would take a while
            fh.write(b" date 2026-01-01 x")
            fh.truncate(5 * 2**30)
        d.write_seed("2026-01-05", "After the odd files. Some text.", name="after.txt")
        t0 = time.monotonic()
        try:
            t1 = poll(lambda: "After the odd files" in titles(d), timeout=20)
        except TimeoutError:
            return False, f"odd files: a later seed NOT served in 20 s; healthz {d.health()}"
        h = d.health()
    finally:
        d.stop()
    ok = h["status"] == "ok" and h["rejected_count"] == 4
    return ok, (f"FIFO, symlink to it, Latin-1 name, newline name, sparse 5 GB: a later seed "
                f"served {1000 * (t1 - t0):.0f} ms after; {h['rejected_count']} rejected, "
                f"healthz {h['status']}")


def hungterm(root: Path) -> tuple[bool, str]:
    with hanging_hub() as (hub, accepted):
        d = FeederDaemon(root, hubs=[hub], config={"websub": {"ping_timeout": 30}}).start()
        try:
            if not accepted.wait(20):
                return False, "SIGTERM with a hung ping: the hub was never pinged"
            t0 = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            code = d.proc.wait(60)
            seconds = time.monotonic() - t0
        finally:
            d.kill()
    return code == 0 and seconds < 5, (f"SIGTERM while a ping hangs (ping_timeout 30 s): exit "
                                       f"{code} in {seconds:.1f} s (feeder.service: "
                                       f"TimeoutStopSec=10)")


# -- a port in use --------------------------------------------------------------------------------
def port(root: Path) -> tuple[bool, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        d = FeederDaemon(root)
        d.port = sock.getsockname()[1]
        code = d.run_to_exit(timeout=30)
    log = d.log_text().strip().splitlines()
    ok = code == 1 and len(log) == 1 and "Traceback" not in d.log_text()
    return ok, f"port in use: exit {code}, {len(log)} line(s): {log[-1] if log else ''!r}"


# -- systemd notify ------------------------------------------------------------------------------
def notify(root: Path) -> tuple[bool, str]:
    path = str(root / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    got: list[tuple[float, str]] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                got.append((time.monotonic(), sock.recv(4096).decode()))
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    d = FeederDaemon(root, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    generate(d.seeds, 100)
    d.proc = d.spawn()
    ready_when_built = None
    try:
        poll(lambda: any("READY=1" in m for _, m in got), timeout=60)
        with contextlib.suppress(Exception):
            h = d.health()
            ready_when_built = bool(h["last_build"]) and h["status"] == "ok" and \
                d.get("atom.xml").status_code == 200
        time.sleep(3)  # two watchdog periods of 1 s
        d.stop()
        poll(lambda: any("STOPPING=1" in m for _, m in got), timeout=5)
    except TimeoutError:
        pass
    finally:
        d.kill()
        stop.set()
        thread.join()
        sock.close()
    kinds = {line.split("=")[0] for _, m in got for line in m.splitlines()}
    dogs = sum("WATCHDOG=1" in m for _, m in got)
    ok = {"READY", "STATUS", "WATCHDOG", "STOPPING"} <= kinds and bool(ready_when_built)
    return ok, (f"notify: {len(got)} datagrams, kinds {sorted(kinds)}, {dogs} WATCHDOG=1 in "
                f"~3 s, READY=1 when the first build was served: {ready_when_built}")


SCENARIOS = ["cp", "rsync", "hup", "swap", "outstate", "names", "slow", "port", "notify",
             "term", "kill9", "hungterm"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=SCENARIOS)
    parser.add_argument("--big", type=int, default=3000, help="seeds for kill9 and term")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix=f"feeder-operator-{name}-") as tmp:
            fn = globals()[name]
            try:
                ok, line = fn(Path(tmp), args.big) if name in ("kill9", "term") else \
                    fn(Path(tmp))
            except Exception as exc:  # noqa: BLE001 - a scenario that breaks is a FAIL
                ok, line = False, f"{name}: {type(exc).__name__}: {str(exc)[-1500:]}"
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: {line}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
