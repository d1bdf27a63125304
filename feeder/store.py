"""The SQLite state file: seed fingerprints, entries, rejected seeds (``Store``); pending
WebSub pings and the hubs' last results (``PingStore``).

One writer: the process that holds the lock on the state file (``feeder run`` or ``feeder
build``; see open_locked). Entries are kept ordered by an index on (published, name), so the
newest N or any archive page is a cheap query at any archive size.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import operator
import os
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import (
    OutputError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreInUseError,
)
from .normalizer import Entry
from .output import fsync

log = logging.getLogger("feeder")

# The schema is built and changed only by numbered migrations (_MIGRATIONS, after the Store
# class): a file's PRAGMA user_version is the number of the last one applied, and a new file
# gets all of them in order, so new and upgraded files end up alike. To change the schema,
# append a migration (and a fixture of the layout before it, tests/data/state/make.py);
# never edit one that has shipped.

# Version 1: every file feeder 0.1 wrote has user_version 1, though its schema grew (with
# CREATE ... IF NOT EXISTS at each open) from this, the first one, to the one of version 2.
_V1 = """
CREATE TABLE seeds (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    reason TEXT,                -- NULL when the seed became an entry
    first_seen TEXT NOT NULL,
    changed TEXT NOT NULL
);
CREATE TABLE entries (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE REFERENCES seeds(name) ON DELETE CASCADE,
    stem TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    content_html TEXT NOT NULL,
    published TEXT NOT NULL,
    updated TEXT NOT NULL,
    language TEXT NOT NULL,
    pub_ts REAL NOT NULL
);
CREATE INDEX entries_order ON entries (pub_ts, name);
CREATE TABLE ids (
    stem TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE pings (
    hub TEXT NOT NULL,
    topic TEXT NOT NULL,
    since TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    last_error TEXT,
    PRIMARY KEY (hub, topic)
);
CREATE TABLE hubs (
    hub TEXT PRIMARY KEY,
    time TEXT NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT
);
"""


def _add_archive_page(db: sqlite3.Connection) -> None:
    """RFC 5005 archive page of each entry; NULL while it is in the current feeds. (Files
    made by feeder 0.1 after paging came in have it already.)"""
    if "archive_page" not in {r[1] for r in db.execute("PRAGMA table_info(entries)")}:
        db.execute("ALTER TABLE entries ADD COLUMN archive_page INTEGER")


# Version 2: any feeder 0.1 file brought to one schema. The tables and the index are the
# ones later 0.1 files may have already; the triggers, derived from the tables, are all
# made anew, so that no older variant of one survives.
_V2 = """
CREATE INDEX IF NOT EXISTS entries_page ON entries (archive_page, pub_ts, name);
-- Archive pages whose documents must be rendered again, kept by triggers in the same
-- transaction as the change, so a crash between the change and the render loses nothing.
CREATE TABLE IF NOT EXISTS dirty_pages (page INTEGER PRIMARY KEY);
-- Entry pages to (re)write and pages of removed entries to delete, kept by triggers in the
-- same transaction as the change: a pass that dies before publishing leaves them here.
CREATE TABLE IF NOT EXISTS stale_pages (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS gone_pages (slug TEXT PRIMARY KEY);
-- SQLite counts rows by walking an index; keep the entry count instead (100k rows: ~7 ms).
CREATE TABLE IF NOT EXISTS counts (
    name TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
INSERT OR IGNORE INTO counts (name, n) VALUES ('entries', (SELECT count(*) FROM entries));
DROP TRIGGER IF EXISTS entries_page_changed;
DROP TRIGGER IF EXISTS entries_left_page;
DROP TRIGGER IF EXISTS entries_changed_page;
DROP TRIGGER IF EXISTS entries_page_new;
DROP TRIGGER IF EXISTS entries_page_edited;
DROP TRIGGER IF EXISTS entries_page_gone;
DROP TRIGGER IF EXISTS entries_added;
DROP TRIGGER IF EXISTS entries_removed;
-- (no INSERT OR IGNORE in trigger bodies: the outer statement's conflict policy overrides it)
CREATE TRIGGER entries_left_page AFTER DELETE ON entries
    WHEN old.archive_page IS NOT NULL
    BEGIN
        INSERT INTO dirty_pages SELECT old.archive_page
            WHERE NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = old.archive_page);
    END;
CREATE TRIGGER entries_changed_page AFTER UPDATE ON entries
    BEGIN
        INSERT INTO dirty_pages SELECT old.archive_page
            WHERE old.archive_page IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = old.archive_page);
        INSERT INTO dirty_pages SELECT new.archive_page
            WHERE new.archive_page IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = new.archive_page);
    END;
CREATE TRIGGER entries_page_new AFTER INSERT ON entries
    BEGIN
        INSERT INTO stale_pages SELECT new.name
            WHERE NOT EXISTS (SELECT 1 FROM stale_pages WHERE name = new.name);
    END;
CREATE TRIGGER entries_page_edited
    AFTER UPDATE OF title, summary, content_html, published, updated, language, slug ON entries
    BEGIN
        INSERT INTO stale_pages SELECT new.name
            WHERE NOT EXISTS (SELECT 1 FROM stale_pages WHERE name = new.name);
    END;
CREATE TRIGGER entries_page_gone AFTER DELETE ON entries
    BEGIN
        INSERT INTO gone_pages SELECT old.slug
            WHERE NOT EXISTS (SELECT 1 FROM gone_pages WHERE slug = old.slug);
    END;
CREATE TRIGGER entries_added AFTER INSERT ON entries
    BEGIN UPDATE counts SET n = n + 1 WHERE name = 'entries'; END;
CREATE TRIGGER entries_removed AFTER DELETE ON entries
    BEGIN UPDATE counts SET n = n - 1 WHERE name = 'entries'; END;
"""

# Version 3: the outputs' content hashes, and the ping outbox. A feed's new version (its
# hash here) and the pings that announce it are recorded in one transaction before the file
# is renamed into place; the pings are held until it is (``held``), so no hub is asked to
# fetch a feed that is not there yet, and a crash in between loses and repeats nothing.
_V3 = """
CREATE TABLE outputs (
    path TEXT PRIMARY KEY,      -- relative to the output folder
    sha256 TEXT NOT NULL,       -- of the bytes last written there
    time TEXT NOT NULL
);
ALTER TABLE pings ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
"""

_QUEUE_PINGS = (
    "INSERT INTO pings (hub, topic, since, attempts, next_try, held) VALUES (?, ?, ?, 0, ?, ?)"
    " ON CONFLICT (hub, topic) DO UPDATE SET"
    " next_try = min(next_try, excluded.next_try),"
    " since = max(since, excluded.since), attempts = 0, held = excluded.held")


def _queue_pings(db: sqlite3.Connection, hubs: Iterable[str], topics: Iterable[str],
                 now: float, held: bool) -> None:
    since = dt.datetime.fromtimestamp(now, dt.UTC).isoformat()
    topics = list(topics)
    db.executemany(_QUEUE_PINGS, [(h, t, since, now, int(held)) for h in hubs for t in topics])


# Version 4: an entry page links the entries published just before and after it, so when an
# entry leaves a place in the (published, name) order, or its link text changes, the pages on
# either side of that place are written again. (The pages beside its new place are added by
# the publisher, which also sees entries become due.)
_NEIGHBOURS = """
CREATE TRIGGER entries_neighbours_gone AFTER DELETE ON entries
    BEGIN
        INSERT INTO stale_pages SELECT n.name FROM (SELECT name FROM entries
            WHERE (pub_ts, name) < (old.pub_ts, old.name) ORDER BY pub_ts DESC, name DESC
            LIMIT 1) n WHERE NOT EXISTS (SELECT 1 FROM stale_pages s WHERE s.name = n.name);
        INSERT INTO stale_pages SELECT n.name FROM (SELECT name FROM entries
            WHERE (pub_ts, name) > (old.pub_ts, old.name) ORDER BY pub_ts, name
            LIMIT 1) n WHERE NOT EXISTS (SELECT 1 FROM stale_pages s WHERE s.name = n.name);
    END;
CREATE TRIGGER entries_neighbours_moved AFTER UPDATE OF pub_ts, name, title, slug, language
    ON entries
    WHEN old.pub_ts IS NOT new.pub_ts OR old.name IS NOT new.name OR old.title IS NOT new.title
        OR old.slug IS NOT new.slug OR old.language IS NOT new.language
    BEGIN
        INSERT INTO stale_pages SELECT n.name FROM (SELECT name FROM entries
            WHERE (pub_ts, name) < (old.pub_ts, old.name) AND id != new.id
            ORDER BY pub_ts DESC, name DESC LIMIT 1) n
            WHERE NOT EXISTS (SELECT 1 FROM stale_pages s WHERE s.name = n.name);
        INSERT INTO stale_pages SELECT n.name FROM (SELECT name FROM entries
            WHERE (pub_ts, name) > (old.pub_ts, old.name) AND id != new.id
            ORDER BY pub_ts, name LIMIT 1) n
            WHERE NOT EXISTS (SELECT 1 FROM stale_pages s WHERE s.name = n.name);
    END;
"""

# Version 5: feeds per language (langfeeds.py). Each language an entry ever had, marked
# ``dirty`` by triggers in the same transaction as the change, so a new seed renders only its
# own language's feeds again (and a crash before they are written loses nothing). A language
# stays known when its last entry goes: its feeds stay, empty. The index keeps each
# language's newest entries a cheap query.
_LANGUAGES = """
CREATE INDEX entries_language ON entries (language, pub_ts, name);
CREATE TABLE languages (
    code TEXT PRIMARY KEY,
    dirty INTEGER NOT NULL
);
INSERT INTO languages (code, dirty) SELECT DISTINCT language, 1 FROM entries;
CREATE TRIGGER entries_language_new AFTER INSERT ON entries
    BEGIN
        UPDATE languages SET dirty = 1 WHERE code = new.language;
        INSERT INTO languages SELECT new.language, 1
            WHERE NOT EXISTS (SELECT 1 FROM languages WHERE code = new.language);
    END;
CREATE TRIGGER entries_language_gone AFTER DELETE ON entries
    BEGIN UPDATE languages SET dirty = 1 WHERE code = old.language; END;
CREATE TRIGGER entries_language_edited
    AFTER UPDATE OF id, title, summary, content_html, published, updated, language, slug, pub_ts,
        name ON entries
    BEGIN
        UPDATE languages SET dirty = 1 WHERE code IN (old.language, new.language);
        INSERT INTO languages SELECT new.language, 1
            WHERE NOT EXISTS (SELECT 1 FROM languages WHERE code = new.language);
    END;
"""

# Version 6: each entry's archive page in a narrow table of its own (``places``), not in the
# wide entries row (~5 KB with its content): placing a first build's 100,000 entries in their
# pages rewrote every row, ~500 MB through the WAL (3.5 s of a 50 s build); a row of
# ``places`` is ~50 bytes (0.5 s). One row per entry, page NULL while the entry is in the
# current feeds (or scheduled), made and removed with the entry by triggers, which also mark
# the pages to render again, as before. The entries.archive_page column of older files stays,
# unread (dropping it would rewrite every row, and change the rows older files hold).
_PLACES = """
DROP TRIGGER entries_left_page;
DROP TRIGGER entries_changed_page;
DROP INDEX IF EXISTS entries_page;
CREATE TABLE places (
    id TEXT PRIMARY KEY,        -- the entry's
    page INTEGER                -- its RFC 5005 archive page; NULL while in the current feeds
) WITHOUT ROWID;
INSERT INTO places (id, page) SELECT id, archive_page FROM entries;
CREATE INDEX places_page ON places (page);
CREATE TRIGGER entries_placed AFTER INSERT ON entries
    BEGIN INSERT INTO places (id, page) VALUES (new.id, NULL); END;
CREATE TRIGGER entries_unplaced AFTER DELETE ON entries
    BEGIN DELETE FROM places WHERE id = old.id; END;
CREATE TRIGGER entries_renamed_id AFTER UPDATE OF id ON entries WHEN old.id IS NOT new.id
    BEGIN UPDATE places SET id = new.id WHERE id = old.id; END;
-- an edited entry's page renders again
CREATE TRIGGER entries_changed_page AFTER UPDATE ON entries
    BEGIN
        INSERT INTO dirty_pages SELECT p.page FROM places p WHERE p.id = new.id
            AND p.page IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM dirty_pages d WHERE d.page = p.page);
    END;
