"""A lost or corrupt state is rebuilt from the published output without changing one byte;
entry ids and the feed's id never depend on settings that change (issue 12, items 3 and 4)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from feeder.render import ATOM_NS
from feeder.store import PingStore, Store

from .conftest import Site

A = f"{{{ATOM_NS}}}"
SEEDS = 23  # with max_entries 5 and archive_size 4: 5 archive pages


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of the output folder, by relative path, with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def ids(path: Path) -> tuple[str, list[str]]:
    """The feed's id and its entries' ids, in order."""
    root = etree.parse(str(path)).getroot()
    return root.findtext(f"{A}id"), [e.findtext(f"{A}id") for e in root.iterfind(f"{A}entry")]


def forget_state(site: Site) -> None:
    site.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{site.config.state}{suffix}").unlink(missing_ok=True)
    site.store = Store(site.config.state)


def write_history(site: Site) -> None:
    """Build 23 seeds, then edit some (current and archived) and delete some (from a full
    archive page and from the current feeds), and build again a day later."""
    for i in range(SEEDS):
        site.write(f"s{i:02d}.txt", f"2025-01-{i + 1:02d}", f"Article {i}. Body of {i}.")
    site.build()
    site.now += dt.timedelta(days=1, microseconds=123456)
    for i in (2, 9, 21):
        site.write(f"s{i:02d}.txt", f"2025-01-{i + 1:02d}", f"Article {i}, edited. New body.")
    for i in (5, 12, 20):
        (site.seeds / f"s{i:02d}.txt").unlink()
    site.build()
    site.now += dt.timedelta(days=1)


@pytest.fixture
def paged(make_site: Callable[..., Site]) -> Site:
    site = make_site(max_entries=5, archive_size=4)
    write_history(site)
    assert len(list((site.out / "archive").glob("atom-*.xml"))) >= 4
    return site


def test_a_deleted_state_is_recovered_without_changing_one_output_file(paged: Site) -> None:
    before = snapshot(paged.out)
    forget_state(paged)
    report = paged.build()
    assert snapshot(paged.out) == before
    assert report.written == [] and report.changed_feeds == []
    # the recovered history lives on: a second pass changes nothing either
    assert paged.build().written == []
    assert paged.store.get_meta("recovered:" + ids(paged.out / "atom.xml")[1][0]) is None


def test_a_corrupt_state_is_recovered_without_changing_one_output_file(paged: Site) -> None:
    before = snapshot(paged.out)
    paged.store.close()
    paged.config.state.write_bytes(b"this is not a database " * 100)
    paged.store = Store.open_locked(paged.config.state)
    paged.build()
    assert snapshot(paged.out) == before
    assert list(paged.root.glob("state.sqlite3.corrupt-*"))


def test_recovered_entries_edited_or_gone_meanwhile_are_an_edit_and_a_removal(
        paged: Site) -> None:
    forget_state(paged)
    paged.write("s03.txt", "2025-01-04", "Article 3, edited while the state was lost. Body.")
    (paged.seeds / "s04.txt").unlink()
    paged.build()
    atom = paged.read("archive/atom-1.xml").decode()
    assert "edited while the state was lost" in atom
    entry = paged.store.entry_by_name("s03.txt")
    assert entry is not None and entry.updated == paged.now
    assert paged.store.entry_by_name("s04.txt") is None
    assert not (paged.out / "entries" / "s04.html").exists()
    assert not paged.store.has_meta_prefix("recovered:")


def test_a_damaged_feed_is_skipped_and_logged(paged: Site,
                                               caplog: pytest.LogCaptureFixture) -> None:
    before = snapshot(paged.out)
    (paged.out / "archive" / "atom-2.xml").write_bytes(before["archive/atom-2.xml"][:300])
    forget_state(paged)
    with caplog.at_level(logging.INFO, logger="feeder"):
        paged.build()
    assert any("recovery: skipped" in r.message and "atom-2.xml" in r.message
               for r in caplog.records)
    after = snapshot(paged.out)
    for path in ("atom.xml", "rss.xml", "feed.json", "archive/atom-1.xml", "archive/atom-3.xml"):
        assert after[path] == before[path], path


def test_entities_in_a_published_feed_are_not_resolved(make_site: Callable[..., Site],
                                                        tmp_path: Path) -> None:
    site = make_site()
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    site.write("a.txt", "2025-01-01", "Alpha. Text.")
    site.build()
    forget_state(site)
    site.out.joinpath("atom.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file://{secret}">]>'
        f'<feed xmlns="{ATOM_NS}"><id>tag:127.0.0.1,2025:feed</id>'
        '<entry><id>tag:127.0.0.1,2025:a</id><title>&x;</title>'
        '<published>2025-01-01T00:00:00+00:00</published>'
        '<updated>2025-01-01T00:00:00+00:00</updated></entry></feed>')
    site.build()
    assert b"top secret" not in site.read("atom.xml")
    assert ids(site.out / "atom.xml") == ("tag:127.0.0.1,2025:feed", ["tag:127.0.0.1,2025:a"])


# -- ids that never change -------------------------------------------------------------------

def test_a_new_base_url_changes_no_id(make_site: Callable[..., Site]) -> None:
    site = make_site()
    site.write("a.txt", "2025-01-01", "Alpha. Text.")
    site.build()
    feed_id, entry_ids = ids(site.out / "atom.xml")
    assert (feed_id, entry_ids) == ("tag:127.0.0.1,2025:feed", ["tag:127.0.0.1,2025:a"])
    site.config = site.config.replace(base_url="https://news.example.org/")
    site.write("b.txt", "2025-01-02", "Beta. Text.")
    site.build()
    assert ids(site.out / "atom.xml") == (feed_id, ["tag:127.0.0.1,2025:b", entry_ids[0]])
    # and a state lost after the change finds the same ids in the feed
    forget_state(site)
    site.build()
    assert ids(site.out / "atom.xml") == (feed_id, ["tag:127.0.0.1,2025:b", entry_ids[0]])


def test_a_new_tag_authority_applies_to_the_feed_and_new_entries_only(
        make_site: Callable[..., Site], caplog: pytest.LogCaptureFixture) -> None:
    site = make_site()
    site.write("a.txt", "2025-01-01", "Alpha. Text.")
    site.build()
    site.config = site.config.replace(tag_authority="example.org", tag_date="2026")
    site.write("b.txt", "2025-01-02", "Beta. Text.")
    with caplog.at_level(logging.WARNING, logger="feeder"):
        site.build()
    assert ids(site.out / "atom.xml") == (
        "tag:example.org,2026:feed", ["tag:example.org,2026:b", "tag:127.0.0.1,2025:a"])
    assert any("tag_authority changed" in r.message for r in caplog.records)


@pytest.mark.parametrize(("settings", "warned"), [
    ({}, "127.0.0.1"),
    ({"base_url": "http://localhost:8080/"}, "localhost"),
    ({"base_url": "http://[::1]:8080/"}, "::1"),
    ({"base_url": "https://news.example.org/"}, None),
    ({"tag_authority": "example.org"}, None),
])
def test_a_loopback_authority_is_warned_about_at_each_start(
        make_site: Callable[..., Site], caplog: pytest.LogCaptureFixture,
        settings: dict, warned: str | None) -> None:
    site = make_site(**settings)
    site.write("a.txt", "2025-01-01", "Alpha. Text.")
    for _start in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="feeder"):
            site.build()
        lines = [r.message for r in caplog.records if "loopback" in r.message]
        if warned is None:
            assert lines == []
        else:
            assert len(lines) == 1
            assert re.search(rf"authority {re.escape(warned)}:", lines[0])
            assert "[feed] tag_authority" in lines[0] and "FEEDER_TAG_AUTHORITY" in lines[0]


def test_a_recovered_site_pings_no_hub(make_site: Callable[..., Site]) -> None:
    """Feeds whose bytes are already published need no new ping."""
    site = make_site(max_entries=5, archive_size=4, hubs=["http://127.0.0.1:9/hub"])
    write_history(site)
    forget_state(site)
    site.build()  # the outbox queues a ping for each feed whose bytes are new
    with PingStore(site.config.state) as pings:
        assert pings.pending_pings() == []


def test_a_state_from_before_pinning_keeps_the_authority_of_its_feed(
        make_site: Callable[..., Site]) -> None:
    site = make_site()
    site.write("a.txt", "2025-01-01", "Alpha. Text.")
    site.build()
    with site.store.transaction():  # as feeder 0.1 left it: nothing pinned
        site.store.db.execute("DELETE FROM meta WHERE key = 'tag'")
    site.config = site.config.replace(base_url="https://news.example.org/")
    site.write("b.txt", "2025-01-02", "Beta. Text.")
    site.build()
    assert ids(site.out / "atom.xml") == (
        "tag:127.0.0.1,2025:feed", ["tag:127.0.0.1,2025:b", "tag:127.0.0.1,2025:a"])
