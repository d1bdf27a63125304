"""Recovery and pinned ids as an operator meets them: real ``feeder build`` and ``feeder run``
processes, real time (issue 12, items 3 and 4)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .._daemon import FeederDaemon, feeder_env, seed_bytes
from ..test_recover import snapshot

pytestmark = pytest.mark.slow


def feeder_build(root: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "feeder", "build", "--seeds", "seeds", "--out", "public",
         "--state", "state.sqlite3", "--base-url", "http://127.0.0.1:8080/"],
        cwd=root, env={**feeder_env(), "FEEDER_MAX_ENTRIES": "5", "FEEDER_ARCHIVE_SIZE": "4"},
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result


def test_feeder_build_recovers_a_deleted_state_without_changing_one_output_file(
        tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for i in range(23):
        (seeds / f"s{i:02d}.txt").write_bytes(seed_bytes(f"2025-01-{i + 1:02d}", f"Post {i}. X."))
    first = feeder_build(tmp_path)
    for i in (2, 9, 21):
        (seeds / f"s{i:02d}.txt").write_bytes(seed_bytes(f"2025-01-{i + 1:02d}", f"Post {i}, v2."))
    for i in (5, 12, 20):
        (seeds / f"s{i:02d}.txt").unlink()
    feeder_build(tmp_path)
    before = snapshot(tmp_path / "public")
    assert len([p for p in before if p.startswith("archive/atom-")]) >= 4
    (tmp_path / "state.sqlite3").unlink()
    last = feeder_build(tmp_path)
    assert snapshot(tmp_path / "public") == before
    assert "recovered 20 entries" in last.stderr
    for result in (first, last):  # at every start
        assert "loopback tag authority 127.0.0.1" in result.stderr
        assert "FEEDER_TAG_AUTHORITY" in result.stderr


def test_feeder_run_warns_about_a_loopback_authority_at_start(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    d = daemon_factory().start()
    d.wait_for_log("loopback tag authority 127.0.0.1", "[feed] tag_authority",
                   "FEEDER_TAG_AUTHORITY")
