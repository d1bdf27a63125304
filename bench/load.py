"""Load check: feeder's server against nginx serving the same output folder.

    python bench/load.py [--out DIR] [--duration 3] [--repeat 3] [--connections 32]
                         [--check-headers]

Starts ``feeder.server`` (a ``python -c`` subprocess) and nginx (config derived from
config/nginx.conf) on free loopback ports, checks that both send the expected content types
and Link headers, then measures requests/second for
(a) conditional GET of /atom.xml answered 304, (b) full GET identity, (c) full GET gzip.

Two more servers give floors, both behind the same ``make_server`` (uvicorn, httptools,
uvloop, feeder's protocol) and answering each case with constant bytes, the very status,
headers and body feeder sent for it: the "direct floor" answers through the protocol's
direct path (an app whose ``answer`` returns the constant answer, as ``create_app``'s does
for a cached file), the "ASGI floor" through a trivial ASGI app (the best any ASGI app can do
on this server). feeder answers cached files by the direct path, so ``nginx/floor`` is
nginx against the direct floor: the best ``nginx/feeder`` can get without leaving uvicorn.
When granian is importable (``pip install granian``: not a dependency of feeder), two more floors answer
the same bytes on granian's embedded server (one process, one runtime thread, uvloop if
installed), through its RSGI and its ASGI interface; ``nginx/best`` is nginx against the
fastest floor. Each server's CPU per request (its process tree, from /proc) is printed too:
less moved by the machine's other load than req/s.

Uses wrk if installed, else an httpx asyncio loop. Without --out it writes a synthetic
output folder (~430 KB atom.xml and its .gz). Loopback only; stops by itself.
Needs nginx (Debian: ``apt-get update && apt-get install nginx wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import importlib.util
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HUB = "http://127.0.0.1:9/hub"
CASES = [
    ("304 conditional GET", "inm", {"Accept-Encoding": "gzip"}),  # as a polling reader
    ("200 GET identity", None, {"Accept-Encoding": "identity"}),
    ("200 GET gzip", None, {"Accept-Encoding": "gzip"}),
]
HTML = "text/html; charset=utf-8"


def expected(out: Path) -> dict[str, tuple[str, bool]]:
    """Paths to check in ``out``: request path -> (content type, is a feed)."""
    paths = {"/": (HTML, False),
             "/atom.xml": ("application/atom+xml; charset=utf-8", True),
             "/rss.xml": ("application/rss+xml; charset=utf-8", True),
             "/feed.json": ("application/feed+json; charset=utf-8", True)}
    for entry in sorted((out / "entries").glob("[!.]*.html"))[:1]:
        paths[f"/entries/{entry.name}"] = (HTML, False)
    for kind in ("atom", "rss"):
        for page in sorted((out / "archive").glob(f"{kind}-*.xml"))[:1]:
            paths[f"/archive/{page.name}"] = (f"application/{kind}+xml; charset=utf-8", True)
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_synthetic(out: Path) -> None:
    """An output folder shaped like the core's: 50 entries, atom.xml of about 430 KB."""
    para = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. " * 110
    entries = "".join(
        f"<entry><id>tag:example.org,2025:{i}</id><title>Entry {i}</title>"
        f"<updated>2025-01-{i % 28 + 1:02d}T00:00:00Z</updated>"
        f'<content type="html">&lt;p&gt;{para} {i}&lt;/p&gt;</content></entry>\n'
        for i in range(50))
    atom = ('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>bench</title>{entries}</feed>\n")
    files = {
        "atom.xml": atom,
        "rss.xml": atom.replace("feed", "rss"),
        "feed.json": '{"version": "https://jsonfeed.org/version/1.1", "items": []}\n',
        "index.html": "<!doctype html><title>bench</title>" + "<p>x</p>" * 500,
        "archive/atom-1.xml": atom,
        "archive/rss-1.xml": atom,
        **{f"entries/entry-{i}.html": f"<!doctype html><p>{para}</p>" for i in range(3)},
    }
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode()
        path.write_bytes(data)
        if rel.endswith((".xml", ".json")) or rel == "index.html":
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(data, 9, mtime=0))


