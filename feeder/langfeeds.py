"""Store -> one set of feeds per detected language, under ``lang/<code>/``.

For each language code an entry has (the one ``normalizer.detect_language`` stored), the
newest ``max_entries`` published entries of that language go to ``lang/<code>/atom.xml``,
``rss.xml`` and ``feed.json`` (with ``.gz`` siblings, hub and self links, kept under
``max_feed_bytes`` like the main feeds) and to an HTML page ``lang/<code>/index.html``.
Each feed's id is ``tag:<pinned authority>,<pinned date>:feed/lang/<code>``: distinct per
language and as stable as the main feed's. Language feeds have no RFC 5005 archives: older
entries are in the main feed's archives.

Incremental: triggers mark a language dirty in the store (table ``languages``) whenever one
of its entries is added, edited or removed, and a pass also marks the languages of entries
that came due since the last one; only dirty languages are rendered. A new version of a
language feed goes through the same outbox as the main feeds (hash and pings recorded before
the rename, released by the publisher after), so its hubs are pinged once per version, and
only for the languages that changed.

A language whose last entry goes away stays known: its feeds are rewritten empty (and its
hubs pinged), and keep being served, so subscribers get a valid empty feed, not a 404; the
main index no longer lists it. A full pass also adopts the language folders it finds on
disk, so a state recovered from the output keeps serving them the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from . import output, render
from .config import Config
from .errors import OutputError
from .normalizer import Entry
from .report import BuildReport
from .store import _ENTRY_COLUMNS, Store, kept_entry

log = logging.getLogger("feeder")

# What a detected (py3langid) or configured language code can be, and nothing else: it is a
# folder name and part of URLs.
CODE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*", re.ASCII)
FEEDS = (("atom.xml", "atom"), ("rss.xml", "rss"), ("feed.json", "json"))
INDEX = "index.html"
UNTIL_KEY = "languages_until"  # meta: the time of the last pass that published languages
# code -> (the hash of lang/<code>/atom.xml as last rendered here, the lastmod of the
# language's page in the sitemap then): the newest ``updated`` of the feed's entries, each of
# which the feed writes, so the hash recorded in the store stands for it (``sitemap_pages``)
_lastmods: dict[str, tuple[str, str | None]] = {}


def folder(code: str) -> str:
    """``lang/<code>/``, relative to the output folder and the base URL."""
    return f"lang/{code}/"


def feed_info(site: render.FeedInfo, code: str) -> render.FeedInfo:
    """The main feed's facts, for the feeds of language ``code``."""
    return dataclasses.replace(site, title=f"{site.title} ({code})", language=code,
                               feed_id=f"{site.feed_id}/lang/{code}",
                               home=site.url(folder(code)), archive_count=0)


def feeds_in(out: Path) -> list[str]:
    """The language feeds in the output folder ``out`` (for ``feeder ping``)."""
    return [folder(code) + name for code in sorted(_listdir(out / "lang"))
            if CODE.fullmatch(code) for name, _kind in FEEDS
            if os.path.isfile(os.path.join(out, folder(code), name))]


def topics(config: Config, codes: Iterable[str]) -> list[str]:
    """The URLs of the feeds of the languages ``codes``, as pinged."""
    return [config.base_url + folder(code) + name for code in codes for name, _kind in FEEDS]


def listed(store: Store, now: dt.datetime) -> list[str]:
    """The codes of the languages with a published entry, for the main index."""
    rows = store.db.execute(
        "SELECT code FROM languages l WHERE EXISTS (SELECT 1 FROM entries"
        " WHERE language = l.code AND pub_ts <= ?) ORDER BY code", (now.timestamp(),))
    return [code for (code,) in rows if CODE.fullmatch(code)]


def newest(store: Store, code: str, limit: int, now: dt.datetime) -> list[Entry]:
    """The newest ``limit`` entries in language ``code`` published by ``now``."""
    rows = store.db.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE language = ? AND pub_ts <= ?"
        " ORDER BY pub_ts DESC, name DESC LIMIT ?", (code, now.timestamp(), limit))
    return [kept_entry(r) for r in rows]


