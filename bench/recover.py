"""What recovering a lost state from the published output costs, and that it changes nothing.

    python bench/recover.py [--seeds 10000] [--max-entries 50] [--archive-size 50]

Writes ``--seeds`` generated seeds to a temp folder, runs ``feeder build`` (cold), edits 1%
of the seeds and deletes 1%, builds again, copies the output, deletes the state file and
builds once more (the recovery). Prints the time of the cold build and of the recovery, and
how many output files differ from the copy afterwards (must be 0; exits 1 otherwise).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402
from tests._daemon import feeder_env  # noqa: E402


def build(root: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "feeder", "build", "--seeds", "seeds", "--out", "public",
                    "--state", "state.sqlite3", "--base-url", "https://news.example.org/"],
                   cwd=root, env=env, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def differing(a: Path, b: Path) -> int:
    """Files present in only one of the trees, or with other bytes."""
    count = 0
    for here, _dirs, files in os.walk(a):
        rel = Path(here).relative_to(a)
        for name in files:
            other = b / rel / name
            if not other.exists() or not filecmp.cmp(Path(here) / name, other, shallow=False):
                count += 1
    count += sum(len(files) for _h, _d, files in os.walk(b)) - sum(
        len(files) for _h, _d, files in os.walk(a))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--max-entries", type=int, default=50)
    parser.add_argument("--archive-size", type=int, default=50)
    args = parser.parse_args()
    env = {**feeder_env(), "FEEDER_MAX_ENTRIES": str(args.max_entries),
           "FEEDER_ARCHIVE_SIZE": str(args.archive_size), "FEEDER_TAG_AUTHORITY": "example.org"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = generate(root / "seeds", args.seeds)
        cold = build(root, env)
        step = 100
        for name in names[::step]:
            (root / "seeds" / name).write_text(" date 2025-03-03 Edited. Its new text.")
        for name in names[step // 2::step]:
            (root / "seeds" / name).unlink()
        build(root, env)
        shutil.copytree(root / "public", root / "before")
        (root / "state.sqlite3").unlink()
        recovery = build(root, env)
        changed = differing(root / "before", root / "public")
    print(f"{args.seeds} seeds, max_entries {args.max_entries}, archive_size {args.archive_size}")
    print(f"cold build   {cold:7.2f} s")
    print(f"recovery     {recovery:7.2f} s")
    print(f"output files changed by the recovery: {changed}")
    sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()