CREATE TRIGGER places_left_page AFTER DELETE ON places
    WHEN old.page IS NOT NULL
    BEGIN
        INSERT INTO dirty_pages SELECT old.page
            WHERE NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = old.page);
    END;
CREATE TRIGGER places_changed_page AFTER UPDATE OF page ON places
    BEGIN
        INSERT INTO dirty_pages SELECT old.page
            WHERE old.page IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = old.page);
        INSERT INTO dirty_pages SELECT new.page
            WHERE new.page IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = new.page);
    END;
"""


def _forget_entries_page(db: sqlite3.Connection) -> None:
    """A bulk load that a crash interrupted kept the SQL of the objects it dropped, to make
    them again: not the index on entries.archive_page, which version 6 has no use for."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_BULK_KEY,)).fetchone()
    if row is not None:
        kept = [sql for sql in json.loads(row[0])
                if not sql.startswith("CREATE INDEX entries_page ")]
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(kept), _BULK_KEY))


_ENTRY_COLUMNS = "id, stem, slug, title, summary, content_html, published, updated, language"
_E_COLUMNS = ", ".join(f"e.{c}" for c in _ENTRY_COLUMNS.split(", "))  # of entries e in a join

# A first build's bulk load (Store.bulk_load) goes without the secondary indexes of the entries
# and the triggers that list each new entry's page as stale and give it its row of places: each
# insert would touch a random leaf of each, and every commit write them all again (at 10,000
# seeds, half the CPU of recording). They are made again after the load, from their stored
# SQL, with the rows the triggers would have written. So is the trigger that lists the
# entries' languages: they are made again from the entries. Those of updates and deletions
# stay (a load inserts into an empty table: it updates no entry, and deletes none it did not
# insert itself). The trigger that counts the entries stays too: readers beside the load
# (/healthz, `feeder check`, also after a load killed) read the count, which must be the
# entries committed, not 0 until the load ends.
_BULK_DEFERRED = ("entries_order", "entries_language", "entries_page_new", "entries_placed",
                  "entries_language_new")
# Placing this many unpaged entries at once goes without these (Store.place_unpaged).
_PLACE_IN_BULK = 5000
_PLACE_DEFERRED = ("places_page", "places_changed_page")
_BULK_KEY = "bulk_load"  # meta: the SQL of the objects dropped, until they are made again


@dataclass(frozen=True, slots=True)
class Fingerprint:
    size: int
    mtime_ns: int
    hash: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Pending:
    hub: str
    topic: str
    since: str
    attempts: int
    next_try: float
    last_error: str | None


