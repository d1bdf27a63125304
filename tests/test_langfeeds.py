"""Feeds per language (``lang/<code>/``): built in-process from the bundled multilingual
seeds, served by the real server, recovered from the output."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import httpx
import pytest
from lxml import etree, html

from feeder import render
from feeder.server import create_app
from feeder.store import PingStore, Store
from tests._daemon import feeder_env
from tests._servers import http_client, serve_in_thread
from tests.test_outbox import CountingHub

from .conftest import Site

REPO = Path(__file__).resolve().parent.parent
LANGS = ["de", "en", "es", "fr", "it"]  # of the bundled seeds; es has one seed, 005
ES_SEED = "005_836737420ee6a35f.txt"
HUB = "http://127.0.0.1:9/hub"
ATOM = "{http://www.w3.org/2005/Atom}"
FILES = ("atom.xml", "rss.xml", "feed.json", "index.html")


def lang_paths(code: str) -> set[str]:
    return {f"lang/{code}/{name}" for name in FILES}


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def pending_topics(site: Site) -> set[str]:
    with PingStore(site.config.state) as pings:
        return {p.topic for p in pings.pending_pings()}


def drop_pings(site: Site) -> None:
    with site.store.transaction():
        site.store.db.execute("DELETE FROM pings")


@pytest.fixture
def multi(make_site: Callable[..., Site]) -> Site:
    """The bundled seeds (de, en, es, fr, it), built, with a hub configured."""
    site = make_site(hubs=[HUB])
    for seed in sorted((REPO / "seeds").iterdir()):
        shutil.copy(seed, site.seeds / seed.name)
    site.build()
    return site


def test_each_language_has_valid_feeds_and_a_page(multi: Site) -> None:
    base = multi.config.base_url
    ids = set()
    for code in LANGS:
        for name in ("atom.xml", "rss.xml"):
            feed = feedparser.parse(multi.read(f"lang/{code}/{name}"))
            assert feed.bozo == 0, feed.get("bozo_exception")
            assert feed.entries
            assert all(e.link.startswith(base + "entries/") for e in feed.entries)
            rels = {(link.rel, link.href) for link in feed.feed.links}
            assert ("self", f"{base}lang/{code}/{name}") in rels
            assert ("hub", HUB) in rels
            assert ("alternate", f"{base}lang/{code}/") in rels
            gz = multi.out / f"lang/{code}/{name}.gz"
            assert gzip.decompress(gz.read_bytes()) == multi.read(f"lang/{code}/{name}")
        atom = etree.fromstring(multi.read(f"lang/{code}/atom.xml"))
        assert atom.get("{http://www.w3.org/XML/1998/namespace}lang") == code
        ids.add(atom.findtext(f"{ATOM}id"))
        assert atom.findtext(f"{ATOM}id") == f"tag:127.0.0.1,2025:feed/lang/{code}"
        doc = json.loads(multi.read(f"lang/{code}/feed.json"))
        assert doc["language"] == code and {i["language"] for i in doc["items"]} == {code}
        assert doc["feed_url"] == f"{base}lang/{code}/feed.json"
        page = html.fromstring(multi.read(f"lang/{code}/index.html"))
        assert page.get("lang") == code
        assert {a.get("href") for a in page.iter("a")} >= {
            e["url"] for e in doc["items"]} | {f"{base}lang/{code}/atom.xml"}
    assert len(ids) == len(LANGS)  # distinct, and none the main feed's
    assert etree.fromstring(multi.read("atom.xml")).findtext(f"{ATOM}id") not in ids
    # every entry is in the feed of its own language, once
    main = json.loads(multi.read("feed.json"))["items"]
    assert sorted(i["id"] for code in LANGS
                  for i in json.loads(multi.read(f"lang/{code}/feed.json"))["items"]) \
        == sorted(i["id"] for i in main)


def test_the_index_links_every_language_with_hreflang(multi: Site) -> None:
    page = html.fromstring(multi.read("index.html"))
    alternates = [(link.get("hreflang"), link.get("type"), link.get("href"))
                  for link in page.iter("link") if link.get("hreflang")]
    base = multi.config.base_url
    assert alternates == [
        (code, ctype, f"{base}lang/{code}/{name}") for code in LANGS
        for ctype, name in (("application/atom+xml", "atom.xml"),
                            ("application/rss+xml", "rss.xml"),
                            ("application/feed+json", "feed.json"))]
    assert [a.get("href") for a in page.iter("a") if a.get("hreflang")] == [
        f"{base}lang/{code}/" for code in LANGS]


def test_a_new_seed_rewrites_and_pings_only_its_language(
        multi: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    drop_pings(multi)
    rendered = []  # the languages whose page was rendered (a spy on the real renderer)
    real = render.render_language_page
    monkeypatch.setattr(render, "render_language_page",
                        lambda info, *rest: rendered.append(info.language) or real(info, *rest))
    before = snapshot(multi.out)
    multi.write("900_new.txt", "2026-01-10",
                "Der Stadtrat hat am Montag beschlossen, die Brücke über den Fluss zu erneuern."
                " Die Arbeiten beginnen im Frühjahr und dauern zwei Jahre.")
    report = multi.build()
    changed = {p for p, data in snapshot(multi.out).items() if before.get(p) != data}
    lang_changed = {p for p in changed if p.startswith("lang/")}
    assert lang_changed == {p for path in lang_paths("de") for p in (path, path + ".gz")}
    assert {"atom.xml", "rss.xml", "feed.json", "index.html"} <= changed
    base = multi.config.base_url
    assert pending_topics(multi) == {base + p for p in (
        "atom.xml", "rss.xml", "feed.json", "lang/de/atom.xml", "lang/de/rss.xml",
        "lang/de/feed.json")}
    assert {p for p in report.changed_feeds if p.startswith("lang/")} == {
        "lang/de/atom.xml", "lang/de/rss.xml", "lang/de/feed.json"}
    # only the new seed's language was rendered, and a pass with no change renders none
    assert rendered == ["de"]
    assert multi.build({"900_new.txt"}).written == [] and rendered == ["de"]


DE_TEXT = ("Der Stadtrat hat am Montag beschlossen, die Brücke über den Fluss zu erneuern."
           " Die Arbeiten beginnen im Frühjahr und dauern zwei Jahre.")
EN_TEXT = ("The city council decided on Monday to rebuild the old bridge over the river."
           " The work starts in the spring and will take two years to finish.")


def fail_to_rename_de_atom(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A named pass of 900_new.txt whose rename of lang/de/atom.xml fails (a disk error):
    the pass fails (the caller undoes ``monkeypatch`` to let the next one through)."""
    from feeder import output
    from feeder.errors import OutputError

    def fail(path: Path) -> None:
        if path == site.out / "lang/de/atom.xml":
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(output, "before_rename", fail)
    with pytest.raises(OutputError):
        site.build({"900_new.txt"})