def nginx_conf(out: Path, port: int, workdir: Path, base_url: str,
               open_file_cache: bool = False) -> str:
    block = (ROOT / "config" / "nginx.conf").read_text()
    block = (block.replace("@@SERVER_NAME@@", "localhost").replace("@@OUT_DIR@@", str(out))
             .replace("@@BASE_URL@@", base_url).replace("@@HUB_URL@@", HUB))
    block = re.sub(r"^(\s*)listen\s+[^;]+;", rf"\1listen 127.0.0.1:{port};", block, flags=re.M)
    user = "root root" if os.geteuid() == 0 else ""  # workers must read the (0700) temp dir
    temps = "\n".join(f"    {name}_temp_path {workdir / name};"
                      for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{"user " + user + ";" if user else ""}
daemon off;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
{"open_file_cache max=10000 inactive=30s; open_file_cache_valid 1s;" if open_file_cache else ""}
{temps}
{block}
}}
"""


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)  # a short poll interval that also notices the process dying


def check_headers(name: str, base: str, base_url: str, out: Path) -> None:
    """Print and assert content types and Link headers (what a reader and a hub see)."""
    print(f"\n{name} ({base})")
    with httpx.Client(base_url=base, timeout=5) as client:
        for path, (ctype, is_feed) in expected(out).items():
            r = client.get(path, headers={"Accept-Encoding": "gzip"})
            links = r.headers.get_list("link")
            print(f"  {path:24} {r.status_code} {r.headers.get('content-type')!s:40} "
                  f"enc={r.headers.get('content-encoding', '-'):5} "
                  f"vary={r.headers.get('vary', '-')} cc={r.headers.get('cache-control')}")
            for link in links:
                print(f"  {'':24} Link: {link}")
            assert r.status_code == 200, (name, path, r.status_code)
            assert r.headers["content-type"] == ctype, (name, path, r.headers["content-type"])
            if is_feed:
                assert f'<{HUB}>; rel="hub"' in links, (name, path, links)
                assert links.count(f'<{base_url}{path[1:]}>; rel="self"') == 1, (name, links)
            else:
                assert not links, (name, path, links)
        r = client.get("/atom.xml", headers={"Accept-Encoding": "gzip",
                                             "User-Agent": "python-requests/2.32"})
        print(f"  {'/atom.xml (hub UA)':24} {r.status_code} "
              f"enc={r.headers.get('content-encoding', '-')}")
        assert "content-encoding" not in r.headers, (name, "hub fetch must be identity")
        for path in ("/.atom.xml.tmp", "/entries/", "/nope", "/atom.xml.gz"):
            status = client.get(path).status_code
            print(f"  {path:24} {status}")
            assert status == 404, (name, path, status)


def capture(url: str, headers: dict[str, str]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers (without the server's own date and server) and raw body of one GET."""
    with httpx.stream("GET", url, headers=headers) as r:
        body = b"".join(r.iter_raw())
        kept = [(k, v) for k, v in r.headers.raw if k.lower() not in (b"date", b"server")]
        return r.status_code, kept, body


def serve_floor(responses_file: Path, port: int, path: str) -> None:
    """A floor server: constant responses by path, behind feeder's own ``make_server``, by
    its direct path (``path`` "direct") or through a trivial ASGI app ("asgi")."""
    sys.path.insert(0, str(ROOT))
    from feeder.server import make_server

    responses = pickle.loads(responses_file.read_bytes())

    async def app(scope: dict, receive: object, send: object) -> None:
        status, headers, body = responses[scope["path"]]
        if path == "direct":  # not taken: let the check of its answers fail
            status, headers, body = 500, [(b"content-length", b"0")], b""
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    if path == "direct":
        lines = {key: (status, b"".join(b"%s: %s\r\n" % kv for kv in headers), body)
                 for key, (status, headers, body) in responses.items()}

        def answer(path: str, head: bool, headers: object) -> tuple[int, bytes, bytes] | None:
            return lines.get(path)

        app.answer = answer
    make_server(app, port=port).run()