def _key_range(prefix: str) -> tuple[str, str]:
    """The keys that start with ``prefix`` are those in [low, high): a primary-key range."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


_SEED_UPSERT = (
    "INSERT INTO seeds (name, size, mtime_ns, hash, reason, first_seen, changed)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
    " size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash,"
    " reason = excluded.reason, changed = excluded.changed")
# An upsert, not a replace: an edited entry keeps its archive page.
_ENTRY_UPSERT = (
    f"INSERT INTO entries ({_ENTRY_COLUMNS}, name, pub_ts)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
    " stem = excluded.stem, slug = excluded.slug, title = excluded.title,"
    " summary = excluded.summary, content_html = excluded.content_html,"
    " published = excluded.published, updated = excluded.updated,"
    " language = excluded.language, name = excluded.name, pub_ts = excluded.pub_ts")
_MINT_MANY = "INSERT INTO ids (stem, id) VALUES (?, ?) ON CONFLICT DO NOTHING"
_MINT = _MINT_MANY + " RETURNING id"


def _entry_row(name: str, entry: Entry) -> tuple:
    return (entry.id, entry.stem, entry.slug, entry.title, entry.summary, entry.content_html,
            _iso(entry.published), _iso(entry.updated), entry.language, name,
            entry.published.timestamp())


def _entry(row: tuple) -> Entry:
    id_, stem, slug, title, summary, content, published, updated, language = row
    return Entry(
        id=id_, stem=stem, slug=slug, title=title, summary=summary, content_html=content,
        published=dt.datetime.fromisoformat(published),
        updated=dt.datetime.fromisoformat(updated), language=language,
    )


# The entries made by ``kept_entry`` lately, by id, each with the row it was made from.
KEPT_ENTRIES = 1024
_kept: dict[str, tuple[tuple, Entry]] = {}


def kept_entry(row: tuple) -> Entry:
    """``_entry(row)``, or the very Entry it made of an equal row lately. A one-seed pass
    reads the same few hundred entries as the pass before (the newest, each language's
    newest, the newest archive page's), and the renderers' caches are keyed by whole
    entries: a kept Entry is found by identity, its strings' hashes already known, where an
    equal new one is hashed and compared field by field, content and all (a fifth of the
    pass's CPU at 100k seeds). Bounded: at ``KEPT_ENTRIES`` it starts again empty."""
    held = _kept.get(row[0])
    if held is not None and held[0] == row:
        return held[1]
    entry = _entry(row)
    if len(_kept) >= KEPT_ENTRIES:
        _kept.clear()
    _kept[row[0]] = (row, entry)
    return entry


def page_entries(db: sqlite3.Connection, page: int,
                 make: Callable[[tuple], Entry] = _entry) -> list[Entry]:
    """The entries of one archive page, oldest first."""
    rows = db.execute(f"SELECT {_E_COLUMNS} FROM places p CROSS JOIN entries e ON e.id = p.id"
                      " WHERE p.page = ? ORDER BY e.pub_ts, e.name", (page,))
    return [make(r) for r in rows]


def sitemap_rows(db: sqlite3.Connection, first: int, last: int) -> list[tuple[int, str, str]]:
    """(archive page, slug, updated) of the entries of archive pages ``first`` to ``last``, by
    page, then oldest first."""
    return list(db.execute(
        "SELECT p.page, e.slug, e.updated FROM places p CROSS JOIN entries e ON e.id = p.id"
        " WHERE p.page BETWEEN ? AND ? ORDER BY p.page, e.pub_ts, e.name", (first, last)))


def entries_named(db: sqlite3.Connection, names: Iterable[str]) -> dict[str, Entry]:
    """name -> entry, of those of ``names`` that have one."""
    names, found = list(names), {}
    for at in range(0, len(names), 500):
        part = names[at:at + 500]
        for r in db.execute(f"SELECT name, {_ENTRY_COLUMNS} FROM entries WHERE name IN"
                            f" ({','.join('?' * len(part))})", part):
            found[r[0]] = _entry(r[1:])
    return found


Source = tuple[str, int, int]  # Store.source: the state file's absolute path, device, inode
_READERS: dict[Source, sqlite3.Connection] = {}
READER_CACHE_KB = 512


class Unreadable(Exception):
    """The state file a worker was sent (``Source``) is no longer at its path: deleted, or
    replaced by another file, since the publishing process looked (``reader``)."""


def reader(source: Source) -> sqlite3.Connection:
    """A read-only connection to the state file at ``source`` (``Store.source``), for the
    worker processes that write pages: they read their entries themselves, rather than
    have the publishing process read and send them. Kept open for the worker's life (a
    worker never writes, and holds no lock of the writer's). Raises ``Unreadable`` when the
    file at the path is not that one (any more), or cannot be opened: the worker must not
    read another file's entries, and the writer's own connection still reads its file."""
    db = _READERS.get(source)
    if db is None:
        path, dev, ino = source
        db = None
        try:
            db = sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True,
                                 isolation_level=None, check_same_thread=False)
            # a small cache: a worker reads each entry once (the default, 2 MB, in each
            # worker is memory the process tree's peak would hold)
            db.execute(f"PRAGMA cache_size = {-READER_CACHE_KB}")
            # the file is open (its schema read): is it the one sent, still at its path?
            db.execute("SELECT 1 FROM places LIMIT 1").fetchall()
            st = os.stat(path)
            if (st.st_dev, st.st_ino) != (dev, ino):
                raise Unreadable(f"{path}: another file now")
        except (OSError, sqlite3.Error, Unreadable) as exc:
            if db is not None:
                db.close()
            raise Unreadable(f"{path}: {exc}") from exc
        _READERS[source] = db
    return db


class Store:
    """A connection to the state file. Not thread-safe: use it from one thread at a time."""

    def __init__(self, path: Path | str, *, check: bool = False, read_only: bool = False) -> None:
        """Open the state file and bring it to this feeder's schema (a new file gets it all).

        ``check`` (for the writer) first reads a row of every table, and runs SQLite's
        quick_check if that meets damage (see _probe), before anything is written to the
        file, and makes sure the file can be written. Raises StoreCorruptError for a file that
        is not a database or is damaged, and StoreError, having written nothing, for any
        other file it cannot use: a
        newer schema, permissions, I/O errors, a read-only file system.

        ``read_only`` (for `feeder check`, beside a running writer or not): opened read-only,
        so nothing is written, migrated or locked; a schema other than this feeder's is
        refused with StoreError.
        """
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._claims: list[socket.socket | None] = []
        self.db = self._open_read_only() if read_only else self._open(check)
        self._file = _FILES.opened(self.path)
        self._aside: _Checkpoints | None = None  # see checkpoints_aside

    def _open(self, check: bool) -> sqlite3.Connection:
        try:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise _refusal(self.path, exc) from exc
        try:
            # Read before anything is written: a file this feeder cannot use stays as it is.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(self.path, (
                    f"schema version {version} was written by a newer feeder (this one knows up"
                    f" to {SCHEMA_VERSION}); upgrade feeder, or use another state file"))
            if version == 0 and db.execute("SELECT 1 FROM sqlite_master").fetchone():
                raise StoreError(self.path, "not a feeder state file (it has tables but no"
                                            " feeder schema version); use another state file")
            if check:
                _probe(db, self.path)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA recursive_triggers=ON")  # INSERT OR REPLACE fires the delete trigger
            if version < SCHEMA_VERSION:
                _migrate(db)
            elif check:  # a file SQLite could only open read-only fails its first write
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(f"PRAGMA user_version = {version}")
                finally:
                    db.execute("ROLLBACK")
            db.execute("PRAGMA journal_mode=WAL")  # after the checks: it writes the header
            _finish_bulk_load(db)  # one a crash interrupted
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.Error):
                raise _refusal(self.path, exc) from exc
            raise
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True,
                                 isolation_level=None, check_same_thread=False)
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise _refusal(self.path, exc) from exc
        if version != SCHEMA_VERSION:
            db.close()
            raise StoreError(self.path, (
                f"schema version {version} was written by a newer feeder (this one knows up to"
                f" {SCHEMA_VERSION})" if version > SCHEMA_VERSION else
                f"schema version {version} is older than this feeder's ({SCHEMA_VERSION}); the"
                " next `feeder build` or `feeder run` upgrades it (opened read-only, it is"
                " not upgraded here)"))
        return db

    # -- locking ---------------------------------------------------------------------------
    @classmethod
    def open_locked(cls, path: Path | str, *, output: Path | str | None = None) -> Store:
        """Take the single-writer lock, then open the state file, checked (see __init__).

        A corrupt file (StoreCorruptError) is moved aside, with its -wal and -shm, and a
        fresh one started; any other StoreError is raised, and the file left untouched.
        The state path, and the ``output`` folder if given, are also claimed for as long as
        the store is open (see _claim): no other writer can take them, even if the state
        file is deleted.
        """
        path = Path(path)
        claims = [_claim(path, lambda holder: StoreInUseError(path, holder))]
        try:
            if output is not None:
                claims.append(_claim(Path(output), lambda holder: OutputError(
                    f"output folder {output}", f"in use by another feeder process ({holder});"
                    " stop it first or use another output folder")))
            store = cls._lock_and_open(path)
        except BaseException:
            for claim in claims:
                if claim is not None:
                    claim.close()
            raise
        store._claims = claims
        return store

    @classmethod
    def _lock_and_open(cls, path: Path) -> Store:
        fd = _acquire_lock(path)
        try:
            store = cls(path, check=True)
        except StoreCorruptError as exc:
            _move_aside(path, exc.reason)
            _release(fd)  # it locks the file that was moved aside
            fd = _acquire_lock(path)
            try:
                store = cls(path)
            except BaseException:
                _release(fd)
                raise
        except BaseException:
            _release(fd)
            raise
        store._lock_fd = fd
        return store

    def close(self) -> None:
        """Close the connection and let go of the lock and claims; again, it does nothing
        (a second count of this connection off its file would let another connection's
        POSIX locks go with the next descriptor closed)."""
        self.db.close()
        _FILES.closed(self._file)
        self._file = None
        if self._lock_fd is not None:
            _release(self._lock_fd)
            self._lock_fd = None
        for claim in self._claims:
            if claim is not None:
                claim.close()
        self._claims = []

    def restore_file(self, others: Iterable[Store] = ()) -> None:
        """Write the state file again at its path from this writer's open connection, after
        it was deleted under the running writer, and move the lock, this connection and
        ``others`` (to the same file) to the new file. Nothing may use them meanwhile."""
        stores, path = [self, *others], self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".restoring")
        tmp.unlink(missing_ok=True)
        self.db.execute("VACUUM INTO ?", (str(tmp),))  # a consistent copy, WAL included
        fsync(tmp)
        for store in stores:
            store.db.close()
            _FILES.closed(store._file)
        if self._lock_fd is not None:
            _release(self._lock_fd)
        for suffix in ("-wal", "-shm"):  # the deleted file's: SQLite leaves them behind
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        tmp.rename(path)
        fsync(path.parent)
        self._lock_fd = _acquire_lock(path)
        for store in stores:
            store.db = store._open(False)
            store._file = _FILES.opened(path)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> _Transaction:
        return _Transaction(self.db, self._aside)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads in the block see one state of the store (one read transaction): without
        it, each SELECT sees the latest commit, and two of them may disagree."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    @contextlib.contextmanager
    def cache(self, mb: int | None) -> Iterator[None]:
        """SQLite's page cache at ``mb`` megabytes for a bulk load (None: unchanged), back
        to what it was after, with the memory handed back."""
        if mb is None:
            yield
            return
        before = self.db.execute("PRAGMA cache_size").fetchone()[0]
        self.db.execute(f"PRAGMA cache_size = {-1024 * int(mb)}")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA cache_size = {int(before)}")
            self.db.execute("PRAGMA shrink_memory")

    @contextlib.contextmanager
    def checkpoints_aside(self) -> Iterator[None]:
        """In the block, this connection's commits do not checkpoint the WAL (copy its pages
        into the file, then sync both): a thread does, on a connection of its own, after
        each commit (``transaction``), while this one goes on. In a first build's read, the
        checkpoint of each batch's commit blocked the recording for ~0.1 s, and with it the
        workers, who wait for new seeds (100,000 seeds: 5 s of the recording's 10).

        The commits are as durable as before: with synchronous=NORMAL, a commit is synced by
        the checkpoint that follows it. A transaction begins once the last checkpoint is
        done, so the WAL starts again from its beginning (else it would grow by every
        commit made while a checkpoint runs). When the block ends, the checkpoint under way
        is waited for, and the commits checkpoint themselves again (the next one also what
        the thread had not)."""
        connection = self._checkpointer()
        if connection is None:  # in memory, or not the file opened any more
            yield
            return
        aside = _Checkpoints(connection)
        before = self.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        self.db.execute("PRAGMA wal_autocheckpoint = 0")
        thread = threading.Thread(target=aside.run, name="feeder-checkpoints", daemon=True)
        thread.start()
        self._aside = aside
        try:
            yield
        finally:
            self._aside = None
            aside.stop()
            thread.join()
            _FILES.closed(self._file)  # the thread's connection's
            self.db.execute(f"PRAGMA wal_autocheckpoint = {int(before)}")

    def _checkpointer(self) -> sqlite3.Connection | None:
        """A second connection to this store's file, for ``checkpoints_aside``; None if it
        has none, or if the file at its path is not the one opened."""
        if self._file is None:
            return None
        try:
            db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=rw", uri=True,
                                 isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return None
        key = None
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # as the writer's: syncs at checkpoints
            db.execute("PRAGMA user_version").fetchone()  # the file opened: is it ours?
            key = _FILES.opened(self.path)
            if key == self._file:
                return db
        except sqlite3.Error:
            pass
        db.close()
        _FILES.closed(key)
        return None

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Record a first build's entries without the deferred indexes and trigger
        (``_BULK_DEFERRED``), made again when the block ends, however it ends: the store is
        then as if they had been there all along. Only into an empty entries table (else an
        ordinary block): every entry there at the end was inserted during the load.

        The dropped objects' SQL is kept in the store, committed with their drop, so a load
        that a crash interrupts is finished at the next opening (``_finish_bulk_load``).
        """
        if self.db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is not None:
            yield
            return
        with self.transaction():
            found = self.db.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name IN"
                f" ({','.join('?' * len(_BULK_DEFERRED))}) ORDER BY rowid",
                _BULK_DEFERRED).fetchall()
            self.set_meta(_BULK_KEY, [sql for _type, _name, sql in found])
            for kind, name, _sql in found:
                self.db.execute(f'DROP {kind} "{name}"')
        try:
            yield
        finally:
            _finish_bulk_load(self.db)

    def fresh_load(self) -> FreshLoad | None:
        """A ``FreshLoad`` to record a first build's seeds with, if this store holds no entry
        and no minted id (the caller sees that no seed it records has a row yet); else None."""
        if self.db.execute("SELECT EXISTS (SELECT 1 FROM entries) OR EXISTS"
                           " (SELECT 1 FROM ids)").fetchone()[0]:
            return None
        return FreshLoad(self)

    def finish_bulk_load(self) -> None:
        """Finish a bulk load that another process left cut short in this file (a cold
        build's child, ``apart.py``, killed: the daemon's own connection opened the file
        before it, so its opening did not): what ``_finish_bulk_load`` does at an opening.
        Writes nothing when there is none (one lookup)."""
        _finish_bulk_load(self.db)

    # -- seeds -----------------------------------------------------------------------------
    def fingerprints(self, names: Iterable[str] | None = None) -> dict[str, Fingerprint]:
        """Every seed's fingerprint, or only those of ``names`` (the ones that exist)."""
        if names is None:
            rows = self.db.execute("SELECT name, size, mtime_ns, hash, reason FROM seeds")
        else:
            names = list(names)
            rows = (r for chunk in range(0, len(names), 500) for r in self.db.execute(
                "SELECT name, size, mtime_ns, hash, reason FROM seeds WHERE name IN"
                f" ({','.join('?' * len(names[chunk:chunk + 500]))})", names[chunk:chunk + 500]))
        return {r[0]: Fingerprint(r[1], r[2], r[3], r[4]) for r in rows}

    def fingerprint(self, name: str) -> Fingerprint | None:
        r = self.db.execute(
            "SELECT size, mtime_ns, hash, reason FROM seeds WHERE name = ?", (name,)
        ).fetchone()
        return Fingerprint(*r) if r else None

    def touch(self, name: str, size: int, mtime_ns: int) -> None:
        """Same content under a new stat (e.g. `touch`): remember the new stat only."""
        self.db.execute(
            "UPDATE seeds SET size = ?, mtime_ns = ? WHERE name = ?", (size, mtime_ns, name)
        )

    def _seed_row(self, name: str, size: int, mtime_ns: int, digest: str, reason: str | None,
                  now: dt.datetime) -> None:
        self.db.execute(_SEED_UPSERT, (name, size, mtime_ns, digest, reason, stamp := _iso(now),
                                       stamp))

    def mint_id(self, stem: str, fresh_id: str) -> tuple[str, bool]:
        """The entry id of ``stem``: minted once, then always the stored one.
        Returns (id, minted_now)."""
        row = self.db.execute(_MINT, (stem, fresh_id)).fetchone()
        if row is not None:
            return row[0], True
        return self.db.execute("SELECT id FROM ids WHERE stem = ?", (stem,)).fetchone()[0], False

    def owner_of(self, entry_id: str) -> str | None:
        r = self.db.execute("SELECT name FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return r[0] if r else None

    def entry_by_name(self, name: str) -> Entry | None:
        r = self.db.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE name = ?", (name,)
        ).fetchone()
        return _entry(r) if r else None

    def put_entry(self, name: str, size: int, mtime_ns: int, digest: str, entry: Entry,
                  now: dt.datetime) -> None:
        self._seed_row(name, size, mtime_ns, digest, None, now)
        self.db.execute(_ENTRY_UPSERT, _entry_row(name, entry))

    def reject(self, name: str, size: int, mtime_ns: int, digest: str, reason: str,
               now: dt.datetime) -> None:
        self.db.execute("DELETE FROM entries WHERE name = ?", (name,))
        self._seed_row(name, size, mtime_ns, digest, reason, now)

    def forget(self, name: str) -> Entry | None:
        """The seed file is gone: drop its entry (its id stays minted). Returns the entry."""
        old = self.entry_by_name(name)
        self.db.execute("DELETE FROM seeds WHERE name = ?", (name,))
        return old

    # -- queries ---------------------------------------------------------------------------
    def entry_names(self) -> Iterator[str]:
        """The names of the seeds that have an entry."""
        return (r[0] for r in self.db.execute("SELECT name FROM entries"))

    def total(self) -> int:
        return self.db.execute("SELECT n FROM counts WHERE name = 'entries'").fetchone()[0]

    def count(self, until: dt.datetime) -> int:
        """Entries published by ``until``: all of them less the few scheduled later."""
        later = self.db.execute(
            "SELECT count(*) FROM entries WHERE pub_ts > ?", (until.timestamp(),)
        ).fetchone()[0]
        return self.total() - later

    def newest(self, limit: int, until: dt.datetime) -> list[Entry]:
        rows = self.db.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE pub_ts <= ?"
            " ORDER BY pub_ts DESC, name DESC LIMIT ?",
            (until.timestamp(), limit),
        )
        return [kept_entry(r) for r in rows]

    def iter_named_entries(self) -> Iterator[tuple[str, Entry]]:
        """(name, entry) by ascending (published, name), streamed."""
        rows = self.db.execute(
            f"SELECT name, {_ENTRY_COLUMNS} FROM entries ORDER BY pub_ts, name")
        for r in rows:
            yield r[0], _entry(r[1:])

    def neighbours(self, name: str, until: dt.datetime) -> tuple[tuple | None, tuple | None]:
        """(name, title, slug, language) of the entries published by ``until`` just before
        and just after entry ``name`` in (published, name) order; None where there is none."""
        row = self.db.execute("SELECT pub_ts FROM entries WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None, None
        before = self.db.execute(
            "SELECT name, title, slug, language FROM entries WHERE (pub_ts, name) < (?, ?)"
            " ORDER BY pub_ts DESC, name DESC LIMIT 1", (row[0], name)).fetchone()
        after = self.db.execute(
            "SELECT name, title, slug, language FROM entries WHERE (pub_ts, name) > (?, ?)"
            " AND pub_ts <= ? ORDER BY pub_ts, name LIMIT 1",
            (row[0], name, until.timestamp())).fetchone()
        return before, after

    def sitemap_rows(self, first: int, last: int) -> list[tuple[int, str, str]]:
        """(archive page, slug, updated) of the entries of archive pages ``first`` to
        ``last``, by page, then oldest first."""
        return sitemap_rows(self.db, first, last)

    # -- archive pages -----------------------------------------------------------------------
    def unarchive_scheduled(self, now: dt.datetime) -> None:
        """Entries (re-)dated into the future leave their pages until they are due."""
        self.db.execute(
            "UPDATE places SET page = NULL WHERE page IS NOT NULL"
            " AND id IN (SELECT id FROM entries WHERE pub_ts > ?)", (now.timestamp(),))

    def unarchive(self, ids: Iterable[str]) -> None:
        """These entries are in the current feeds (again): take them out of their pages."""
        self.db.executemany("UPDATE places SET page = NULL WHERE id = ? AND page IS NOT NULL",
                            [(i,) for i in ids])

    def unpaged(self, until: dt.datetime) -> list[str]:
        """Ids of published entries in no archive page, oldest first."""
        return [r[0] for r in self.db.execute(
            "SELECT e.id FROM places p CROSS JOIN entries e ON e.id = p.id"
            " WHERE p.page IS NULL AND e.pub_ts <= ? ORDER BY e.pub_ts, e.name",
            (until.timestamp(),))]

    def last_page(self) -> tuple[int, int]:
        """(number of the newest archive page or 0, how many entries it holds)."""
        page = self.db.execute("SELECT max(page) FROM places").fetchone()[0] or 0
        held = self.db.execute(
            "SELECT count(*) FROM places WHERE page = ?", (page,)).fetchone()[0]
        return page, held

    def put_in_pages(self, placed: Iterable[tuple[int, str]]) -> None:
        """(page, id) pairs, written in id order: the table's pages one after the other."""
        self.db.executemany("UPDATE places SET page = ? WHERE id = ?",
                            sorted(placed, key=operator.itemgetter(1)))

    def place_unpaged(self, placed: list[tuple[int, str]]) -> None:
        """(page, id) pairs of entries in no page yet (in the caller's transaction). Many at
        once (a first build) go in without the index of the pages and the trigger that
        marks them, made again after, and the pages marked here: the trigger and the index
        took 0.6 s of the 0.8 s of placing 100,000 entries."""
        if len(placed) < _PLACE_IN_BULK:
            self.db.executemany("UPDATE places SET page = ? WHERE id = ? AND page IS NULL",
                                sorted(placed, key=operator.itemgetter(1)))
            return
        if not self.db.in_transaction:  # the objects dropped are made again in the same one
            raise StoreError(self.path, "place_unpaged outside a transaction")
        found = self.db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name IN (?, ?) ORDER BY rowid",
            _PLACE_DEFERRED).fetchall()
        for kind, name, _sql in found:
            self.db.execute(f'DROP {kind} "{name}"')
        self.db.executemany("UPDATE places SET page = ? WHERE id = ? AND page IS NULL",
                            sorted(placed, key=operator.itemgetter(1)))
        for _kind, _name, sql in found:
            self.db.execute(sql)
        self.mark_pages(sorted({page for page, _id in placed}))

    def page_entries(self, page: int, kept: bool = False) -> list[Entry]:
        """The entries of one archive page, oldest first (``kept``: as ``kept_entry`` keeps
        them, for a pass of a few pages; not for a big pass's many, kept for nothing)."""
        return page_entries(self.db, page, kept_entry if kept else _entry)

    def mark_pages(self, pages: Iterable[int]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO dirty_pages VALUES (?)", [(p,) for p in pages])

    def dirty_pages(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT page FROM dirty_pages ORDER BY page")]

    def clear_pages(self, pages: Iterable[int]) -> None:
        self.db.executemany("DELETE FROM dirty_pages WHERE page = ?", [(p,) for p in pages])

    def published_names(self, until: dt.datetime) -> Iterator[str]:
        """The names of the entries published by ``until``, by ascending (published, name),
        streamed (from the index alone)."""
        return (r[0] for r in self.db.execute(
            "SELECT name FROM entries WHERE pub_ts <= ? ORDER BY pub_ts, name",
            (until.timestamp(),)))

    def source(self) -> Source | None:
        """Where other processes can read this store (``reader``): its absolute path, with
        the file's identity, which they check; None for one in memory, or whose file was
        deleted or replaced since it was opened."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        if self._file != (st.st_dev, st.st_ino):
            return None
        return os.path.abspath(self.path), st.st_dev, st.st_ino

    def slugs_by_name(self, until: dt.datetime) -> list[tuple[str, str]]:
        """(name, slug) of the entries published by ``until``, in no particular order. Read
        from the table itself, not by the date index and then each row (all but the few
        scheduled ones are wanted: 100,000 entries, 0.28 -> 0.18 s)."""
        return list(self.db.execute("SELECT name, slug FROM entries NOT INDEXED"
                                    " WHERE pub_ts <= ?", (until.timestamp(),)))

    def stale_pages(self, until: dt.datetime) -> list[tuple[str, bool]]:
        """(name, published by ``until``?) of entries whose page must be written."""
        # CROSS JOIN keeps the few stale rows as the outer loop: without statistics the
        # planner scanned every entry instead (11 ms a pass at 100,000 entries).
        return [(n, bool(due)) for n, due in self.db.execute(
            "SELECT s.name, e.pub_ts <= ? FROM stale_pages s CROSS JOIN entries e"
            " ON e.name = s.name", (until.timestamp(),))]

    def pages_written(self, names: Iterable[str]) -> None:
        """In key order: the leaves of the table's index one after the other, not at random
        (a first build's 100,000 names: 0.55 s -> 0.17 s, with the pool gone)."""
        self.db.executemany("DELETE FROM stale_pages WHERE name = ?",
                            ((n,) for n in sorted(names)))

    def slug_owner(self, slug: str) -> str | None:
        """The seed whose entry has the page ``slug``."""
        row = self.db.execute("SELECT name FROM entries WHERE slug = ?", (slug,)).fetchone()
        return row[0] if row else None

    def gone_pages(self) -> list[str]:
        """Slugs of removed entries whose page may still be on disk (none if re-used)."""
        return [r[0] for r in self.db.execute(
            "SELECT slug FROM gone_pages WHERE slug NOT IN (SELECT slug FROM entries)")]

    def pages_removed(self) -> None:
        self.db.execute("DELETE FROM gone_pages")
        self.db.execute("DELETE FROM stale_pages WHERE name NOT IN (SELECT name FROM entries)")

    def rejected(self, limit: int | None = None) -> list[tuple[str, str]]:
        """Rejected seeds and why, by name: all, or the first ``limit``."""
        return list(self.db.execute(
            "SELECT name, reason FROM seeds WHERE reason IS NOT NULL ORDER BY name LIMIT ?",
            (-1 if limit is None else limit,)))

    def rejected_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM seeds WHERE reason IS NOT NULL").fetchone()[0]

    def scheduled(self, after: dt.datetime) -> list[tuple[str, dt.datetime]]:
        rows = self.db.execute(
            "SELECT name, published FROM entries WHERE pub_ts > ? ORDER BY pub_ts, name",
            (after.timestamp(),),
        )
        return [(n, dt.datetime.fromisoformat(p)) for n, p in rows]

    def next_scheduled(self, after: dt.datetime) -> dt.datetime | None:
        r = self.db.execute(
            "SELECT published FROM entries WHERE pub_ts > ? ORDER BY pub_ts LIMIT 1",
            (after.timestamp(),),
        ).fetchone()
        return dt.datetime.fromisoformat(r[0]) if r else None

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str, default: object = None) -> object:
        r = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(r[0]) if r else default

    def set_meta(self, key: str, value: object) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def has_meta_prefix(self, prefix: str) -> bool:
        """Is there a meta key that starts with ``prefix``?"""
        return self.db.execute("SELECT 1 FROM meta WHERE key >= ? AND key < ? LIMIT 1",
                               _key_range(prefix)).fetchone() is not None

    def drop_meta_prefix(self, prefix: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key >= ? AND key < ?", _key_range(prefix))

    # -- outputs and the ping outbox (in the caller's transaction) ------------------------
    def output_hashes(self, under: str = "") -> dict[str, str]:
        """path -> sha256 of the outputs recorded (those whose path starts with ``under``)."""
        rows = self.db.execute("SELECT path, sha256 FROM outputs WHERE path >= ? AND path < ?",
                               (under, under + "\U0010ffff"))
        return dict(rows)

    def record_outputs(self, hashes: Iterable[tuple[str, str]], now: dt.datetime) -> None:
        """(path, sha256) of outputs just written, or found holding those bytes; by path
        (a stable sort: the last of a path's hashes still wins), so the inserts go through
        the index's leaves in order (a first build, 100,000 entry pages recorded 5,000 at a
        time: 0.61 s -> 0.42 s of CPU)."""
        stamp = _iso(now)
        self.db.executemany(
            "INSERT INTO outputs (path, sha256, time) VALUES (?, ?, ?) ON CONFLICT (path)"
            " DO UPDATE SET sha256 = excluded.sha256, time = excluded.time"
            " WHERE sha256 != excluded.sha256",
            [(p, h, stamp) for p, h in sorted(hashes, key=operator.itemgetter(0))])

    def forget_outputs(self, paths: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM outputs WHERE path = ?", [(p,) for p in paths])

    def queue_pings(self, hubs: Iterable[str], topics: Iterable[str], now: float) -> None:
        """The outbox: pings announcing new feed versions, held until ``release_pings``
        (see PingStore.add_pings for how a pending ping absorbs a new one)."""
        _queue_pings(self.db, hubs, topics, now, held=True)

    def release_pings(self, keep: Iterable[str] = ()) -> int:
        """The feeds are in place: let the held pings be sent, but those of the topics
        ``keep`` (feeds not in place); returns how many."""
        keep = list(keep)
        return self.db.execute(
            f"UPDATE pings SET held = 0 WHERE held AND topic NOT IN ({','.join('?' * len(keep))})",
            keep).rowcount

# -- opening, migrating, locking -------------------------------------------------------------

# A list of (version, steps): each step an SQL script or a function of the connection. They
# run in one transaction with the PRAGMA user_version = version that records them.
_MIGRATIONS: list[tuple[int, list[str | Callable[[sqlite3.Connection], None]]]] = [
    (1, [_V1]),
    (2, [_add_archive_page, _V2]),
    (3, [_V3]),
    (4, [_NEIGHBOURS]),
    (5, [_LANGUAGES]),
    (6, [_forget_entries_page, _PLACES]),
]
SCHEMA_VERSION = _MIGRATIONS[-1][0]



class FreshLoad:
    """Records a first build's seeds: ``Store``'s recording methods (``mint_id``,
    ``owner_of``, ``slug_owner``, ``put_entry``, ``reject``) for a store that holds no entry
    and no minted id, and no seed row of any seed recorded through it (``Store.fresh_load``).

    What those methods would look up is then only what this load recorded: it is kept here,
    and the rows go in with one ``executemany`` per table at each ``flush`` (before each
    batch's commit), in the order they came, through the same statements: the same rows,
    rowids and trigger effects, without three queries and three statements per seed (a
    first build's recording was most of the publishing process's CPU while the workers read:
    ~14 of 18 s at 100,000 seeds)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Keyed by id, not stem: an entry's id is a function of its stem alone, one to one
        # (``normalizer.entry_id``), so a stem minted before is an id minted before, and one
        # dict does for the minted ids and their owners (100,000 seeds: the parent's peak RSS
        # 140-142 MB, against 150 MB with a dict by stem, a set of ids and a dict of owners).
        self._ids: dict[str, str | None] = {}  # id -> name of the seed whose entry has it
        self._slugs: dict[str, str] = {}  # slug -> name of the seed whose entry has it
        self._new_ids: list[tuple[str, str]] = []
        self._seeds: list[tuple] = []
        self._entries: list[tuple] = []

    def mint_id(self, stem: str, fresh_id: str) -> tuple[str, bool]:
        if fresh_id in self._ids:
            return fresh_id, False
        self._ids[fresh_id] = None  # no owner until its entry is put
        self._new_ids.append((stem, fresh_id))
        return fresh_id, True

    def owner_of(self, entry_id: str) -> str | None:
        return self._ids.get(entry_id)

    def slug_owner(self, slug: str) -> str | None:
        return self._slugs.get(slug)

    def put_entry(self, name: str, size: int, mtime_ns: int, digest: str, entry: Entry,
                  now: dt.datetime) -> None:
        self._seeds.append((name, size, mtime_ns, digest, None, stamp := _iso(now), stamp))
        self._entries.append(_entry_row(name, entry))
        self._ids[entry.id] = name
        self._slugs[entry.slug] = name

    def reject(self, name: str, size: int, mtime_ns: int, digest: str, reason: str,
               now: dt.datetime) -> None:
        self._seeds.append((name, size, mtime_ns, digest, reason, stamp := _iso(now), stamp))

    def flush(self) -> None:
        """Write the rows recorded since the last flush (in the caller's transaction)."""
        db = self.store.db
        if self._new_ids:
            db.executemany(_MINT_MANY, self._new_ids)
        if self._seeds:  # before the entries, whose names refer to them
            db.executemany(_SEED_UPSERT, self._seeds)
        if self._entries:
            db.executemany(_ENTRY_UPSERT, self._entries)
        self._new_ids, self._seeds, self._entries = [], [], []


class PingStore:
    """The WebSub pings waiting to be sent and each hub's last result, in the state file.

    Its own connection, which threads may share (each call holds a lock and leaves no
    transaction open): the daemon's build thread queues pings as it writes feeds and its ping
    thread sends them.
    """

    def __init__(self, path: Path | str) -> None:
        self._store = Store(path)  # the same opening, checks and migrations as the writer's
        self.path = self._store.path
        self._lock = threading.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        return self._store.db  # a new one after Store.restore_file

    @contextlib.contextmanager
    def held(self) -> Iterator[Store]:
        """Its connection's Store, with no call using it until the block ends."""
        with self._lock:
            yield self._store

    def close(self) -> None:
        with self._lock:
            self._store.close()

    def __enter__(self) -> PingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_pings(self, hubs: Iterable[str], topics: Iterable[str], now: float) -> None:
        """Queue a publish ping per (hub, topic) for a change of the feed made at ``now``.

        A ping already pending for that hub and topic absorbs the new one, which restarts it:
        no attempts used (failures announcing an older version do not count against this
        one) and due at ``now`` at the latest. ``since`` becomes the time of the newest
        change, so that ``ping_done`` and ``ping_failed`` can tell a ping that was sent from
        one queued again while it was in flight.
        """
        with self._lock:
            _queue_pings(self.db, hubs, topics, now, held=False)

    def pending_pings(self) -> list[Pending]:
        with self._lock:
            rows = self.db.execute(
                "SELECT hub, topic, since, attempts, next_try, last_error FROM pings"
                " WHERE NOT held ORDER BY next_try, hub, topic"
            ).fetchall()
        return [Pending(*r) for r in rows]

    def ping_done(self, hub: str, topic: str, since: str | None = None) -> None:
        """Forget a ping; with ``since``, only if no change was queued after that one."""
        where, args = self._where(hub, topic, since)
        with self._lock:
            self.db.execute("DELETE FROM pings" + where, args)

    def ping_failed(self, hub: str, topic: str, next_try: float, error: str,
                    since: str | None = None) -> bool:
        """Count a failed try and set when to try again; return True if it was counted.

        With ``since``, a change queued after that one (while the failed ping was in
        flight) is left with its fresh attempts and due time; only the error is recorded.
        """
        where, args = self._where(hub, topic, since)
        with self._lock:
            counted = self.db.execute(
                "UPDATE pings SET attempts = attempts + 1, next_try = ?, last_error = ?" + where,
                (next_try, error, *args),
            ).rowcount > 0
            if not counted:
                self.db.execute("UPDATE pings SET last_error = ? WHERE hub = ? AND topic = ?",
                                (error, hub, topic))
        return counted

    @staticmethod
    def _where(hub: str, topic: str, since: str | None) -> tuple[str, tuple[str, ...]]:
        if since is None:
            return " WHERE hub = ? AND topic = ?", (hub, topic)
        return " WHERE hub = ? AND topic = ? AND since = ?", (hub, topic, since)

    def drop_pings_except(self, hubs: Iterable[str]) -> None:
        hubs = list(hubs)
        marks = ",".join("?" * len(hubs)) or "''"
        with self._lock:
            self.db.execute(f"DELETE FROM pings WHERE hub NOT IN ({marks})", hubs)

    def hub_result(self, hub: str, ok: bool, detail: str, now: dt.datetime) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO hubs (hub, time, ok, detail) VALUES (?, ?, ?, ?)",
                (hub, _iso(now), int(ok), detail),
            )

    def hub_results(self) -> dict[str, dict]:
        with self._lock:
            rows = self.db.execute("SELECT hub, time, ok, detail FROM hubs").fetchall()
        return {h: {"time": t, "ok": bool(ok), "detail": d} for h, t, ok, d in rows}


def _probe(db: sqlite3.Connection, path: Path) -> None:
    """Read the first row of every table, and run SQLite's quick_check only if that meets
    damage (SQLITE_CORRUPT or SQLITE_NOTADB): the check reads the whole file (9-12 s cold for
    100,000 entries), the probe a few pages per table. Raises StoreCorruptError."""
    try:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            db.execute(f'SELECT * FROM "{table}" LIMIT 1').fetchall()
    except sqlite3.DatabaseError as exc:
        if not _corrupt(exc):
            raise
        try:
            problems = " ".join(r[0] for r in db.execute("PRAGMA quick_check(3)"))
        except sqlite3.DatabaseError:
            problems = "ok"  # the check cannot read it either: SQLite's first word stands
        raise StoreCorruptError(path, str(exc) if problems == "ok" else
                                "integrity check failed: " + " ".join(problems.split())) from exc


def _corrupt(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged, or not a database."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
    return code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)


def _migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations the file lacks, in order, each in a transaction of its own."""
    for version, steps in _MIGRATIONS:
        with _Transaction(db):
            if db.execute("PRAGMA user_version").fetchone()[0] >= version:
                continue  # applied already (by another connection meanwhile)
            for step in steps:
                if callable(step):
                    step(db)
                else:
                    for statement in _statements(step):
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {version}")


def _finish_bulk_load(db: sqlite3.Connection) -> None:
    """Make again the objects a bulk load dropped (Store.bulk_load), if it left any, list
    as stale the page of each entry, in the order of their insertion, give each entry its
    row of places (no page yet), count the entries and mark their languages dirty, as the
    triggers would have; in one transaction. Writes nothing when there is none (the usual
    case)."""
    query = "SELECT value FROM meta WHERE key = ?"
    if db.execute(query, (_BULK_KEY,)).fetchone() is None:
        return
    with _Transaction(db):
        row = db.execute(query, (_BULK_KEY,)).fetchone()  # unless finished meanwhile
        if row is None:
            return
        for sql in json.loads(row[0]):
            db.execute(sql)
        db.execute("INSERT INTO stale_pages SELECT e.name FROM entries e WHERE NOT EXISTS"
                   " (SELECT 1 FROM stale_pages s WHERE s.name = e.name) ORDER BY e.rowid")
        db.execute("INSERT INTO places (id, page) SELECT e.id, NULL FROM entries e WHERE NOT"
                   " EXISTS (SELECT 1 FROM places p WHERE p.id = e.id) ORDER BY e.id")
        # (from the entries whichever triggers were dropped: a load cut short by an older
        # feeder kept these two, whose rows are the same)
        db.execute("UPDATE counts SET n = (SELECT count(*) FROM entries) WHERE name = 'entries'")
        db.execute("UPDATE languages SET dirty = 1 WHERE dirty = 0 AND code IN"
                   " (SELECT language FROM entries)")
        db.execute("INSERT INTO languages (code, dirty) SELECT DISTINCT e.language, 1 FROM"
                   " entries e WHERE NOT EXISTS (SELECT 1 FROM languages l WHERE"
                   " l.code = e.language)")
        db.execute("DELETE FROM meta WHERE key = ?", (_BULK_KEY,))


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time (``executescript`` would commit the
    transaction a migration runs in)."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip("; \n"):
                yield statement
            statement = ""


def _refusal(path: Path, exc: OSError | sqlite3.Error) -> StoreError:
    """The StoreError for ``exc``, met while opening ``path``, with its cause."""
    if isinstance(exc, OSError):
        return StoreError(path, exc.strerror or str(exc))
    if _corrupt(exc):
        return StoreCorruptError(path, str(exc))
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreBusyError(path, f"locked by another process ({exc})")
    cause = _write_refused(path)
    return StoreError(path, f"{exc} ({cause})" if cause else str(exc))


def _write_refused(path: Path) -> str | None:
    """Why the OS refuses to open ``path`` for writing, if it does: SQLite's own messages
    ("unable to open database file", "attempt to write a readonly database") do not say."""
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS)
        if not path.exists():
            return None
        _FILES.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _move_aside(path: Path, reason: str) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        old = Path(str(path) + suffix)
        if old.exists():
            old.rename(old.with_name(f"{old.name}.corrupt-{stamp}"))
    log.warning("state file %s is corrupt (%s): moved it aside as %s.corrupt-%s and rebuilt it"
                " from the seeds", path, reason, path.name, stamp)


# The single-writer lock is flock(2) on the state file itself. A lock on a file of its own
# (the <state>.lock of feeder 0.1) is lost when that file is deleted: the next process locks
# a new one, and two processes then write one state. Not fcntl (POSIX record) locks: SQLite
# takes those on the same file, and they belong to the process, not to a descriptor, so ours
# would merge with SQLite's, and unlocking either would unlock both. flock locks belong to
# the open file description and never meet SQLite's (on local file systems; Linux emulates
# flock with POSIX locks over NFS, where SQLite's locking is unsafe anyway).
#
# One POSIX rule still applies: closing *any* descriptor of a file drops all of this
# process's POSIX locks on it, so closing our lock descriptor would drop the locks of the
# SQLite connections of this process that still use the file (SQLite keeps descriptors open
# for this very reason). _FILES keeps such a descriptor open until the last one closes.

class _OpenFiles:
    """Per state file (device, inode): this process's connections, and the descriptors of
    ours waiting for the last of them to close."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._users: dict[tuple[int, int], int] = {}
        self._parked: dict[tuple[int, int], list[int]] = {}

    def opened(self, path: Path) -> tuple[int, int] | None:
        """Count a new connection to ``path``; returns the key to pass to ``closed``."""
        try:
            st = path.stat()
        except OSError:  # ":memory:", or gone already
            return None
        key = (st.st_dev, st.st_ino)
        with self._guard:
            self._users[key] = self._users.get(key, 0) + 1
        return key

    def closed(self, key: tuple[int, int] | None) -> None:
        if key is None:
            return
        with self._guard:
            self._users[key] -= 1
            if self._users[key]:
                return
            del self._users[key]
            parked = self._parked.pop(key, [])
        for fd in parked:
            os.close(fd)

    def close(self, fd: int) -> None:
        """Close a descriptor of a state file now, or when this process has no connection
        to it any more."""
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        with self._guard:
            if self._users.get(key):
                self._parked.setdefault(key, []).append(fd)
                return
        os.close(fd)


_FILES = _OpenFiles()


def _acquire_lock(path: Path) -> int:
    """Lock the state file (creating it empty if need be) and return the descriptor that
    holds the lock, or raise StoreInUseError naming the holder."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(path, exc.strerror or str(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            _FILES.close(fd)
            raise StoreInUseError(path, holder) from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        _release(fd)  # moved aside between our open and our lock: lock the new file


def _release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    _FILES.close(fd)


def _holder(fd: int) -> str:
    """Who holds the flock on ``fd``'s file: "pid N" from /proc/locks (Linux), else "pid
    unknown"."""
    try:
        with open("/proc/locks") as locks:
            return _flock_holder(locks, os.fstat(fd))
    except OSError:
        return "pid unknown"


def _flock_holder(lines: Iterable[str], st: os.stat_result) -> str:
    """The pid of the flock on the file of ``st`` among /proc/locks ``lines``: the one on its
    device and inode; else the only one on its inode (the device number /proc/locks gives
    differs from st_dev on btrfs); else "pid unknown" (another file system's file with the
    same inode number holds a flock too)."""
    exact = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    same_inode = []
    for line in lines:
        fields = line.split()
        if fields[1:2] != ["FLOCK"] or not fields[5:6]:
            continue
        if fields[5] == exact:
            return f"pid {fields[4]}"
        if fields[5].rpartition(":")[2] == str(st.st_ino):
            same_inode.append(fields[4])
    return f"pid {same_inode[0]}" if len(same_inode) == 1 else "pid unknown"


# The flock above lives on the file: deleted, it locks nothing that the next process can
# see. So the writer also claims its paths with a name no deletion can remove: a Unix
# socket in Linux's abstract namespace, named after the path, bound until the holder closes
# the store or dies (kill -9 included). Elsewhere the flock alone guards the state.
_CLAIM_PREFIX = "feeder-claim:"


def _claim(path: Path, refusal: Callable[[str], Exception]) -> socket.socket | None:
    """Bind the claim on ``path`` (resolved), or raise ``refusal(holder)`` if a process
    holds it already; None where there are no abstract sockets."""
    if not sys.platform.startswith("linux"):
        return None
    name = _CLAIM_PREFIX + hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind("\0" + name)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise refusal(_claimant(name)) from None
        return None  # no abstract namespace here (a sandbox): the flock remains
    return sock


def _claimant(name: str) -> str:
    """"pid N" of the process that has the abstract socket ``name`` bound, from /proc
    (Linux; its own processes, or all for root), else "pid unknown"."""
    inodes = set()
    with contextlib.suppress(OSError), open("/proc/net/unix") as table:
        for line in table:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == "@" + name:
                inodes.add(f"socket:[{fields[6]}]")
    for pid in (p for p in os.listdir("/proc") if p.isdigit()) if inodes else ():
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return f"pid {pid}"
    return "pid unknown"


class _Checkpoints:
    """The checkpoints of ``Store.checkpoints_aside``: ``run`` (on a thread of its own)
    checkpoints its connection's file each time it is asked to (``after_commit``), until
    ``stop``; ``wait`` returns once the last one asked for is done (at once if the thread
    met an error and stopped: the commits checkpoint again after the block)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._cond = threading.Condition()
        self._asked = self._done = 0
        self._running, self._stopping = True, False

    def run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._done == self._asked and not self._stopping:
                        self._cond.wait()
                    if self._stopping:  # the commits checkpoint what is left
                        return
                    asked = self._asked
                self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                with self._cond:
                    self._done = asked
                    self._cond.notify_all()
        except sqlite3.Error as exc:
            log.debug("state file checkpoints: %s", exc)
        finally:
            self.db.close()
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def after_commit(self) -> None:
        with self._cond:
            self._asked += 1
            self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            while self._running and self._done != self._asked:
                self._cond.wait()

    def stop(self) -> None:
        """``run`` returns once the checkpoint under way, if any, is done."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()


class _Transaction:
    def __init__(self, db: sqlite3.Connection, aside: _Checkpoints | None = None) -> None:
        self.db, self.aside = db, aside

    def __enter__(self) -> sqlite3.Connection:
        if self.aside is not None:  # the WAL is written from its start again, not appended
            self.aside.wait()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type:
            # An I/O error or a full disk may have rolled it back already: a ROLLBACK then
            # would raise "no transaction is active" and hide the cause.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            return
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error:
            if self.db.in_transaction:  # a failed COMMIT may leave it open: not half-kept
                self.db.execute("ROLLBACK")
            raise
        if self.aside is not None:
            self.aside.after_commit()