def test_a_named_pass_whose_language_feed_fails_to_go_in_place_writes_it_when_retried(
        multi: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass of one named seed whose language feed cannot be renamed into place (a disk
    error there) fails; the daemon's retry of the same names then writes that feed with the
    new entry, and pings its hub only once it is in place (the language stayed to be
    rendered: it was not marked done while its files were only staged)."""
    drop_pings(multi)
    multi.write("900_new.txt", "2026-01-10", DE_TEXT)
    fail_to_rename_de_atom(multi, monkeypatch)
    assert b"900_new" not in multi.read("lang/de/atom.xml")
    assert pending_topics(multi) == set()
    monkeypatch.undo()
    multi.store.close()
    multi.store = Store(multi.config.state)
    multi.build({"900_new.txt"})
    for name in ("atom.xml", "rss.xml", "feed.json", "index.html"):
        assert b"900_new" in multi.read(f"lang/de/{name}"), name
    assert multi.config.base_url + "lang/de/atom.xml" in pending_topics(multi)


OBSTACLES = {  # what an operator left in the way, and the path the pass names
    "lang is a file": "lang/de/atom.xml",  # the first file of the first language
    "its feed is a folder": "lang/de/atom.xml",
    "its feed's .gz is a folder": "lang/de/atom.xml.gz",
    "its feed is a FIFO": "lang/de/atom.xml",  # an open of it would wait for a writer
    "its folder is a dangling symlink": "lang/de",
}


def snapshot_names(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*")}


def put_obstacle(out: Path, obstacle: str) -> None:
    path = out / OBSTACLES[obstacle]
    if obstacle == "lang is a file":
        shutil.rmtree(out / "lang")
        (out / "lang").write_text("not a folder")
    elif obstacle == "its folder is a dangling symlink":
        shutil.rmtree(path)
        path.symlink_to(out / "nowhere")
    elif obstacle.endswith("FIFO"):
        path.unlink()
        os.mkfifo(path)
    else:
        path.unlink()
        path.mkdir()


def clear_obstacle(out: Path, obstacle: str) -> None:
    if obstacle == "lang is a file":
        (out / "lang").unlink()
    elif (out / OBSTACLES[obstacle]).is_dir():
        (out / OBSTACLES[obstacle]).rmdir()
    else:
        (out / OBSTACLES[obstacle]).unlink()


def feed_topics(base: str, *folders: str) -> set[str]:
    return {f"{base}{folder}{name}" for folder in folders
            for name in ("atom.xml", "rss.xml", "feed.json")}


@pytest.mark.parametrize("named", [False, True], ids=["full pass", "named pass"])
@pytest.mark.parametrize("obstacle", list(OBSTACLES))
def test_a_language_whose_files_are_in_the_way_holds_back_nothing_else(
        multi: Site, named: bool, obstacle: str) -> None:
    """An operator leaves ``lang`` a plain file, or a folder where a language's feed (or
    its .gz) was. The pass still puts the main feeds and the other languages in place with
    the new seeds, and lets their pings go; it reports the path, and leaves the blocked
    language's files as they were, unannounced and still to render, so that the next pass
    once the path is cleared, a named one too, writes and pings them."""
    drop_pings(multi)
    put_obstacle(multi.out, obstacle)
    multi.write("900_new.txt", "2026-01-10", DE_TEXT)
    multi.write("901_new.txt", "2026-01-11", EN_TEXT)
    report = multi.build({"900_new.txt", "901_new.txt"} if named else None)
    assert report.blocked and report.blocked[0][0].endswith(OBSTACLES[obstacle])
    base = multi.config.base_url
    for name in ("atom.xml", "rss.xml"):
        feed = feedparser.parse(multi.read(name))
        assert feed.bozo == 0
        links = {e.link for e in feed.entries}
        assert {base + "entries/900_new.html", base + "entries/901_new.html"} <= links, name
    assert b"900_new" in multi.read("feed.json") and b"900_new" in multi.read("index.html")
    assert b"900_new" in multi.read("sitemap-1.xml")
    en_too = obstacle != "lang is a file"
    assert pending_topics(multi) == feed_topics(base, "", *(["lang/en/"] if en_too else []))
    if en_too:
        for name in FILES:
            assert b"901_new" in multi.read(f"lang/en/{name}"), name
        if "lang/de/rss.xml" in snapshot_names(multi.out):  # gone with the whole folder
            assert b"900_new" not in multi.read("lang/de/rss.xml")

    clear_obstacle(multi.out, obstacle)
    multi.build({"900_new.txt"})  # a named pass: the language was left to render
    for name in FILES:
        assert b"900_new" in multi.read(f"lang/de/{name}"), name
    assert feed_topics(base, "lang/de/") <= pending_topics(multi)
    if not en_too:
        assert b"901_new" in multi.read("lang/en/atom.xml")
    assert multi.build().blocked == []  # a full pass finds every language's files in place
    for code in LANGS:
        for name in ("atom.xml", "rss.xml"):
            assert feedparser.parse(multi.read(f"lang/{code}/{name}")).entries, (code, name)


def test_pings_held_for_a_language_stay_held_while_its_files_are_in_the_way(
        multi: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass records a new version of a language feed and holds its pings, then fails to
    put it in place. Before the next pass, a folder is made where that feed goes: that
    pass publishes the rest and lets their pings go, but not the blocked feed's, whose
    version is still not in place; the pass after the folder is removed writes it, then
    they go."""
    drop_pings(multi)
    multi.write("900_new.txt", "2026-01-10", DE_TEXT)
    fail_to_rename_de_atom(multi, monkeypatch)
    monkeypatch.undo()
    put_obstacle(multi.out, "its feed is a folder")
    multi.write("901_new.txt", "2026-01-11", EN_TEXT)
    report = multi.build({"901_new.txt"})
    assert report.blocked
    base = multi.config.base_url
    pending = pending_topics(multi)
    assert not pending & feed_topics(base, "lang/de/"), "pinged a feed not in place"
    assert feed_topics(base, "", "lang/en/") <= pending
    clear_obstacle(multi.out, "its feed is a folder")
    assert multi.build({"901_new.txt"}).blocked == []
    assert b"900_new" in multi.read("lang/de/atom.xml")
    assert feed_topics(base, "lang/de/") <= pending_topics(multi)


