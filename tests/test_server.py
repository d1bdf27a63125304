"""feeder.server against a real uvicorn on 127.0.0.1, spoken to with httpx."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from feeder.server import REVALIDATE, ASGIApp, _Files, create_app
from tests._daemon import free_port
from tests._servers import http_client, http_get, public_folder, serve_in_thread, wait_until

HUB = "http://127.0.0.1:9/hub"
HUB2 = "http://127.0.0.1:9/hub2"
ATOM_BODY = (b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
             + b"<entry><title>caf\xc3\xa9</title></entry>" * 400 + b"</feed>\n")
SECRET = b"TOP-SECRET-do-not-serve"

FILES = {
    "index.html": b"<!doctype html><title>index</title>" + b"<p>hello</p>" * 50,
    "atom.xml": ATOM_BODY,
    "rss.xml": b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>' + b" " * 500,
    "feed.json": b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
    "entries/hello-world.html": b"<!doctype html><title>hello</title>" + b"<p>x</p>" * 100,
    "entries/v1.2_x-y.html": b"<!doctype html><title>dots</title>",
    "archive/atom-1.xml": b"<feed>archive one</feed>",
    "archive/rss-2.xml": b"<rss>archive two</rss>",
}
ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
JSONF = "application/feed+json; charset=utf-8"
HTML = "text/html; charset=utf-8"


def write_atomic(path: Path, data: bytes) -> None:
    """What the core does: temp file beside the target, then os.replace."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return public_folder(tmp_path, FILES, ATOM_BODY, SECRET)


@pytest.fixture
def app(out: Path) -> ASGIApp:
    return create_app(out, base_url="http://feeds.example/", hubs=(HUB, HUB2), max_age=90)


@pytest.fixture
def base(app: ASGIApp) -> Iterator[str]:
    with serve_in_thread(app) as base:
        yield base


@pytest.fixture
def client(base: str) -> Iterator[httpx.Client]:
    # identity by default: gzip is asked for explicitly where a test wants it
    with http_client(base_url=base, headers={"Accept-Encoding": "identity"}) as client:
        yield client


def raw_get(client: httpx.Client, target: bytes, **headers: str) -> httpx.Response:
    """GET with an exact request target: httpx would otherwise normalise '..' and '%2e'."""
    return client.get("/", headers=headers, extensions={"target": target})


# --- routes, content types, methods --------------------------------------------------------

