"""Issue 6: one folder of hostile seeds beside good ones, built and checked together.

Parser-level cases live in ``tests/cases``; here the whole pipeline sees them at once: the
build logs each rejected file, ``feeder check`` lists each one with its reason, the feeds stay
valid XML/JSON, every good seed is published and nothing rejected or ignored leaks out.
"""

from __future__ import annotations

import codecs
import gzip
import json
import logging
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from .conftest import REPO, Site

MAX_BYTES = 1_100_000
HUGE_LINE = 1_000_000


def _good(date: str, marker: str, text: str = "") -> bytes:
    return f"date {date}\n\n{marker} opens this article. {text}\n".encode()


# name -> bytes; each carries a marker word that must reach every feed.
GOOD_TEXTS: dict[str, tuple[str, bytes]] = {
    "plain.txt": ("Goodplain", _good("2025-01-02", "Goodplain")),
    "latin1.txt": ("Goodlatin", "date 2025-01-03\n\nGoodlatin: déjà vu au café, "
                   "crème brûlée à la française. Très bien.\n".encode("cp1252")),
    "utf16.txt": ("Goodutfsixteen", codecs.BOM_UTF16_LE
                  + "date 2025-01-04\n\nGoodutfsixteen text here. Ok.\n".encode("utf-16-le")),
    "utf8bom.txt": ("Goodbom", codecs.BOM_UTF8 + _good("2025-01-05", "Goodbom")),
    "crlf.txt": ("Goodcrlf", b"date 2025-01-06\r\n\r\nGoodcrlf line one.\r\nLine two.\r\n"),
    "lone_cr.txt": ("Goodlonecr", b"date 2025-01-07\r\rGoodlonecr line one.\rMore text.\r"),
    "tabs.txt": ("Goodtabs", b"\tdate\t2025-01-08\t\n\n\tGoodtabs\tand\ttabs. Text.\n"),
    "controls.txt": ("Goodcontrols", b"date 2025-01-09\n\nGoodcontrols vt\x0bhere esc\x1b[31m"
                     b" red\x1b[0m and a form\x0cfeed. Ok.\n"),
    "separators.txt": ("Goodseparators", "date 2025-01-10\n\nGoodseparators one.\u2028Two."
                       "\u2029Next paragraph.\n".encode()),
    "markup.txt": ("Goodmarkup", b"date 2025-01-11\n\nGoodmarkup <script>alert(1)</script>"
                   b" a ]]> b AT&amp;T & <b>bold</b>. End.\n"),
    "huge_line.txt": ("Goodhuge", b"date 2025-01-12\n\nGoodhuge starts a long line "
                      + b"lorem ipsum " * (HUGE_LINE // 12) + b"end.\n"),
    "with spaces.txt": ("Goodspaces", _good("2025-01-13", "Goodspaces")),
    "日本語 ノート.txt": ("Goodjapanese", _good("2025-01-14", "Goodjapanese")),
    "Ünïcödé naïve.txt": ("Goodunicode", _good("2025-01-15", "Goodunicode")),
    "stray_byte.txt": ("Goodstray", "date 2025-01-16\n\nGoodstray: Über die Brücke.".encode()
                       + b"\xff More.\n"),
}

# name -> (bytes or None for a special file, substring of the rejection reason)
REJECTED_TEXTS: dict[str, tuple[bytes, str]] = {
    "empty.txt": (b"", "empty file"),
    "blank.txt": (b"  \n\t\n \r\n   ", "empty file"),
    "header_only.txt": (b"date 2025-02-01\n\n  \n", "header but no article text"),
    "no_date.txt": (b"LEAKnodate: an article without its date header.\n", "no 'date"),
    "month_13.txt": (b"date 2025-13-45\n\nLEAKmonth thirteen. Text.\n", "bad date '2025-13-45'"),
    "feb_30.txt": (b"date 2025-02-30\n\nLEAKfebthirty. Text.\n", "bad date '2025-02-30'"),
    "yesterday.txt": (b"date yesterday\n\nLEAKyesterday. Text.\n", "bad date 'yesterday'"),
    "far_past.txt": (b"date 1850-06-01\n\nLEAKfarpast. Text.\n", "before 1900"),
    "far_future.txt": (b"date 2099-06-01\n\nLEAKfarfuture. Text.\n", "days ahead"),
    "nul.txt": (b"date 2025-02-02\n\nLEAKnul one\x00two. Text.\n", "NUL byte at offset 28"),
    "too_big.txt": (b"date 2025-02-03\n\nLEAKtoobig " + b"x" * (MAX_BYTES + 5),
                    f"too large: {MAX_BYTES + 5 + 28} bytes (limit {MAX_BYTES})"),
}
LINKS_REJECTED = {
    "passwd.txt": "symlink points outside the seeds folder",
    "loop.txt": "symlink loop",
    "dangling.txt": "dangling symlink",
    "fifo.txt": "not a regular file",
}
NFC = unicodedata.normalize("NFC", "café.txt")
NFD = unicodedata.normalize("NFD", "café.txt")
LEAKS = [b"LEAK", b"root:x:0:0", b"\x1b"]


def hostile_folder(seeds: Path, outside: Path) -> None:
    """Fill ``seeds`` with every hostile case next to the good seeds."""
    for name, (_marker, data) in GOOD_TEXTS.items():
        (seeds / name).write_bytes(data)
    for name, (data, _reason) in REJECTED_TEXTS.items():
        (seeds / name).write_bytes(data)
    outside.mkdir(exist_ok=True)
    (outside / "passwd").write_bytes(b"date 2025-03-01\n\nLEAKpasswd root:x:0:0:root:/root.\n")
    (seeds / "passwd.txt").symlink_to(outside / "passwd")
    (seeds / "inside_link.txt").symlink_to("plain.txt")  # relative, followed
    (seeds / "loop.txt").symlink_to("loop.txt")
    (seeds / "dangling.txt").symlink_to("nowhere.txt")
    os.mkfifo(seeds / "fifo.txt")
    # one stem spelt two ways: one of them is refused as a duplicate id
    (seeds / NFC).write_bytes(_good("2025-03-02", "Tokennfc"))
    (seeds / NFD).write_bytes(_good("2025-03-03", "Tokennfd"))
    # ignored: other extensions, hidden and temp files, sub-folders (not recursive)
    (seeds / "notes.md").write_bytes(_good("2025-03-04", "LEAKmarkdown"))
    (seeds / "README").write_bytes(_good("2025-03-05", "LEAKnoext"))
    (seeds / ".hidden.txt").write_bytes(_good("2025-03-06", "LEAKhidden"))
    (seeds / "draft.txt~").write_bytes(_good("2025-03-07", "LEAKbackup"))
    (seeds / "sub").mkdir()
    (seeds / "sub" / "nested.txt").write_bytes(_good("2025-03-08", "LEAKnested"))
    (seeds / "folder.txt").mkdir()
    (seeds / "folder.txt" / "inner.txt").write_bytes(_good("2025-03-09", "LEAKfolder"))


def expected_rejections() -> dict[str, str]:
    return {**{n: r for n, (_d, r) in REJECTED_TEXTS.items()}, **LINKS_REJECTED}


def all_output_bytes(out: Path) -> dict[str, bytes]:
    files = {}
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            files[str(path.relative_to(out))] = (
                gzip.decompress(data) if path.suffix == ".gz" else data)
    return files


@pytest.fixture
def hostile(make_site, tmp_path: Path) -> Site:  # noqa: ANN001
    site = make_site(max_seed_bytes=MAX_BYTES)
    hostile_folder(site.seeds, tmp_path / "outside")
    return site


def _duplicate_loser(rejected: dict[str, str]) -> tuple[str, str]:
    """(rejected spelling, published spelling) of the NFC/NFD pair."""
    losers = [n for n in (NFC, NFD) if n in rejected]
    assert len(losers) == 1, rejected
    (loser,) = losers
    winner = NFD if loser == NFC else NFC
    assert rejected[loser] == f"same entry id as {winner} (file stems must be unique)"
    return loser, winner


def test_hostile_folder_builds_valid_feeds_with_every_good_seed(
        hostile: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="feeder")
    report = hostile.build()
    rejected = dict(report.rejected)
    loser, winner = _duplicate_loser(rejected)
    del rejected[loser]
    for name, reason in expected_rejections().items():
        assert reason in rejected.pop(name), name
    assert rejected == {}, "rejected more than expected"
    # one log line per rejected file, naming it and the reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name, reason in report.rejected:
        assert warnings.count(f"rejected {name}: {reason}") == 1, name
    infos = [r.getMessage() for r in caplog.records]
    assert "converted latin1.txt from cp1252 to UTF-8" in infos
    assert "converted utf16.txt from utf-16 to UTF-8" in infos
    assert "repaired stray_byte.txt: 1 stray byte at offset 46 (not UTF-8)" in infos
    assert sorted(report.added) == sorted([*GOOD_TEXTS, "inside_link.txt", winner])

    atom = etree.fromstring(hostile.read("atom.xml"))
    rss = etree.fromstring(hostile.read("rss.xml"))
    assert atom.tag == "{http://www.w3.org/2005/Atom}feed" and rss.tag == "rss"
    feeds = {rel: feedparser.parse(hostile.read(rel)) for rel in ("atom.xml", "rss.xml")}
    for rel, feed in feeds.items():
        assert feed.bozo == 0, (rel, feed.get("bozo_exception"))
    items = json.loads(hostile.read("feed.json"))["items"]
    expected_count = len(GOOD_TEXTS) + 2  # the followed link and one of café NFC/NFD
    for feed in feeds.values():
        assert len(feed.entries) == expected_count
        contents = "\n".join(e.content[0].value for e in feed.entries)
        for marker, _data in GOOD_TEXTS.values():
            assert marker in contents
    assert len(items) == expected_count
    json_text = "\n".join(i["content_html"] for i in items)
    for marker, _data in GOOD_TEXTS.values():
        assert marker in json_text
    assert "déjà vu au café, crème brûlée" in json_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a ]]&gt; b AT&amp;amp;T &amp;" in json_text
    kept, dropped = ("Tokennfc", "Tokennfd") if winner == NFC else ("Tokennfd", "Tokennfc")
    assert kept in json_text
    # nothing rejected or ignored is published anywhere, not even in .gz siblings
    for rel, data in all_output_bytes(hostile.out).items():
        for leak in (*LEAKS, dropped.encode()):
            assert leak not in data, (rel, leak)
        if not rel.endswith(("feed.json", "feed.json.gz")):  # JSON Feed text is plain text
            assert b"<script>" not in data, rel
    assert not list(hostile.out.rglob(".*")), "temp files left in the output folder"