def publish(config: Config, store: Store, report: BuildReport, site: render.FeedInfo,
            now: dt.datetime, *, force: bool, full: bool,
            batch: output.Batch | None = None) -> tuple[list[str], set[str], list[str]]:
    """Write the feeds and page of each language that changed (every language when
    ``force``; on a ``full`` pass also those whose files are missing or not as written) and
    queue their pings, held; return :func:`listed`, and the languages left to mark
    ``rendered``. The caller releases the pings. With a ``batch``, the files are staged in
    it (its owner commits it, after this returns), and the owner marks those languages
    rendered once the batch is in place: a batch that fails leaves them to render again.

    A language whose folder or files are in the way (``lang`` made a plain file, a folder
    where its feed was) is logged and left as it was, to render again, while the rest of
    the pass goes on: the main feeds are not held back by it. Its error goes in
    ``report.blocked``, its code in the list returned last: pings of its feeds that an
    earlier pass recorded and held must stay held."""
    todo = _dirty(config, store, now, force=force, full=full)
    blocked = []
    for code in sorted(todo):
        error = _write_language(config, store, report, site, code, now, batch)
        if error is not None:
            log.error("language %s: %s; its feeds stay as they were until that is fixed",
                      code, error)
            report.blocked.append((str(error.path), error.reason))
            blocked.append(code)
    todo -= set(blocked)
    if batch is None:
        with store.transaction():
            rendered(store, todo)
        todo = set()
    return listed(store, now), todo, blocked


def rendered(store: Store, codes: Iterable[str]) -> None:
    """Mark ``codes``' files as in place (in the caller's transaction)."""
    store.db.executemany("UPDATE languages SET dirty = 0 WHERE code = ?",
                         [(code,) for code in codes])


def _dirty(config: Config, store: Store, now: dt.datetime, *, force: bool,
           full: bool) -> set[str]:
    """The codes to render this pass, after marking those whose entries came due."""
    with store.transaction():
        if full:  # folders of languages this state does not know (a recovered state)
            _adopt(store, _listdir(config.out / "lang"))
        last = store.get_meta(UNTIL_KEY)
        if isinstance(last, (int, float)):
            # entries published (or, with a clock set back, unpublished) since the last pass
            low, high = sorted((last, now.timestamp()))
            store.db.execute(
                "UPDATE languages SET dirty = 1 WHERE code IN (SELECT DISTINCT language"
                " FROM entries WHERE pub_ts > ? AND pub_ts <= ?)", (low, high))
        store.set_meta(UNTIL_KEY, now.timestamp())
    where = "" if force else " WHERE dirty"
    codes = {code for (code,) in store.db.execute(f"SELECT code FROM languages{where}")
             if CODE.fullmatch(code)}
    if full and not force:
        recorded = store.output_hashes("lang/")
        codes |= {code for (code,) in store.db.execute("SELECT code FROM languages")
                  if CODE.fullmatch(code) and not _intact(config, recorded, code)}
    return codes


def _adopt(store: Store, codes: Iterable[str]) -> None:
    store.db.executemany(
        "INSERT INTO languages (code, dirty) SELECT ?, 1"
        " WHERE NOT EXISTS (SELECT 1 FROM languages WHERE code = ?)",
        [(code, code) for code in codes if CODE.fullmatch(code)])


def _intact(config: Config, recorded: dict[str, str], code: str) -> bool:
    """Do the language's files hold what the store recorded of them?"""
    from .publish import _holds  # publish imports this module

    return all(_holds(os.path.join(config.out, path), recorded.get(path))
               for path in _paths(code))


def _paths(code: str) -> list[str]:
    return [folder(code) + name for name, _kind in FEEDS] + [folder(code) + INDEX]


