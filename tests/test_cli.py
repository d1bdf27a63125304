"""The ``feeder`` command as an operator meets it: a real ``python -m feeder`` subprocess.

An operator's mistake (a bad setting, a missing folder, a config file that cannot be read)
ends the command with one line on stderr naming what is wrong, no traceback, and exit 1.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ._daemon import REPO, children_running, feeder_env, free_port

pytestmark = pytest.mark.slow


def run_feeder(cwd: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeder", *args], cwd=cwd,
                          env={**feeder_env(), **(env or {})}, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, check=False)


def assert_one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.returncode == 1, (result.returncode, result.stderr)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A working folder with a seeds folder holding one good seed."""
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "001_a.txt").write_bytes(b" date 2025-01-02 Hello world. Text.")
    return tmp_path


@pytest.mark.parametrize(("env", "needles"), [
    ({"FEEDER_DEBOUNCE": "nan"}, ("'debounce'", "nan", "FEEDER_DEBOUNCE", "between 0 and 10")),
    ({"FEEDER_TITLE": ""}, ("'title'", "''", "FEEDER_TITLE", "must not be empty")),
    ({"FEEDER_MAX_FUTURE_DAYS": str(10**10)}, ("'max_future_days'", str(10**10))),
    ({"FEEDER_MAX_SEED_BYTES": str(10**20)}, ("'max_seed_bytes'", str(10**20))),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else None)
def test_build_with_a_bad_setting_says_so_in_one_line(
    site: Path, env: dict[str, str], needles: tuple[str, ...]
) -> None:
    result = run_feeder(site, "build", env=env)
    assert_one_error_line(result, *needles)
    assert result.stdout == ""
    assert not (site / "public").exists()


@pytest.mark.parametrize("command", ["build", "check", "run"])
def test_a_missing_seeds_folder_is_one_line(tmp_path: Path, command: str) -> None:
    args = ["--port", str(free_port())] if command == "run" else []
    result = run_feeder(tmp_path, command, "--seeds", "absent", *args)
    assert_one_error_line(result, "seeds folder absent does not exist")


def test_run_with_a_bad_setting_does_not_start(site: Path) -> None:
    result = run_feeder(site, "run", "--port", str(free_port()), env={"FEEDER_SETTLE": "nan"})
    assert_one_error_line(result, "'settle'", "FEEDER_SETTLE", "between 0.05 and 60")


@pytest.mark.parametrize(("write", "needles"), [
    (lambda p: p.mkdir(), ("cannot read it", "Is a directory")),
    (lambda p: p.write_text("[feed\ntitle = 1\n"), ("not valid TOML", "line 1")),
    (lambda p: p.write_text("[daemon]\ndebounce = inf\n"),
     ("'debounce'", "inf", "feeder.toml [daemon]")),
], ids=["a directory", "TOML syntax", "inf"])
def test_a_config_file_that_cannot_be_used_is_one_line(site: Path, write, needles) -> None:  # noqa: ANN001
    write(site / "feeder.toml")
    assert_one_error_line(run_feeder(site, "build", "--config", "feeder.toml"), *needles)


@pytest.mark.parametrize(("args", "needle"), [
    (["--out", "seeds/001_a.txt"], "cannot make the output folder seeds/001_a.txt"),
    (["--state", "seeds"], "state file seeds: Is a directory"),
])
def test_a_file_where_a_folder_belongs_is_one_line(site: Path, args: list[str],
                                                   needle: str) -> None:
    assert_one_error_line(run_feeder(site, "build", *args), needle)
    assert (site / "seeds").is_dir(), "the state folder was moved aside"


def test_a_state_file_that_cannot_grow_is_one_line_and_loses_nothing(site: Path) -> None:
    """A full disk (here: a file size limit, RLIMIT_FSIZE) met by SQLite in the middle of a
    transaction: SQLite has rolled it back already, and the build says so in one line (it
    was a traceback about a rollback with no transaction, which hid the cause). The state
    file stays sound, and the next build, with room, publishes every seed."""
    import resource

    body = " ".join(f"Sentence {i} of a long article about nothing much." for i in range(60))
    for n in range(300):
        (site / "seeds" / f"{n:03d}_x.txt").write_text(f" date 2025-01-02 Article {n}. {body}")
    limit = 256 * 1024

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = [sys.executable, "-m", "feeder", "build", "--seeds", "seeds", "--out", "public",
            "--state", "state.sqlite3"]
    full = subprocess.run(args, cwd=site, env=feeder_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False,
                          preexec_fn=small_files)  # noqa: PLW1509 - no threads here
    assert "Traceback" not in full.stderr, full.stderr
    assert full.returncode == 1, full.stderr
    last = full.stderr.strip().splitlines()[-1]  # after the log lines of the seeds read
    assert last.startswith("Error: state file state.sqlite3: "), last
    with sqlite3.connect(site / "state.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    done = run_feeder(site, "build", "--seeds", "seeds", "--out", "public",
                      "--state", "state.sqlite3")
    assert done.returncode == 0, done.stderr
    assert len(list((site / "public" / "entries").glob("*.html"))) == 301


def test_build_without_a_base_url_reuses_the_stored_one(site: Path) -> None:
    """A build with the default base URL would fight a daemon on another port (or behind a
    proxy): each would render every output again with its own URLs."""
    first = run_feeder(site, "build", "--base-url", "http://127.0.0.1:9123/")
    assert first.returncode == 0, first.stderr
    second = run_feeder(site, "build")
    assert second.returncode == 0, second.stderr
    assert "0 files written" in second.stdout, second.stdout
    assert "base_url: http://127.0.0.1:9123/, as the output was built" in second.stderr
    assert b"http://127.0.0.1:9123/atom.xml" in (site / "public" / "atom.xml").read_bytes()
    moved = run_feeder(site, "build", "--base-url", "https://news.example.org/")
    assert moved.returncode == 0, moved.stderr
    (line,) = [x for x in moved.stderr.splitlines() if "base_url is" in x]
    assert "http://127.0.0.1:9123/" in line and "rendering every output again" in line


def test_check_and_build_with_most_seeds_gone(site: Path) -> None:
    seeds = site / "seeds"
    for i in range(2, 13):
        (seeds / f"{i:03d}_a.txt").write_bytes(f" date 2025-01-{i:02d} Article {i}. Text.".encode())
    assert run_feeder(site, "build").returncode == 0
    for path in seeds.iterdir():
        path.unlink()
    check = run_feeder(site, "check")
    assert check.returncode == 1
    assert "12 of 12 entries have no seed" in check.stdout, check.stdout
    assert "feeder build --allow-mass-delete" in check.stdout
    held = run_feeder(site, "build")
    assert held.returncode == 0 and "ERROR: holding the removal of 12 of 12" in held.stderr
    assert "12 entries" in held.stdout and len(list((site / "public" / "entries").iterdir())) == 12
    confirmed = run_feeder(site, "build", "--allow-mass-delete")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "0 entries, 12 removed" in confirmed.stdout, confirmed.stdout
    assert run_feeder(site, "check").returncode == 0


def test_check_reads_the_state_file_without_upgrading_it(site: Path) -> None:
    """`feeder check` only reads the state file (a daemon may hold it): an older schema is
    reported, and the file keeps its bytes."""
    state = site / "feeder.sqlite3"
    db = sqlite3.connect(state)
    db.executescript((REPO / "tests" / "data" / "state" / "v1-first.sql").read_text())
    db.close()
    before = state.read_bytes()
    check = run_feeder(site, "check")
    assert_one_error_line(check, "state file feeder.sqlite3", "schema version 1 is older",
                          "upgrades it")
    assert "1 seeds ok, 0 rejected" in check.stdout
    assert state.read_bytes() == before
    assert sorted(p.name for p in site.iterdir()) == ["feeder.sqlite3", "seeds"]


def test_ping_announces_the_feeds_at_the_base_url_the_output_was_built_with(
        site: Path) -> None:
    """The topics are the feeds' own URLs: the stored base URL, not the default one
    (http://127.0.0.1:8080/), unless a base URL is given."""
    from ._servers import serve_in_thread

    forms: list[bytes] = []

    async def hub(scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return
        body = b""
        while (message := await receive())["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        forms.append(body)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    built = run_feeder(site, "build", "--base-url", "https://news.example.org/")
    assert built.returncode == 0, built.stderr
    with serve_in_thread(hub) as url:
        forms.clear()
        stored = run_feeder(site, "ping", "--hub", url)
        assert stored.returncode == 0, stored.stderr
        given = run_feeder(site, "ping", "--hub", url, "--base-url", "https://other.example/")
        assert given.returncode == 0, given.stderr
    feeds = ("atom.xml", "rss.xml", "feed.json")
    assert stored.stdout.splitlines() == [
        f"pinged {url} for https://news.example.org/{folder}{feed}"
        for folder in ("", "lang/en/") for feed in feeds]
    assert "https%3A%2F%2Fnews.example.org%2Fatom.xml" in forms[0].decode()
    assert all("other.example/" in line for line in given.stdout.splitlines())


# -- a big build stopped from outside ---------------------------------------------------------

BUILD = ("build", "--base-url", "https://news.example.org/")  # no loopback-id warning


def _build_with_workers(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """A ``feeder build`` of 3 × POOL_THRESHOLD seeds, once its pool's workers (the children
    of its fork server) are running; polled, not slept for."""
    from feeder.pool import POOL_THRESHOLD

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for i in range(3 * POOL_THRESHOLD):
        (seeds / f"{i:04d}_a.txt").write_bytes(
            f" date 2025-{1 + i % 12:02d}-{1 + i % 28:02d} Article {i}. Some text.".encode())
    proc = subprocess.Popen([sys.executable, "-m", "feeder", *BUILD], cwd=tmp_path,
                            env=feeder_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        servers = children_running(proc.pid, b"forkserver")
        workers = sorted(w for s in servers for w in children_running(s, b"forkserver"))
        if workers:
            return proc, workers
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"no worker process seen; build: {proc.communicate()}")


def _temp_files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob(".*.tmp"))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: no worker processes")
def test_a_worker_killed_mid_build_is_one_line_and_the_next_build_finishes(
        tmp_path: Path) -> None:
    """A worker killed mid-build: feeder's last word is one line saying so (it was
    multiprocessing's BrokenProcessPool traceback); a killed worker can also make CPython's
    own clean-up of the pool's semaphores print a warning or an "Exception ignored" above it.
    Killed as the pool starts, the build used to hang in about half the tries."""
    proc, workers = _build_with_workers(tmp_path)
    os.kill(workers[0], signal.SIGKILL)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "BrokenProcessPool" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: a worker process ended abruptly"), err
    assert last.endswith("the next pass does the rest"), err
    again = run_feeder(tmp_path, *BUILD, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "1200 entries" in again.stdout, again.stdout
    assert _temp_files(tmp_path / "public") == []


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: no worker processes")
def test_sigterm_stops_a_build_in_one_line_with_no_temp_file_left(tmp_path: Path) -> None:
    """SIGTERM (systemd, ``timeout``) used to end ``feeder build`` at once, silently (exit
    -15), its temp files left: it now stops the build at its next batch, says so in one
    line, and the next build finishes the work."""
    proc, _workers = _build_with_workers(tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert_one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                          "stopped by SIGTERM", "the next build does the rest")
    assert _temp_files(tmp_path / "public") == []
    again = run_feeder(tmp_path, *BUILD, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "1200 entries" in again.stdout, again.stdout