def serve_granian(responses_file: Path, port: int, interface: str) -> None:
    """A granian floor server: constant responses by path on granian's embedded server
    (one process, one runtime thread), through its RSGI or ASGI interface."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    responses = pickle.loads(responses_file.read_bytes())
    as_str = {path: (status, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
                     body) for path, (status, headers, body) in responses.items()}

    async def rsgi(scope: object, proto: object) -> None:
        status, headers, body = as_str[scope.path]
        proto.response_bytes(status, headers, body)

    async def asgi(scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        status, headers, body = responses[scope["path"]]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    server = Server(rsgi if interface == "rsgi" else asgi, address="127.0.0.1", port=port,
                    interface=Interfaces(interface), http=HTTPModes.http1, runtime_threads=1,
                    websockets=False, log_access=False, log_level="warning")
    try:
        import uvloop
    except ImportError:
        uvloop = None
    (asyncio.run if uvloop is None else uvloop.run)(server.serve())


def same_response(a: tuple, b: tuple) -> bool:
    """Do two ``capture`` results hold the same status, body and headers (names in any
    case, in any order)?"""
    def norm(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return sorted((k.lower(), v) for k, v in headers)
    return a[0] == b[0] and a[2] == b[2] and norm(a[1]) == norm(b[1])


def run_wrk(url: str, headers: dict[str, str], duration: float, conns: int) -> float:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency", url]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx" in text or "Socket errors" in text:
        raise RuntimeError(f"wrk saw errors:\n{text}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))


async def _httpx_loop(url: str, headers: dict[str, str], duration: float, conns: int) -> float:
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    count = 0
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:
        deadline = time.monotonic() + duration

        async def worker() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                async with client.stream("GET", url) as r:
                    await r.aread()
                    assert r.status_code in (200, 304)
                count += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(conns)))
        return count / (time.monotonic() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its descendants (nginx's workers), all threads."""
    ticks, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(url: str, headers: dict[str, str], duration: float, conns: int) -> float:
    if shutil.which("wrk"):
        return run_wrk(url, headers, duration, conns)
    return asyncio.run(_httpx_loop(url, headers, duration, conns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="output folder (default: a synthetic one)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per case and server, alternating servers; the best counts")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--open-file-cache", action="store_true",
                        help="let nginx cache open descriptors and stat results too")
    parser.add_argument("--check-headers", action="store_true",
                        help="only check nginx's and feeder's headers, no load")
    parser.add_argument("--serve-floor", nargs=3, metavar=("RESPONSES", "PORT", "PATH"),
                        help=argparse.SUPPRESS)  # a floor server's own process
    parser.add_argument("--serve-granian", nargs=3, metavar=("RESPONSES", "PORT", "INTERFACE"),
                        help=argparse.SUPPRESS)  # a granian floor's own process
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(Path(args.serve_floor[0]), int(args.serve_floor[1]), args.serve_floor[2])
        return
    if args.serve_granian:
        serve_granian(Path(args.serve_granian[0]), int(args.serve_granian[1]),
                      args.serve_granian[2])
        return
    if not shutil.which("nginx"):
        sys.exit("nginx not found: apt-get update && apt-get install -y nginx wrk")

    with tempfile.TemporaryDirectory(prefix="feeder-load-") as tmp:
        work = Path(tmp)
        out = args.out.resolve() if args.out else work / "public"
        if not args.out:
            write_synthetic(out)
        ours, theirs = free_port(), free_port()
        base_url = f"http://127.0.0.1:{ours}/"  # same self links from both servers
        code = ("import sys; from pathlib import Path; from feeder.server import create_app, "
                "make_server; make_server(create_app(Path(sys.argv[1]), base_url=sys.argv[2], "
                "hubs=[sys.argv[3]]), port=int(sys.argv[4])).run()")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        (work / "nginx.conf").write_text(nginx_conf(out, theirs, work, base_url,
                                                        args.open_file_cache))
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(out), base_url, HUB, str(ours)],
                             env=env),
            subprocess.Popen(["nginx", "-e", str(work / "error.log"), "-p", str(work),
                              "-c", str(work / "nginx.conf")]),
        ]
        try:
            servers = {"feeder": f"http://127.0.0.1:{ours}", "nginx": f"http://127.0.0.1:{theirs}"}
            pids = {"feeder": procs[0].pid, "nginx": procs[1].pid}
            for name, base in servers.items():
                wait_http(base + "/", procs[0 if name == "feeder" else 1])
                check_headers(name, base, base_url, out)
            if args.check_headers:
                return
            # each server's URL and request headers per case; the floor answers by path
            sent: dict[str, dict[str, tuple[str, dict[str, str]]]] = {}
            for label, cond, headers in CASES:
                sent[label] = {}
                for name, base in servers.items():
                    hdrs = dict(headers)
                    if cond == "inm":
                        hdrs["If-None-Match"] = httpx.get(base + "/atom.xml",
                                                          headers=hdrs).headers["etag"]
                        assert httpx.get(base + "/atom.xml", headers=hdrs).status_code == 304
                    sent[label][name] = (base + "/atom.xml", hdrs)
            floor = work / "floor.pickle"
            answers = {f"/{i}": capture(*sent[label]["feeder"])
                       for i, (label, _, _) in enumerate(CASES)}
            floor.write_bytes(pickle.dumps(answers))
            floors = {"floor": ["--serve-floor", "direct"], "asgi": ["--serve-floor", "asgi"]}
            if importlib.util.find_spec("granian"):
                floors |= {f"granian {iface.upper()}": ["--serve-granian", iface]
                           for iface in ("rsgi", "asgi")}
            for name, how in floors.items():
                port = free_port()
                procs.append(subprocess.Popen([sys.executable, __file__, how[0], str(floor),
                                               str(port), *how[1:]], env=env))
                servers[name] = f"http://127.0.0.1:{port}"
                pids[name] = procs[-1].pid
                wait_http(servers[name] + "/0", procs[-1])
                for i, (label, _, _) in enumerate(CASES):
                    sent[label][name] = (f"{servers[name]}/{i}", sent[label]["feeder"][1])
                    if not same_response(capture(*sent[label][name]), answers[f"/{i}"]):
                        raise SystemExit(f"{name} does not answer {label} as feeder did")

            size = len((out / "atom.xml").read_bytes())
            tool = "wrk -t1" if shutil.which("wrk") else "httpx"
            stack = ", ".join(f"{m} {'yes' if importlib.util.find_spec(m) else 'no'}"
                              for m in ("httptools", "uvloop"))
            cache = ", open_file_cache" if args.open_file_cache else ""
            granian = (f"; granian {version('granian')} RSGI and ASGI: the same app on "
                       "granian's embedded server, 1 process, 1 runtime thread"
                       if len(floors) > 2 else "; granian not installed")
            print(f"\nfeeder: uvicorn ({stack}); nginx: 1 worker, sendfile on{cache}; floors: "
                  f"constant responses (the same bytes) on feeder's make_server, by its direct "
                  f"path and by a trivial ASGI app{granian}")
            print(f"\n/atom.xml: {size} bytes; best of {args.repeat} runs of {args.duration:g} s, "
                  f"{args.connections} connections, {tool}; load average before: "
                  f"{os.getloadavg()[0]:.1f}")
            columns = ["feeder", *floors, "nginx"]
            titles = {"floor": "direct floor", "asgi": "ASGI floor"}
            print(f"{'case':24}" + "".join(f"{titles.get(name, name) + ' req/s':>20}"
                                           for name in columns)
                  + f"{'nginx/feeder':>14}{'nginx/floor':>13}{'nginx/best':>12}  best floor")
            summary, per_request = {}, {}
            for label, _, _ in CASES:
                rates = dict.fromkeys(servers, 0.0)
                cpus = dict.fromkeys(servers, float("inf"))
                for _ in range(args.repeat):  # alternate, so all see the same machine load
                    for name in servers:
                        url, hdrs = sent[label][name]
                        cpu = cpu_seconds(pids[name])
                        rate = measure(url, hdrs, args.duration, args.connections)
                        cpu = cpu_seconds(pids[name]) - cpu
                        rates[name] = max(rates[name], rate)
                        cpus[name] = min(cpus[name], cpu / (rate * args.duration) * 1e6)
                per_request[label] = cpus
                best = max(floors, key=rates.__getitem__)
                print(f"{label:24}" + "".join(f"{rates[name]:20.0f}" for name in columns)
                      + f"{rates['nginx'] / rates['feeder']:13.2f}x"
                      f"{rates['nginx'] / rates['floor']:12.2f}x"
                      f"{rates['nginx'] / rates[best]:11.2f}x  {titles.get(best, best)}")
                summary[label] = (f"{label}: feeder {rates['feeder']:.0f} req/s, nginx "
                                  f"{rates['nginx']:.0f} req/s, nginx/feeder "
                                  f"{rates['nginx'] / rates['feeder']:.2f}x; direct floor "
                                  f"{rates['floor']:.0f} req/s, nginx/floor "
                                  f"{rates['nginx'] / rates['floor']:.2f}x; ASGI floor "
                                  f"{rates['asgi']:.0f} req/s, nginx/ASGI floor "
                                  f"{rates['nginx'] / rates['asgi']:.2f}x; best floor "
                                  f"{titles.get(best, best)} {rates[best]:.0f} req/s, "
                                  f"nginx/best floor {rates['nginx'] / rates[best]:.2f}x")
            print("\nthe server's CPU per request (µs, its process tree, least of the runs): "
                  "less moved by the machine's other load than req/s")
            print(f"{'case':24}" + "".join(f"{titles.get(name, name) + ' µs':>20}"
                                           for name in columns)
                  + f"{'feeder/nginx':>14}{'floor/nginx':>13}{'best/nginx':>12}  least floor")
            for label, cpus in per_request.items():
                least = min(floors, key=cpus.__getitem__)
                print(f"{label:24}" + "".join(f"{cpus[name]:20.1f}" for name in columns)
                      + f"{cpus['feeder'] / cpus['nginx']:13.2f}x"
                      f"{cpus['floor'] / cpus['nginx']:12.2f}x"
                      f"{cpus[least] / cpus['nginx']:11.2f}x  {titles.get(least, least)}")
                summary[label] += (f"; CPU per request: feeder/nginx "
                                   f"{cpus['feeder'] / cpus['nginx']:.2f}x, direct floor/nginx "
                                   f"{cpus['floor'] / cpus['nginx']:.2f}x, ASGI floor/nginx "
                                   f"{cpus['asgi'] / cpus['nginx']:.2f}x, least floor "
                                   f"{titles.get(least, least)}/nginx "
                                   f"{cpus[least] / cpus['nginx']:.2f}x")
            print("\n" + "\n".join(summary.values()))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    main()