def _write_language(config: Config, store: Store, report: BuildReport,
                    site: render.FeedInfo, code: str, now: dt.datetime,
                    batch: output.Batch | None = None) -> OutputError | None:
    """Render one language's feeds and page; write those whose bytes changed, recording
    their hashes and queueing (held) pings for the new feed versions before any rename.
    A file or folder in the way (``lang`` a plain file, a folder or FIFO where a file goes,
    a dangling symlink for its folder) is returned, before anything is recorded or
    staged."""
    out, info = config.out, feed_info(site, code)
    entries = newest(store, code, config.max_entries, now)
    recorded = store.output_hashes(folder(code))
    todo, fits = [], {}

    def prepared(path: str, data: bytes, is_feed: bool) -> None:
        # hashed, compared with its file and compressed on a helper thread while the next
        # document renders (``output.prepare``)
        todo.append((path, data, is_feed, output.HELPERS.submit(output.prepare,
                                                                (out / path, data))))

    for name, kind in FEEDS:
        path = folder(code) + name
        fitted = render.fit(kind, info, entries, self_path=path)
        fits[path] = fitted
        prepared(path, fitted.data, True)
    prepared(folder(code) + INDEX,
             render.render_language_page(info, site, folder(code), entries), False)
    changed, blocked = [], None
    for path, data, is_feed, preparing in todo:
        try:
            digest, _in_place, gz = prepared = preparing.result()
        except OutputError as exc:
            blocked = blocked or exc
            continue
        if path == folder(code) + "atom.xml":
            _lastmods[code] = (digest, _lastmod(entries))
        settled = output.settle(prepared, recorded.get(path))  # as for the main feeds
        if settled is None:
            continue
        write, new = settled
        changed.append((path, data, digest, is_feed and new, write, gz))
    if blocked is None and changed:  # its folder: not a dangling symlink, not a file
        try:
            (out / folder(code)).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            blocked = OutputError(out / folder(code), "not a folder"
                                  if isinstance(exc, FileExistsError) else exc.strerror or str(exc))
    if blocked is not None or not changed:
        return blocked
    with store.transaction():  # the outbox, as publish.Publisher._feeds keeps it
        store.record_outputs([(c[0], c[2]) for c in changed], now)
        store.queue_pings(config.hubs, [config.base_url + c[0] for c in changed if c[3]],
                          time.time())
    written = {}
    # one flush and one folder sync for the language's files, or with the caller's batch
    with output.Batch() if batch is None else contextlib.nullcontext(batch) as staged:
        for path, data, digest, new, write, gz in changed:
            if write:
                staged.write(out / path, data, check=False, gz=gz, hashed=digest)
                report.written.append(path)
                if path in fits:
                    written[path] = fits[path]
            if new:
                report.changed_feeds.append(path)
    from .publish import fit_notes  # publish imports this module

    for level, message in fit_notes(written, info.max_bytes):  # only when written: no repeats
        log.log(level, message)
    return None


def _listdir(path: os.PathLike[str]) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def sitemap_pages(store: Store, codes: Iterable[str], limit: int,
                  now: dt.datetime) -> list[tuple[str, str | None]]:
    """(code, lastmod) of each language's page, for the sitemap: the newest ``updated`` (W3C,
    to the second) of the ``limit`` entries it lists; None for a page that lists none.

    After ``publish``, each language's recorded feeds are those of its entries now (every
    language whose entries changed, or came due, was marked and rendered): while the
    recorded hash of its Atom feed is the one seen when its lastmod was last worked out in
    this process (rendered, or read here), that lastmod is the one. A one-seed pass renders
    one language; reading the others' ``updated``, stored after their content, took ~0.3 ms
    a language at 100k."""
    recorded = store.output_hashes("lang/")
    pages = []
    for code in codes:
        held = _lastmods.get(code)
        if held is not None and held[0] == recorded.get(folder(code) + "atom.xml"):
            pages.append((code, held[1]))
            continue
        rows = store.db.execute(
            "SELECT updated FROM entries WHERE language = ? AND pub_ts <= ?"
            " ORDER BY pub_ts DESC, name DESC LIMIT ?", (code, now.timestamp(), limit))
        lastmod = _newest_update(dt.datetime.fromisoformat(u) for (u,) in rows)
        pages.append((code, lastmod))
        if (atom := recorded.get(folder(code) + "atom.xml")) is not None:
            _lastmods[code] = (atom, lastmod)  # the feed recorded is of these entries
    return pages


def _lastmod(entries: list[Entry]) -> str | None:
    return _newest_update(e.updated for e in entries)


def _newest_update(updates: Iterable[dt.datetime]) -> str | None:
    newest_update = max(updates, default=None)
    return None if newest_update is None else newest_update.isoformat(timespec="seconds")
