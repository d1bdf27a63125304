"""Validate feeder's published feeds with the W3C Feed Validation Service's own code.

    python bench/validate.py --validator PATH/TO/feedvalidator [--seeds DIR] [--archive]

The validator is not a PyPI package: check out w3c/feedvalidator anywhere (it is never
copied into this repository) and give its folder; run this script with a Python that has
lxml, html5lib and rdflib (the validator's requirements). The script builds ``--seeds``
(default: the bundled seeds/) into a temporary folder with ``feeder build``, serves it with
``feeder serve`` on a free loopback port, with ``base_url`` set to that address so that
``rel="self"`` matches where each feed is fetched, and validates ``atom.xml``, ``rss.xml``,
each language's ``lang/<code>/atom.xml`` and ``rss.xml`` and (with ``--archive``: small ``max_entries`` and ``archive_size``, so archives exist) every
RFC 5005 archive document over HTTP, as the online service does. Prints each document's
errors and warnings at the service's level ("AA") and exits 1 if any has an error.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEEDER = [os.environ.get("FEEDER_PYTHON", str(ROOT / ".venv" / "bin" / "python")), "-m", "feeder"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--validator", type=Path, required=True,
                    help="a checkout of w3c/feedvalidator (its src/ is used)")
    ap.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    ap.add_argument("--archive", action="store_true",
                    help="max_entries 3, archive_size 2: validate the archive documents too")
    args = ap.parse_args()
    sys.path.insert(0, str(args.validator / "src"))
    import feedvalidator
    from feedvalidator import compatibility
    from feedvalidator.formatter.text_plain import Formatter

    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDER_")}
        env["PYTHONPATH"] = str(ROOT)
        if args.archive:
            env.update(FEEDER_MAX_ENTRIES="3", FEEDER_ARCHIVE_SIZE="2")
        common = ["--seeds", str(args.seeds), "--out", f"{tmp}/out", "--state",
                  f"{tmp}/state.sqlite3", "--base-url", base]
        subprocess.run([*FEEDER, "build", *common], env=env, check=True, capture_output=True)
        server = subprocess.Popen([*FEEDER, "serve", *common, "--port", str(port)], env=env,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(base + "atom.xml", timeout=1).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # poll-with-timeout: the server gives no ready signal
            docs = ["atom.xml", "rss.xml"]
            docs += sorted(f"lang/{p.name}/{kind}" for p in Path(tmp, "out", "lang").iterdir()
                           for kind in ("atom.xml", "rss.xml"))
            docs += sorted(f"archive/{p.name}" for p in Path(tmp, "out", "archive").glob("*.xml"))
            failed = 0
            for doc in docs:
                try:
                    events = feedvalidator.validateURL(base + doc, firstOccurrenceOnly=1)[
                        "loggedEvents"]
                except feedvalidator.logging.ValidationFailure as vf:
                    events = [vf.event]
                events = compatibility.AA(events)
                errors = [e for e in events if isinstance(e, feedvalidator.logging.Error)]
                failed += bool(errors)
                lines = Formatter(events)
                print(f"{doc}: {len(errors)} errors, {len(events) - len(errors)} warnings")
                for line in lines:
                    print("    " + line)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"{len(docs)} documents validated, {failed} with errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
