"""Site search end to end: the daemon's background index, its shutdown while Pagefind runs,
and ``search.html?q=Pyongyang`` in a real headless Chromium against ``feeder serve``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from feeder import config as config_mod
from feeder import search
from feeder.report import BuildReport

from .._browser import DESKTOP, PHONE, Browser, Tab, chromium
from .._daemon import REPO, FeederDaemon, feeder_env, free_port
from .._servers import http_get, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(search.executable() is None,
                       reason=f"Pagefind not installed ({search.INSTALL})"),
]

SEEDS = REPO / "seeds"
REAL = "000_d53b54a01c1a6f6f"  # the user's Italian seed, which mentions Pyongyang


def indexed_pages(daemon: FeederDaemon) -> int:
    r = daemon.get("pagefind/pagefind-entry.json")
    if r.status_code != 200:
        return 0
    return sum(v["page_count"] for v in r.json()["languages"].values())


def test_daemon_indexes_new_entries_in_the_background(
        daemon_factory: Callable[..., FeederDaemon]) -> None:
    daemon = daemon_factory(config={"site": {"search": True, "search_interval": 1.0}})
    for seed in SEEDS.glob("*.txt"):
        shutil.copy(seed, daemon.seeds / seed.name)
    daemon.start()
    daemon.wait_until(lambda: indexed_pages(daemon) == 9, timeout=30, what="the first index")
    assert daemon.get("search.html").status_code == 200
    assert b'action="' + daemon.url("search.html").encode() in daemon.get("").content
    daemon.write_seed("2026-01-05", "Quokkas were counted on Rottnest Island. Many of them.")
    daemon.wait_for_entry("Quokkas were counted on Rottnest Island.")
    daemon.wait_until(lambda: indexed_pages(daemon) == 10, timeout=30, what="the new page")
    assert len(daemon.log_lines("search index: ")) >= 2


def test_sigterm_while_pagefind_runs_ends_it(tmp_path: Path,
                                             daemon_factory: Callable[..., FeederDaemon]) -> None:
    """A Pagefind that hangs (a stand-in that sleeps) is ended by the daemon's stop."""
    started = tmp_path / "pagefind.pid"
    hanging = tmp_path / "pagefind-hangs"
    hanging.write_text(f"#!/bin/sh\necho $$ > {started}\nexec sleep 300\n")
    hanging.chmod(0o755)
    daemon = daemon_factory(config={"site": {"search": True}},
                            env={"PAGEFIND_BINARY_PATH": str(hanging)})
    daemon.write_seed("2026-01-05", "Quokkas were counted on Rottnest Island. Many of them.")
    daemon.start()
    pid = int(daemon.wait_until(lambda: started.is_file() and started.read_text().strip(),
                                timeout=30, what="Pagefind to start"))
    assert pid in daemon.processes()
    t0 = time.monotonic()
    daemon.stop()  # exit 0 within 5 s of SIGTERM
    assert time.monotonic() - t0 < 5
    assert pid not in daemon.processes()
    assert not (daemon.out / "pagefind").exists()
    assert not list(daemon.out.glob(".pagefind-*"))  # the half-built index is dropped


def one_page(tmp_path: Path, interval: float) -> config_mod.Config:
    """A config with search on, over an output folder of one entry page."""
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    (out / "entries").mkdir(parents=True)
    seeds.mkdir()
    (out / "entries" / "a.html").write_text(
        '<!doctype html><html lang="en"><body><article data-pagefind-body><h1>Quokka</h1>'
        "<p>Counted on the island.</p></article></body></html>")
    return config_mod.load(None, env={}, seeds=seeds, out=out, search=True,
                           search_interval=interval)


def test_indexer_runs_at_most_once_per_interval(tmp_path: Path) -> None:
    cfg = one_page(tmp_path, 3600.0)
    out = cfg.out
    changed = BuildReport(written=["entries/a.html"])
    indexer = search.Indexer()
    try:
        indexer.poke(cfg, changed)
        wait_until(lambda: indexer.runs == 1, timeout=30, what="the first run")
        assert (out / "pagefind" / "pagefind-entry.json").is_file()
        indexer.poke(cfg, changed)  # within the interval: waits for it, does not run now
        until = wait_until(lambda: indexer.waiting_until, timeout=10, what="the wait")
        assert until - time.monotonic() > 3000 and indexer.runs == 1
    finally:
        t0 = time.monotonic()
        indexer.stop()
        assert time.monotonic() - t0 < 5  # the wait ends with the stop


