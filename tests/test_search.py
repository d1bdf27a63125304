"""Site search (search.py): settings, the Pagefind index a build makes, how it is swapped in,
and how the server hands out its files. Runs the real Pagefind binary of the ``search``
extra; skipped without it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import lxml.html
import pytest

from feeder import config as config_mod
from feeder import search
from feeder.errors import ConfigError
from feeder.server import create_app

from ._daemon import feeder_env
from ._servers import http_client, serve_in_thread
from .conftest import REAL_SEED, Site

needs_pagefind = pytest.mark.skipif(search.executable() is None,
                                    reason=f"Pagefind not installed ({search.INSTALL})")


@pytest.fixture
def searched(tmp_path: Path) -> Iterator[Site]:
    """A site of the real Italian seed and two others, built with search on."""
    site = Site(tmp_path, search=True)
    shutil.copy(REAL_SEED, site.seeds / REAL_SEED.name)
    site.write("a.txt", "2025-11-01", "The harvest began early this year. Farmers were glad.")
    site.write("b.txt", "2025-11-02", "Die Ernte begann dieses Jahr früher. Die Bauern freuten "
                                      "sich über das gute Wetter im Herbst.")
    search.update(site.config, site.build())
    yield site
    site.close()


def entry_json(out: Path) -> dict:
    return json.loads((out / "pagefind" / "pagefind-entry.json").read_bytes())


# -- settings ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("Yes", True),
                                             ("false", False), ("off", False)])
def test_search_from_the_environment(text: str, value: bool) -> None:
    assert config_mod.load(None, env={"FEEDER_SEARCH": text}).search is value


@pytest.mark.parametrize("bad", ["maybe", ""])
def test_search_refuses_what_is_not_a_boolean(bad: str) -> None:
    with pytest.raises(ConfigError, match="FEEDER_SEARCH.*not true or false"):
        config_mod.load(None, env={"FEEDER_SEARCH": bad})


def test_search_in_the_file_must_be_a_toml_boolean(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text('[site]\nsearch = "sometimes"\nsearch_interval = 5\n')
    with pytest.raises(ConfigError, match=r"'search'.*\[site\].*not true or false"):
        config_mod.load(path, env={})
    path.write_text("[site]\nsearch = true\nsearch_interval = 0.5\n")
    with pytest.raises(ConfigError, match="search_interval.*between 1 and 86400"):
        config_mod.load(path, env={})


# -- what the server hands out -------------------------------------------------------------

@pytest.mark.parametrize(("path", "ctype"), [
    ("/search.html", b"text/html; charset=utf-8"),
    ("/pagefind/pagefind-ui.js", b"text/javascript; charset=utf-8"),
    ("/pagefind/pagefind-ui.css", b"text/css; charset=utf-8"),
    ("/pagefind/pagefind-entry.json", b"application/json"),
    ("/pagefind/wasm.it.pagefind", b"application/octet-stream"),
    ("/pagefind/pagefind.it_86b4ee8e78.pf_meta", b"application/octet-stream"),
    ("/pagefind/fragment/it_a78a9bf.pf_fragment", b"application/octet-stream"),
    ("/pagefind/index/it_17258f5.pf_index", b"application/octet-stream"),
    ("/pagefind/x.wasm", b"application/wasm"),
])
def test_route_names_the_file_and_its_type(path: str, ctype: bytes) -> None:
    assert search.route(path) == (path[1:], ctype)


@pytest.mark.parametrize("path", [
    "/pagefind/../atom.xml", "/pagefind/.hidden.js", "/pagefind/", "/pagefind/a/b.js",
    "/pagefind/fragment/../../state.sqlite3", "/pagefind/x.html", "/.pagefind-abc/pagefind.js",
    "/pagefind/x.js/", "/pagefind\\x.js", "/search.htm",
])
def test_route_refuses_anything_else(path: str) -> None:
    assert search.route(path) is None


# -- a build with search on ------------------------------------------------------------------

@needs_pagefind
def test_build_indexes_only_the_entry_pages_by_language(searched: Site) -> None:
    entry = entry_json(searched.out)
    counts = {lang: v["page_count"] for lang, v in entry["languages"].items()}
    assert counts == {"it": 1, "en": 1, "de": 1}  # no index page, no archive page
    link = searched.out / "pagefind"
    assert link.is_symlink() and os.readlink(link).startswith(".pagefind-")
    page = lxml.html.fromstring(searched.read("entries/000_d53b54a01c1a6f6f.html"))
    assert page.get("lang") == "it"
    assert page.xpath("//article/@data-pagefind-body") == [""]
    assert not lxml.html.fromstring(searched.read("index.html")).xpath("//*[@data-pagefind-body]")


@needs_pagefind
def test_index_page_has_a_search_box_leading_to_the_search_page(searched: Site) -> None:
    index = lxml.html.fromstring(searched.read("index.html"))
    (form,) = index.xpath("//form[@role='search']")
    assert form.get("action") == "http://127.0.0.1:8080/search.html"
    assert form.xpath(".//input/@name") == ["q"]
    page = searched.read("search.html").decode()
    assert 'src="pagefind/pagefind-ui.js"' in page and "triggerSearch" in page


@needs_pagefind
def test_rebuild_swaps_in_a_new_index_and_keeps_only_the_one_before(searched: Site) -> None:
    out = searched.out
    first = os.readlink(out / "pagefind")
    for n in range(3):
        searched.write(f"c{n}.txt", "2025-11-03", f"Word{n} appears here. Only here.")
        assert search.update(searched.config, searched.build()) is not None
    current = os.readlink(out / "pagefind")
    folders = sorted(p.name for p in out.glob(".pagefind-*"))
    assert current in folders and first not in folders and len(folders) == 2
    assert sum(v["page_count"] for v in entry_json(out)["languages"].values()) == 6
    # nothing changed in the entry pages: the index is left as it is
    assert search.update(searched.config, searched.build()) is None
    assert os.readlink(out / "pagefind") == current


@needs_pagefind
def test_turning_search_off_removes_the_index_and_the_box(searched: Site) -> None:
    off = searched.config.replace(search=False)
    searched.config = off
    search.update(off, searched.build())
    assert not (searched.out / "pagefind").exists()
    assert not list(searched.out.glob(".pagefind-*"))
    assert not (searched.out / "search.html").exists()
    assert b'role="search"' not in searched.read("index.html")


def test_search_on_without_pagefind_warns_in_one_line_and_builds_the_rest(
        site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PAGEFIND_BINARY_PATH", str(site.root / "no-such-pagefind"))
    search.executable.cache_clear()
    try:
        site.config = site.config.replace(search=True)
        site.write("a.txt")
        report = site.build()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="feeder"):
            assert search.update(site.config, report) is None
    finally:
        search.executable.cache_clear()
    (line,) = [r.getMessage() for r in caplog.records]
    assert "pip install 'feeder[search]'" in line and "\n" not in line
    assert (site.out / "atom.xml").is_file() and (site.out / "entries" / "a.html").is_file()
    assert b'role="search"' not in site.read("index.html")
    assert not (site.out / "pagefind").exists() and not (site.out / "search.html").exists()


@needs_pagefind
def test_a_failed_pagefind_keeps_the_old_index(searched: Site, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    before = os.readlink(searched.out / "pagefind")
    failing = searched.root / "pagefind-fails"
    failing.write_text("#!/bin/sh\necho 'Error: no space left on device' >&2\nexit 3\n")
    failing.chmod(0o755)
    monkeypatch.setenv("PAGEFIND_BINARY_PATH", str(failing))
    search.executable.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="feeder"):
            assert search.update(searched.config, searched.build(), force=True) is None
    finally:
        search.executable.cache_clear()
    assert "Pagefind exited with 3: Error: no space left on device" in caplog.text
    assert os.readlink(searched.out / "pagefind") == before
    assert [p.name for p in searched.out.glob(".pagefind-*")] == [before]


@needs_pagefind
def test_a_pagefind_that_hangs_is_stopped_after_its_time_with_one_line(
        searched: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """``feeder build`` (and the daemon's index thread) would otherwise wait for ever."""
    before = os.readlink(searched.out / "pagefind")
    hanging = searched.root / "pagefind-hangs"
    hanging.write_text("#!/bin/sh\nexec sleep 300\n")
    hanging.chmod(0o755)
    monkeypatch.setenv("PAGEFIND_BINARY_PATH", str(hanging))
    monkeypatch.setattr(search, "RUN_TIMEOUT", 1.0, raising=False)
    search.executable.cache_clear()
    report = searched.build()
    caplog.clear()
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(
        search.update(searched.config, report, force=True)), daemon=True)
    try:
        with caplog.at_level(logging.WARNING, logger="feeder"):
            worker.start()
            worker.join(60)
    finally:
        search.executable.cache_clear()
    assert result == [None], "still waiting for Pagefind"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "Pagefind did not finish within 1 s" in line
    assert os.readlink(searched.out / "pagefind") == before
    assert [p.name for p in searched.out.glob(".pagefind-*")] == [before]