def test_feeder_check_lists_each_rejected_file_with_its_reason(hostile: Site) -> None:
    cfg = hostile.root / "feeder.toml"
    cfg.write_text(f"[paths]\nmax_seed_bytes = {MAX_BYTES}\n")
    result = run_feeder("check", "--config", cfg, "--seeds", hostile.seeds,
                        "--out", hostile.out, "--state", hostile.root / "unused.sqlite3")
    assert result.returncode == 1, result.stderr
    *lines, last = result.stdout.splitlines()
    listed = dict(line.split(": ", 1) for line in lines)
    assert len(listed) == len(lines), "a file was listed twice"
    loser, _winner = _duplicate_loser(listed)
    del listed[loser]
    for name, reason in expected_rejections().items():
        assert reason in listed.pop(name), name
    assert listed == {}
    expected = expected_rejections()
    assert last == f"{len(GOOD_TEXTS) + 2} seeds ok, {len(expected) + 1} rejected"
    assert not hostile.out.exists() and not (hostile.root / "unused.sqlite3").exists()


def test_feeder_check_exits_0_on_a_clean_folder(site: Site) -> None:
    site.write("001_ok.txt", "2025-01-02", "Fine. Text.")
    result = run_feeder("check", "--seeds", site.seeds, "--out", site.out,
                        "--state", site.root / "unused.sqlite3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 seeds ok, 0 rejected\n"


def run_feeder(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith("FEEDER_")}
    return subprocess.run([sys.executable, "-m", "feeder", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_a_failed_publish_is_finished_by_the_next_pass(site: Site) -> None:
    """Seeds synced by a pass whose output failed still get their pages on the retry."""
    from feeder.errors import OutputError

    site.write("001_a.txt", "2025-01-01", "Old text. Body.")
    site.write("002_b.txt", "2025-01-02", "Doomed. Body.")
    builder = site.builder()  # one builder across passes, as in the daemon
    builder.build()
    entries = site.out / "entries"
    entries.rename(site.root / "entries.saved")
    entries.write_bytes(b"not a folder")
    site.write("001_a.txt", "2025-01-01", "New text. Body.")
    (site.seeds / "002_b.txt").unlink()
    site.write("003_c.txt", "2025-01-03", "Brand new. Body.")
    with pytest.raises(OutputError):
        builder.build({"001_a.txt", "002_b.txt", "003_c.txt"})
    entries.unlink()
    (site.root / "entries.saved").rename(entries)
    builder.build(set())  # the retry: nothing changed since, as far as the store knows
    assert b"New text" in site.read("entries/001_a.html")
    assert b"Brand new" in site.read("entries/003_c.html")
    assert not (entries / "002_b.html").exists()
    assert b"Doomed" not in site.read("atom.xml")
