"""Make a fixture: an SQL dump of a state file written by an older feeder.

    python tests/data/state/make.py COMMIT NAME

Runs COMMIT's own ``feeder build`` (its feeder/ package, exported with git archive) on six
small seeds and one rejected file, with max_entries 2 and archive_size 2 where COMMIT knows
them (so later layouts have archive pages), then queues a ping and records a hub result
through COMMIT's Store, and writes NAME.sql beside this script: a comment naming the commit,
the PRAGMA user_version line (iterdump leaves it out), and the dump. test_store.py loads
every *.sql here and opens it with the current code.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

# Import feeder from COMMIT's export, not from this checkout (an editable install's finder
# comes before sys.path).
OLD_FEEDER = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path.insert(0, sys.argv.pop(1))
"""

BUILD = OLD_FEEDER + """
import runpy
runpy.run_module("feeder", run_name="__main__")
"""

AFTER_BUILD = OLD_FEEDER + """
import datetime as dt
from feeder import store as stores
store = stores.Store(sys.argv[1])
pings = stores.PingStore(sys.argv[1]) if hasattr(stores, "PingStore") else store  # later ones
pings.add_pings(["https://hub.example/"], ["https://example.org/atom.xml"], 1767225600.0)
pings.hub_result("https://hub.example/", False, "HTTP 503",
                 dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
store.set_meta("fixture", "made by tests/data/state/make.py")
if pings is not store:
    pings.close()
store.close()
"""


def main(commit: str, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "feeder"],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(root / "src", filter="data")
        seeds = root / "seeds"
        seeds.mkdir()
        for i in range(1, 7):
            (seeds / f"{i:03d}_fixture.txt").write_text(
                f"date 2025-01-0{i}\n\nArticle number {i}. A short body for the fixture.\n")
        (seeds / "007_empty.txt").write_bytes(b"")
        state = root / "state.sqlite3"
        env = {**os.environ, "FEEDER_MAX_ENTRIES": "2", "FEEDER_ARCHIVE_SIZE": "2"}
        src = str(root / "src")
        subprocess.run([sys.executable, "-c", BUILD, src, "build", "--seeds", str(seeds),
                        "--out", str(root / "out"), "--state", str(state),
                        "--base-url", "https://example.org/"], check=True, env=env)
        subprocess.run([sys.executable, "-c", AFTER_BUILD, src, str(state)], check=True,
                       env=env)
        db = sqlite3.connect(state)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        date = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ad",
                               "--date=short", commit], check=True, capture_output=True,
                              text=True).stdout.strip()
        lines = [f"-- A state file written by feeder at commit {commit} ({date}),",
                 "-- made by tests/data/state/make.py.",
                 f"PRAGMA user_version={version};", *db.iterdump()]
        db.close()
    (HERE / f"{name}.sql").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