# -- serving ---------------------------------------------------------------------------------

@needs_pagefind
def test_server_hands_out_the_search_files_with_their_types(searched: Site) -> None:
    out = searched.out
    app = create_app(out, base_url="http://127.0.0.1:8080/")
    fragment = next((out / "pagefind" / "fragment").iterdir()).name
    wasm = next(p.name for p in (out / "pagefind").glob("wasm.*.pagefind"))
    (out / "pagefind" / "secret.js").symlink_to(searched.config.state)  # outside: refused
    with serve_in_thread(app) as base, http_client(base_url=base) as client:
        for path, ctype in [("search.html", "text/html; charset=utf-8"),
                            ("pagefind/pagefind-ui.js", "text/javascript; charset=utf-8"),
                            ("pagefind/pagefind-ui.css", "text/css; charset=utf-8"),
                            ("pagefind/pagefind-entry.json", "application/json"),
                            (f"pagefind/{wasm}", "application/octet-stream"),
                            (f"pagefind/fragment/{fragment}", "application/octet-stream")]:
            r = client.get(path, headers={"accept-encoding": "gzip"})
            assert r.status_code == 200, path
            assert r.headers["content-type"] == ctype, path
            assert r.content == (out / path).read_bytes(), path
        # Pagefind's chunks are gzip already: sent as they are, for its script to unpack
        r = client.get(f"pagefind/fragment/{fragment}", headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in r.headers and r.content[:2] == b"\x1f\x8b"
        r = client.get("pagefind/pagefind-ui.js", headers={"accept-encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"  # text, compressed as asked
        for path in ("pagefind/secret.js", "pagefind/../state.sqlite3", "pagefind/%2e%2e/atom.xml",
                     f"{os.readlink(out / 'pagefind')}/pagefind.js"):
            assert client.get(path).status_code == 404, path


# -- the command ----------------------------------------------------------------------------

@needs_pagefind
def test_feeder_build_with_search_says_what_it_indexed(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(REAL_SEED, seeds / REAL_SEED.name)
    cmd = [sys.executable, "-m", "feeder", "build", "--seeds", str(seeds),
           "--out", str(tmp_path / "out"), "--state", str(tmp_path / "s.sqlite3")]
    done = subprocess.run(cmd, env={**feeder_env(), "FEEDER_SEARCH": "true"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "search index: 1 pages in" in done.stdout
    assert entry_json(tmp_path / "out")["languages"]["it"]["page_count"] == 1