@pytest.mark.slow
def test_feeder_build_announces_what_it_wrote_and_exits_1_naming_what_was_in_the_way(
        make_site: Callable[..., Site], ping_hub: tuple[str, CountingHub]) -> None:
    url, hub = ping_hub
    site = make_site(hubs=[url])
    for seed in sorted((REPO / "seeds").iterdir()):
        shutil.copy(seed, site.seeds / seed.name)
    site.build()
    drop_pings(site)
    put_obstacle(site.out, "its feed is a folder")
    site.write("901_new.txt", "2026-01-11", EN_TEXT)
    site.store.close()
    c = site.config
    result = subprocess.run(
        [sys.executable, "-m", "feeder", "build", "--seeds", str(c.seeds), "--out", str(c.out),
         "--state", str(c.state), "--base-url", c.base_url],
        env={**feeder_env(), "FEEDER_HUBS": url}, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120, check=False)
    site.store = Store(c.state)  # for the fixture to close
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: cannot write {c.out / 'lang/de/atom.xml'}: Is a directory")
    assert hub.topics() == sorted(["atom.xml", "rss.xml", "feed.json", "lang/en/atom.xml",
                                   "lang/en/rss.xml", "lang/en/feed.json"])


def test_a_language_whose_last_entry_goes_keeps_a_valid_empty_feed(multi: Site) -> None:
    drop_pings(multi)
    (multi.seeds / ES_SEED).unlink()
    multi.build()
    for name in ("atom.xml", "rss.xml"):
        feed = feedparser.parse(multi.read(f"lang/es/{name}"))
        assert feed.bozo == 0 and feed.entries == []
    assert json.loads(multi.read("lang/es/feed.json"))["items"] == []
    base = multi.config.base_url
    assert {t for t in pending_topics(multi) if "/lang/" in t} == {
        f"{base}lang/es/{name}" for name in ("atom.xml", "rss.xml", "feed.json")}
    index = multi.read("index.html").decode()
    assert "lang/es/" not in index and "lang/it/" in index
    # it comes back when an article in Spanish does
    shutil.copy(REPO / "seeds" / ES_SEED, multi.seeds / ES_SEED)
    multi.build()
    assert len(feedparser.parse(multi.read("lang/es/atom.xml")).entries) == 1
    assert "lang/es/" in multi.read("index.html").decode()