@pytest.mark.parametrize(("path", "rel", "ctype"), [
    ("/", "index.html", HTML),
    ("/atom.xml", "atom.xml", ATOM),
    ("/rss.xml", "rss.xml", RSS),
    ("/feed.json", "feed.json", JSONF),
    ("/entries/hello-world.html", "entries/hello-world.html", HTML),
    ("/entries/v1.2_x-y.html", "entries/v1.2_x-y.html", HTML),
    ("/archive/atom-1.xml", "archive/atom-1.xml", ATOM),
    ("/archive/rss-2.xml", "archive/rss-2.xml", RSS),
])
def test_routes_and_content_types(client: httpx.Client, path: str, rel: str, ctype: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == ctype
    assert r.content == FILES[rel]
    assert r.headers["content-length"] == str(len(FILES[rel]))
    assert r.headers["cache-control"] == "public, max-age=90"
    assert r.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in r.headers


@pytest.mark.parametrize("path", [
    "/nope", "/atom.xml/", "/entries/missing.html", "/archive/atom-9.xml", "/archive/atom-0.xml",
    "/entries/hello-world.htm", "/entries/", "/entries", "/archive", "/atom.xml.gz",
    "/archive/foo.xml", "/rss.xml.gz", "/entries/sub/x.html", "/index.html",
])
def test_unknown_paths_are_404(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_with_allow(client: httpx.Client, method: str) -> None:
    r = client.request(method, "/atom.xml")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_head_has_get_headers_and_no_body(client: httpx.Client) -> None:
    get, head = client.get("/atom.xml"), client.head("/atom.xml")
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "cache-control",
                 "vary"):
        assert head.headers[name] == get.headers[name]
    assert head.headers.get_list("link") == get.headers.get_list("link")
    gz = client.head("/atom.xml", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip" and gz.content == b""


# --- validators and conditional requests ---------------------------------------------------

def test_etag_and_last_modified(client: httpx.Client, out: Path) -> None:
    r = client.get("/atom.xml")
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert r.headers["last-modified"] == formatdate(
        int((out / "atom.xml").stat().st_mtime), usegmt=True)
    assert client.get("/atom.xml").headers["etag"] == etag
    assert client.get("/rss.xml").headers["etag"] != etag


def test_new_version_gets_new_etag_and_bytes(client: httpx.Client, out: Path,
                                             app: ASGIApp) -> None:
    old = client.get("/feed.json")
    write_atomic(out / "feed.json", b'{"version": "x", "items": [1]}')
    app.refresh()  # as the daemon does after a pass
    new = client.get("/feed.json", headers={"If-None-Match": old.headers["etag"]})
    assert new.status_code == 200
    assert new.content == b'{"version": "x", "items": [1]}'
    assert new.headers["etag"] != old.headers["etag"]


def test_cache_hit_does_not_reread(client: httpx.Client, out: Path) -> None:
    """Same (inode, mtime_ns, size) means the same version: the body is not read again."""
    path = out / "entries" / "hello-world.html"
    first = client.get("/entries/hello-world.html")
    st = path.stat()
    with open(path, "r+b") as f:  # in place, same size, then the old mtime back
        f.write(b"X")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert client.get("/entries/hello-world.html").content == first.content


@pytest.mark.parametrize("value", [
    "{etag}", "{etag_gz}", 'W/{etag}', '"nope", {etag}', '"a",W/{etag_gz} , "b"', "*",
])
def test_if_none_match_gives_304(client: httpx.Client, value: str) -> None:
    etag = client.get("/atom.xml").headers["etag"]
    etag_gz = client.get("/atom.xml", headers={"Accept-Encoding": "gzip"}).headers["etag"]
    r = client.get("/atom.xml", headers={"If-None-Match": value.format(etag=etag,
                                                                       etag_gz=etag_gz)})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == etag
    assert r.headers["cache-control"] == "public, max-age=90"
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.headers["last-modified"]
    assert len(r.headers.get_list("link")) == 3


def test_304_for_gzip_client_carries_gzip_etag(client: httpx.Client) -> None:
    etag = client.get("/atom.xml").headers["etag"]
    r = client.get("/atom.xml", headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert r.status_code == 304
    assert r.headers["etag"] == etag[:-1] + '-gz"'


def test_if_none_match_mismatch_gives_200(client: httpx.Client) -> None:
    r = client.get("/atom.xml", headers={"If-None-Match": '"other", W/"nope"'})
    assert r.status_code == 200 and r.content == ATOM_BODY


def test_if_modified_since(client: httpx.Client, out: Path) -> None:
    mtime = int(time.time()) - 7200  # so that a date an hour later is still in the past
    os.utime(out / "rss.xml", (mtime, mtime))
    r = client.get("/rss.xml")
    lm = r.headers["last-modified"]
    assert client.get("/rss.xml", headers={"If-Modified-Since": lm}).status_code == 304
    later = formatdate(mtime + 3600, usegmt=True)
    assert client.get("/rss.xml", headers={"If-Modified-Since": later}).status_code == 304
    earlier = formatdate(mtime - 1, usegmt=True)
    assert client.get("/rss.xml", headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get("/rss.xml", headers={"If-Modified-Since": "garbage"}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3)
    both = client.get("/rss.xml", headers={"If-Modified-Since": lm, "If-None-Match": '"x"'})
    assert both.status_code == 200


# --- gzip ------------------------------------------------------------------------------------

def get_raw(client: httpx.Client, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    with client.stream("GET", path, headers=headers) as r:
        return r, b"".join(r.iter_raw())


@pytest.mark.parametrize("ae", ["gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.5", "*",
                                "x-gzip", "deflate, *;q=0.1"])
def test_gzip_sends_precomputed_sibling(client: httpx.Client, out: Path, ae: str) -> None:
    r, raw = get_raw(client, "/atom.xml", **{"Accept-Encoding": ae})
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-type"] == ATOM
    assert r.headers["etag"].endswith('-gz"')
    assert r.headers["vary"] == "Accept-Encoding"
    assert raw == (out / "atom.xml.gz").read_bytes()
    assert gzip.decompress(raw) == ATOM_BODY


@pytest.mark.parametrize("ae", [None, "identity", "gzip;q=0", "GZIP; q=0.000, br", "*;q=0",
                                "gzip;q=0, *", "deflate"])
def test_identity_when_gzip_not_acceptable(client: httpx.Client, ae: str | None) -> None:
    headers = {} if ae is None else {"Accept-Encoding": ae}
    with http_client(base_url=str(client.base_url)) as plain:
        if ae is None:
            del plain.headers["Accept-Encoding"]
        r, raw = get_raw(plain, "/atom.xml", **headers)
    assert "content-encoding" not in r.headers
    assert raw == ATOM_BODY
    assert not r.headers["etag"].endswith('-gz"')


@pytest.mark.parametrize("path", ["/atom.xml", "/rss.xml", "/feed.json", "/archive/atom-1.xml"])
def test_hub_fetching_with_python_requests_gets_identity(client: httpx.Client, path: str) -> None:
    """Flask-WebSub asks for gzip via python-requests, then forwards Content-Encoding."""
    hub = {"Accept-Encoding": "gzip, deflate", "User-Agent": "python-requests/2.32.3"}
    r, raw = get_raw(client, path, **hub)
    assert "content-encoding" not in r.headers
    assert raw == FILES[path[1:]]
    r304 = client.get(path, headers={**hub, "If-None-Match": r.headers["etag"]})
    assert r304.status_code == 304 and r304.headers["etag"] == r.headers["etag"]


def test_python_requests_still_gets_gzip_pages(client: httpx.Client) -> None:
    hub = {"Accept-Encoding": "gzip", "User-Agent": "python-requests/2.32.3"}
    r, _ = get_raw(client, "/entries/hello-world.html", **hub)
    assert r.headers["content-encoding"] == "gzip"


def test_stale_gzip_sibling_is_not_served(client: httpx.Client, out: Path,
                                          app: ASGIApp) -> None:
    """The core replaces X.gz before X: a .gz of another version must be detected."""
    new_body = ATOM_BODY.replace(b"caf", b"tea")
    write_atomic(out / "atom.xml.gz", gzip.compress(new_body, compresslevel=1, mtime=0))
    r, raw = get_raw(client, "/atom.xml", **{"Accept-Encoding": "gzip"})
    assert gzip.decompress(raw) == ATOM_BODY
    assert raw != (out / "atom.xml.gz").read_bytes()
    # and once X catches up, the sibling is used
    write_atomic(out / "atom.xml", new_body)
    app.refresh()
    r, raw = get_raw(client, "/atom.xml", **{"Accept-Encoding": "gzip"})
    assert raw == (out / "atom.xml.gz").read_bytes()


def test_a_fifo_at_an_output_path_is_refused_not_waited_on(client: httpx.Client, out: Path,
                                                            app: ASGIApp) -> None:
    """A named pipe made where a feed or its .gz sibling goes (an operator's mistake) would
    hold a blocking open until something wrote into it: the feed's is 404, the sibling's is
    passed over (the feed is compressed here instead)."""
    (out / "atom.xml.gz").unlink(missing_ok=True)
    os.mkfifo(out / "atom.xml.gz")
    r, raw = get_raw(client, "/atom.xml", **{"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and gzip.decompress(raw) == ATOM_BODY
    (out / "rss.xml").unlink()
    os.mkfifo(out / "rss.xml")
    app.refresh()
    assert client.get("/rss.xml").status_code == 404


def test_gzip_without_sibling_is_compressed_here(client: httpx.Client) -> None:
    r, raw = get_raw(client, "/entries/hello-world.html", **{"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-length"] == str(len(raw))
    assert gzip.decompress(raw) == FILES["entries/hello-world.html"]
    again = get_raw(client, "/entries/hello-world.html", **{"Accept-Encoding": "gzip"})[1]
    assert again == raw


def test_gzip_trailer_matches_own_compression(client: httpx.Client) -> None:
    raw = get_raw(client, "/rss.xml", **{"Accept-Encoding": "gzip"})[1]
    assert int.from_bytes(raw[-8:-4], "little") == zlib.crc32(FILES["rss.xml"])
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime 0, like the core's siblings


# --- WebSub discovery ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/atom.xml", "/rss.xml", "/feed.json", "/archive/atom-1.xml",
                                  "/archive/rss-2.xml"])
def test_link_headers_on_feeds(client: httpx.Client, path: str) -> None:
    links = client.get(path).headers.get_list("link")
    assert f'<{HUB}>; rel="hub"' in links
    assert f'<{HUB2}>; rel="hub"' in links
    selfs = [link for link in links if 'rel="self"' in link]
    assert selfs == [f'<http://feeds.example{path}>; rel="self"']


@pytest.mark.parametrize("path", ["/", "/entries/hello-world.html"])
def test_no_link_headers_on_pages(client: httpx.Client, path: str) -> None:
    assert "link" not in client.get(path).headers


def test_no_hub_links_without_hubs(out: Path) -> None:
    with serve_in_thread(create_app(out, base_url="http://127.0.0.1:8080/")) as base:
        r = http_get(base + "atom.xml")
    assert r.headers.get_list("link") == ['<http://127.0.0.1:8080/atom.xml>; rel="self"']


# --- /healthz ----------------------------------------------------------------------------------

def test_healthz_default(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    assert r.json() == {"status": "ok"}


def test_healthz_reports_health(out: Path) -> None:
    state = {"ok": True}

    def health() -> tuple[bool, dict]:
        return state["ok"], {"status": "ok" if state["ok"] else "stalled", "pending": 3}

    with serve_in_thread(create_app(out, base_url="http://x/", health=health)) as base:
        assert http_get(base + "healthz").status_code == 200
        state["ok"] = False
        r = http_get(base + "healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "stalled", "pending": 3}


# --- security ------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    b"/../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E%2Fsecret.txt", b"/..%2fsecret.txt",
    b"/entries/../../secret.txt", b"/entries/..%2f..%2fsecret.txt",
    b"/entries/%2e%2e%2f%2e%2e%2fsecret.txt", b"/%252e%252e/secret.txt",
    b"/entries/%252e%252e%252fsecret.txt", b"//etc/passwd", b"/%2fetc%2fpasswd",
    b"/..\\secret.txt", b"/entries/..%5c..%5csecret.txt", b"/entries/x.html%00.html",
    b"/secret.txt%00", b"/%00", b"/entries/.tmp.html", b"/.atom.xml.tmp", b"/.hidden",
    b"/archive/../../secret.txt", b"/./atom.xml/../../secret.txt", b"/entries/..",
    b"/entries/...html", b"/archive/", b"/entries/%2e.html",
])
def test_traversal_never_escapes(client: httpx.Client, target: bytes) -> None:
    r = raw_get(client, target)
    assert r.status_code in (400, 404)
    assert SECRET not in r.content
    assert b"root:" not in r.content


def test_raw_targets_reach_the_server_unnormalised(client: httpx.Client) -> None:
    """Control for the test above: the exact target is sent, not a cleaned-up one."""
    assert raw_get(client, b"/atom.xml").content == ATOM_BODY
    assert raw_get(client, b"/%61tom.xml").content == ATOM_BODY  # decoded once, as RFC 3986
    assert raw_get(client, b"/entries/../atom.xml").status_code == 404


def test_secret_next_to_out_dir_exists(out: Path) -> None:
    assert (out.parent / "secret.txt").read_bytes() == SECRET  # the traversal target is real


def test_dot_files_and_temp_files_are_404(client: httpx.Client, out: Path) -> None:
    (out / "entries" / ".draft.html").write_bytes(b"draft")
    (out / ".atom.xml.tmp").write_bytes(b"half")
    assert client.get("/entries/.draft.html").status_code == 404
    assert client.get("/.atom.xml.tmp").status_code == 404


def test_directory_is_404(client: httpx.Client, out: Path) -> None:
    (out / "entries" / "dir.html").mkdir()
    (out / "entries" / "dir.html" / "x").write_bytes(b"x")
    for path in ("/entries/dir.html", "/entries/", "/archive/"):
        r = client.get(path)
        assert r.status_code == 404 and r.content == b"Not Found\n"


def test_symlink_pointing_outside_is_refused(client: httpx.Client, out: Path) -> None:
    (out / "entries" / "leak.html").symlink_to(out.parent / "secret.txt")
    r = client.get("/entries/leak.html")
    assert r.status_code == 404 and SECRET not in r.content


def test_symlinked_directory_pointing_outside_is_refused(out: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "atom-1.xml").write_bytes(SECRET)
    (elsewhere / "atom-1.xml.gz").write_bytes(gzip.compress(SECRET))
    (out / "archive" / "atom-1.xml").unlink()
    (out / "archive" / "rss-2.xml").unlink()
    (out / "archive").rmdir()
    (out / "archive").symlink_to(elsewhere)
    with serve_in_thread(create_app(out, base_url="http://x/")) as base:
        for ae in ("identity", "gzip"):
            r = http_get(base + "archive/atom-1.xml", headers={"Accept-Encoding": ae})
            assert r.status_code == 404 and SECRET not in r.content


def test_gzip_sibling_symlink_outside_is_ignored(client: httpx.Client, out: Path) -> None:
    # even a file outside that would pass the trailer check is not read
    outside = gzip.compress(FILES["rss.xml"], compresslevel=1, mtime=0)
    (out.parent / "evil.gz").write_bytes(outside)
    (out / "rss.xml.gz").symlink_to(out.parent / "evil.gz")
    r, raw = get_raw(client, "/rss.xml", **{"Accept-Encoding": "gzip"})
    assert gzip.decompress(raw) == FILES["rss.xml"]
    assert raw != outside


def test_symlink_inside_pointing_inside_is_served(client: httpx.Client, out: Path) -> None:
    """Documented choice: a link whose target is inside out_dir is followed."""
    (out / "entries" / "alias.html").symlink_to(out / "entries" / "hello-world.html")
    r = client.get("/entries/alias.html")
    assert r.status_code == 200 and r.content == FILES["entries/hello-world.html"]


# --- whole files only, bounded cache -------------------------------------------------------------

def test_never_half_a_file_under_concurrent_replace(client: httpx.Client, out: Path) -> None:
    versions = [bytes([65 + i]) * (50_000 + 7_919 * i) for i in range(5)]
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            write_atomic(out / "atom.xml", versions[i % len(versions)])
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(300):
            body = client.get("/atom.xml").content
            assert body in versions or body == ATOM_BODY
    finally:
        stop.set()
        thread.join()


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_replaced_file_is_served_once_revalidate_has_passed(out: Path) -> None:
    """The bound for files changed by another program: ``revalidate`` seconds after a stat,
    the next request checks the disk again. Until then the checked version is served without
    one (that is the point), in both encodings."""
    clock = Clock()
    app = create_app(out, base_url="http://x/", revalidate=0.5, clock=clock)
    new = ATOM_BODY.replace(b"caf", b"tea")
    with serve_in_thread(app) as base, http_client(base_url=base) as client:
        for ae in ("identity", "gzip"):
            assert client.get("/atom.xml", headers={"Accept-Encoding": ae}).content == ATOM_BODY
        write_atomic(out / "atom.xml.gz", gzip.compress(new, mtime=0))
        write_atomic(out / "atom.xml", new)
        clock.now += 0.49
        for ae in ("identity", "gzip"):
            assert client.get("/atom.xml", headers={"Accept-Encoding": ae}).content == ATOM_BODY
        clock.now += 0.01
        for ae in ("identity", "gzip"):
            r = client.get("/atom.xml", headers={"Accept-Encoding": ae})
            assert r.content == new, ae
        # rewritten in place (same inode, new mtime), then deleted
        (out / "atom.xml").write_bytes(b"<feed>third</feed>")
        clock.now += 0.5
        assert client.get("/atom.xml").content == b"<feed>third</feed>"
        (out / "atom.xml").unlink()
        clock.now += 0.5
        assert client.get("/atom.xml").status_code == 404


def test_replaced_file_is_served_fresh_in_real_time(out: Path, client: httpx.Client) -> None:
    """The same with the real clock and the default interval (no refresh)."""
    assert client.get("/feed.json").content == FILES["feed.json"]
    write_atomic(out / "feed.json", b'{"version": "2"}')
    wait_until(lambda: client.get("/feed.json").content == b'{"version": "2"}',
               timeout=REVALIDATE + 10, what="the new feed.json to be served")


def test_refresh_serves_a_replaced_file_at_once(out: Path) -> None:
    clock = Clock()
    app = create_app(out, base_url="http://x/", revalidate=3600, clock=clock)
    with serve_in_thread(app) as base, http_client(base_url=base) as client:
        assert client.get("/feed.json").content == FILES["feed.json"]
        write_atomic(out / "feed.json", b'{"version": "2"}')
        app.refresh()
        assert client.get("/feed.json").content == b'{"version": "2"}'


def test_cached_file_is_served_while_every_worker_thread_hangs(out: Path) -> None:
    """A checked version is served on the event loop, with no worker thread: a disk that
    hangs (here: every worker blocked) delays only the requests that need it."""
    asgi = create_app(out, base_url="http://x/", revalidate=3600, clock=Clock())
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    def get(path: str) -> Any:
        scope = {"type": "http", "method": "GET", "path": path,
                 "headers": [(b"accept-encoding", b"gzip")]}
        return asyncio.wait_for(asgi(scope, receive, send), timeout=10)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        await get("/atom.xml")  # read and checked: fresh for an hour by this clock
        gate = threading.Event()
        hung = loop.run_in_executor(None, gate.wait)  # the only worker, stuck
        try:
            sent.clear()
            await get("/atom.xml")
        finally:
            gate.set()
            await hung
        assert sent[0]["status"] == 200
        assert gzip.decompress(sent[1]["body"]) == ATOM_BODY

    asyncio.run(main())


def test_cache_is_bounded_by_bytes(tmp_path: Path) -> None:
    (tmp_path / "entries").mkdir()
    files = _Files(tmp_path, 100_000, lambda rel, feed: [])
    for i in range(200):
        rel = f"entries/e{i}.html"
        (tmp_path / rel).write_bytes(b"x" * 3_000)
        st = (tmp_path / rel).stat()
        version = files.get(rel, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size), b"t", False)
        assert version is not None and version.body == b"x" * 3_000
        files.gzip(rel, version, b"t")
        assert files.total <= 100_000
    assert 0 < len(files.lru) < 200
    assert files.total == sum(v.size for v in files.lru.values())
    assert "entries/e199.html" in files.lru and "entries/e0.html" not in files.lru


# --- make_server in the main thread -------------------------------------------------------------

def test_make_server_runs_in_main_thread_and_stops_on_sigint(out: Path) -> None:
    port = free_port()
    # SIGINT may be ignored when the suite runs in the background (nohup, CI): the child
    # restores Python's default handler so the test means the same everywhere.
    code = ("import signal, sys; from pathlib import Path\n"
            "from feeder.server import create_app, make_server\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "try: make_server(create_app(Path(sys.argv[1]), base_url='http://x/'), "
            "port=int(sys.argv[2])).run()\nexcept KeyboardInterrupt: print('stopped')")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", code, str(out), str(port)],
                            env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def answers() -> bool:
            assert proc.poll() is None, proc.communicate()
            try:
                return http_get(f"http://127.0.0.1:{port}/feed.json").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, what="the subprocess server")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # uvicorn shuts down, then re-raises the signal: SIGINT becomes KeyboardInterrupt
    assert proc.returncode == 0, stderr
    assert stdout == b"stopped\n" and stderr == b""
