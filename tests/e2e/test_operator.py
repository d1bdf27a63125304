"""An operator's mistakes on a running daemon (issue 12, "nothing is ever lost"): a real
``feeder run`` subprocess, real files, real processes beside it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .._daemon import FeederDaemon, feeder_env, seed_bytes

pytestmark = pytest.mark.slow


def feeder(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeder", *map(str, args)], cwd=cwd,
                          env=feeder_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)


def delete_state(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)


def stored_names(state: Path) -> set[str]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return {name for (name,) in db.execute("SELECT name FROM entries")}


def test_a_deleted_state_file_is_written_again_and_still_locks(
        daemon_factory: Callable[..., FeederDaemon], tmp_path: Path) -> None:
    """Deleted under a running daemon, the state file comes back at its path, with what
    the daemon learns afterwards; no second daemon or build can take the paths meanwhile."""
    d = daemon_factory()
    d.write_seed("2026-01-04", "Before. The first article.", name="before.txt")
    d.start()
    delete_state(d.state)
    d.write_seed("2026-01-05", "After the state went. Still served.", name="after.txt")
    d.wait_for_entry("After the state went")
    d.wait_until(lambda: d.state.exists() and d.health()["status"] == "ok",
                 what="the state file written again, /healthz ok")
    d.wait_for_log("was deleted while running: written again")
    d.wait_until(lambda: stored_names(d.state) == {"before.txt", "after.txt"},
                 what="both entries in the state file at the path")

    delete_state(d.state)  # a second deletion: refused even before it is written again
    build = feeder("build", "--seeds", d.seeds, "--out", d.out, "--state", d.state,
                   cwd=tmp_path)
    assert build.returncode == 1
    assert f"in use by another feeder process (pid {d.proc.pid})" in build.stderr
    assert len(build.stderr.strip().splitlines()) == 1, build.stderr
    other_state = feeder("build", "--seeds", d.seeds, "--out", d.out, "--state",
                         tmp_path / "other.sqlite3", cwd=tmp_path)
    assert other_state.returncode == 1
    assert f"output folder {d.out}: in use by another feeder process (pid {d.proc.pid})" \
        in other_state.stderr
    d.wait_until(lambda: d.state.exists() and d.health()["status"] == "ok",
                 what="the state file written again")
    d.stop()
    d.start()
    assert stored_names(d.state) == {"before.txt", "after.txt"}
    assert "state was empty" not in d.log_text()


def test_feeder_check_beside_a_running_daemon(
        daemon_factory: Callable[..., FeederDaemon], tmp_path: Path) -> None:
    """`feeder check` reads the state a daemon holds (read-only: no lock, no write) and
    reports the mass deletion the daemon is holding."""
    d = daemon_factory()
    for i in range(12):
        d.write_seed(f"2026-01-{i + 1:02d}", f"Article {i}. Text.", name=f"{i:02d}.txt")
    d.start()
    aside = tmp_path / "aside"
    d.seeds.rename(aside)
    d.seeds.mkdir()
    d.wait_until(lambda: d.health()["held_deletions"] == 12, what="the deletion held")
    check = feeder("check", "--seeds", d.seeds, "--out", d.out, "--state", d.state,
                   cwd=tmp_path)
    assert check.returncode == 1, check.stderr
    assert "12 of 12 entries have no seed" in check.stdout, check.stdout
    assert check.stderr == ""
    d.seeds.rmdir()
    aside.rename(d.seeds)
    d.wait_until(lambda: d.health()["status"] == "ok", what="the seeds back, /healthz ok")
    d.write_seed("2026-02-01", "After the check. Served.", name="later.txt")
    d.wait_for_entry("After the check")