def test_an_index_deleted_under_the_daemon_is_rebuilt_after_the_next_pass(
        tmp_path: Path) -> None:
    """The pagefind link removed by hand: a pass that changed no entry page still rebuilds
    it (search.html alone would otherwise search nothing until an entry changes)."""
    cfg = one_page(tmp_path, 1.0)
    out = cfg.out
    indexer = search.Indexer()
    try:
        indexer.poke(cfg, BuildReport(written=["entries/a.html"]))
        wait_until(lambda: indexer.runs == 1, timeout=30, what="the first run")
        (out / "pagefind").unlink()
        indexer.poke(cfg, BuildReport())  # a pass that wrote no entry page
        wait_until(lambda: indexer.runs == 2, timeout=30, what="a run after the deletion")
        assert search.is_built(out)
    finally:
        indexer.stop()


# -- in a real browser ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bundled seeds built with search on by ``feeder build``, served by ``feeder
    serve`` on 127.0.0.1; yields the base URL."""
    tmp_path = tmp_path_factory.mktemp("served")
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    env = {**feeder_env(), "FEEDER_SEARCH": "true"}
    common = ["--seeds", str(SEEDS), "--out", str(tmp_path / "out"),
              "--state", str(tmp_path / "state.sqlite3"), "--base-url", base]
    done = subprocess.run([sys.executable, "-m", "feeder", "build", *common], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "search index: 9 pages" in done.stdout, done.stderr
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "feeder", "serve", *common,
                                 "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        def answers() -> bool:
            try:
                return http_get(base + "search.html", timeout=2).status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None  # exited: reported below
        wait_until(answers, timeout=30, what="feeder serve")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    exe = chromium()
    if exe is None:
        pytest.skip("chromium not installed")
    b = Browser(exe)
    yield b
    b.close()


RESULTS = ("[...document.querySelectorAll('.pagefind-ui__result-link')]"
           ".map(a => new URL(a.href).pathname)")
# Pagefind's UI says "N results for X" (or "No results for X") once a search has finished
DONE = ("(m => m && /^(\\d+ results?|No results) for /.test(m.textContent) && m.textContent)"
        "(document.querySelector('.pagefind-ui__message'))")


def found(tab: Tab) -> tuple[str, list[str]]:
    """The UI's message once a search has finished, and the result links once they are
    drawn (each result's text is fetched after the count is known)."""
    message = tab.wait_for(DONE, timeout=60)
    return message, tab.wait_for(f"(r => r.length && r)({RESULTS})", timeout=30)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_linked_search_lists_the_real_seed(served: str, browser: Browser, tmp_path: Path,
                                             viewport: tuple) -> None:
    with browser.page(served + "search.html?q=Pyongyang", viewport) as tab:
        assert found(tab) == ("1 result for Pyongyang", [f"/entries/{REAL}.html"])
        assert "Kim Jong Un" in tab.evaluate(
            "document.querySelector('.pagefind-ui__result-title').textContent")
        assert tab.evaluate("location.search") == "?q=Pyongyang"
        shot = tmp_path / f"search-{viewport[0]}.png"
        tab.screenshot(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # the page is no wider than the viewport: nothing to scroll sideways on a phone
        assert tab.evaluate("document.documentElement.scrollWidth") <= viewport[0]
    if os.environ.get("FEEDER_KEEP_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["FEEDER_KEEP_SCREENSHOTS"]) / shot.name)


def test_the_index_search_box_searches(served: str, browser: Browser) -> None:
    with browser.page(served, PHONE) as tab:
        tab.wait_for("document.readyState === 'complete' && !!document.querySelector('form')")
        tab.evaluate("document.querySelector('form[role=search] input').value = 'Pyongyang';"
                     "document.querySelector('form[role=search]').submit()")
        assert found(tab) == ("1 result for Pyongyang", [f"/entries/{REAL}.html"])
        assert tab.evaluate("location.pathname + location.search") == "/search.html?q=Pyongyang"


def test_search_files_are_served_with_their_types(served: str) -> None:
    entry = http_get(served + "pagefind/pagefind-entry.json")
    assert entry.headers["content-type"] == "application/json"
    language = next(iter(json.loads(entry.content)["languages"].values()))
    wasm = http_get(served + f"pagefind/wasm.{language['wasm']}.pagefind")
    meta = http_get(served + f"pagefind/pagefind.{language['hash']}.pf_meta")
    for r in (wasm, meta):
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert http_get(served + "pagefind/pagefind-ui.js").headers["content-type"].startswith(
        "text/javascript")