def test_a_scheduled_entry_reaches_its_language_feed_when_due(site: Site) -> None:
    site.write("a.txt", "2026-11-20", "Un articolo già pubblicato sulla scuola del paese, che"
                                      " ha riaperto dopo sei anni di chiusura.")
    site.write("b.txt", "2026-11-29", "Un articolo programmato per dopodomani, sulla raccolta"
                                      " delle olive che è cominciata in anticipo.")
    site.build()
    assert len(feedparser.parse(site.read("lang/it/atom.xml")).entries) == 1
    site.now += dt.timedelta(days=3)
    site.build(set())  # a pass with no changed seeds, as the daemon's timer runs
    assert len(feedparser.parse(site.read("lang/it/atom.xml")).entries) == 2


def test_missing_or_damaged_language_files_are_restored_on_a_full_pass(multi: Site) -> None:
    before = snapshot(multi.out)
    (multi.out / "lang/fr/rss.xml").unlink()
    (multi.out / "lang/it/index.html").write_bytes(b"")
    multi.build()
    assert snapshot(multi.out) == before


def test_a_recovered_state_changes_no_file_and_pings_nothing(multi: Site) -> None:
    (multi.seeds / ES_SEED).unlink()  # an empty language feed, too
    multi.build()
    before = snapshot(multi.out)
    multi.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{multi.config.state}{suffix}").unlink(missing_ok=True)
    multi.store = Store(multi.config.state)
    report = multi.build()
    assert snapshot(multi.out) == before
    assert report.written == [] and report.changed_feeds == []
    assert pending_topics(multi) == set()
    # the empty language is known again: a Spanish article updates its feed
    assert multi.store.db.execute("SELECT code FROM languages WHERE code = 'es'").fetchone()


@pytest.fixture
def served(multi: Site) -> Iterator[httpx.Client]:
    app = create_app(multi.out, base_url=multi.config.base_url, hubs=(HUB,))
    with serve_in_thread(app) as base, http_client(base_url=base) as client:
        yield client


@pytest.mark.parametrize("name", ["atom.xml", "rss.xml", "feed.json"])
def test_language_feeds_are_served_with_links_304_and_gzip(served: httpx.Client,
                                                          multi: Site, name: str) -> None:
    path = f"/lang/it/{name}"
    first = served.get(path, headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200 and first.content == multi.read(path[1:])
    links = first.headers.get_list("link")
    assert f'<{HUB}>; rel="hub"' in links
    assert f'<{multi.config.base_url}{path[1:]}>; rel="self"' in links
    again = served.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.headers.get_list("link") == links
    since = served.get(path, headers={"If-Modified-Since": first.headers["last-modified"]})
    assert since.status_code == 304
    zipped = served.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == multi.read(path[1:])  # httpx decoded it


def test_language_pages_are_served_and_odd_paths_are_not(served: httpx.Client,
                                                        multi: Site) -> None:
    for path in ("/lang/de/", "/lang/de/index.html"):
        response = served.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.content == multi.read("lang/de/index.html")
        assert "link" not in response.headers
    for path in ("/lang/", "/lang/de", "/lang/DE/atom.xml", "/lang/de/atom.xml.gz",
                 "/lang/de/x.xml", "/lang/xx/atom.xml"):
        assert served.get(path).status_code == 404, path


@pytest.fixture
def ping_hub() -> Iterator[tuple[str, CountingHub]]:
    hub = CountingHub()
    with serve_in_thread(hub) as url:
        yield url + "/hub", hub


@pytest.mark.slow
def test_feeder_ping_pings_every_language_feed(multi: Site,
                                               ping_hub: tuple[str, CountingHub]) -> None:
    url, hub = ping_hub
    c = multi.config
    result = subprocess.run(
        [sys.executable, "-m", "feeder", "ping", "--seeds", str(c.seeds), "--out", str(c.out),
         "--state", str(c.state), "--base-url", c.base_url, "--hub", url],
        env=feeder_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert hub.topics() == sorted(["atom.xml", "rss.xml", "feed.json"] + [
        f"lang/{code}/{name}" for code in LANGS for name in ("atom.xml", "rss.xml", "feed.json")])
