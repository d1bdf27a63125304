"""The state file: numbered migrations from every older layout, moved aside only when
corrupt, refused (and left untouched) for any other trouble, and a lock that cannot be
deleted away.

Real files, real file systems: a read-only bind mount, ``chattr +i`` and a loop device whose
backing file is cut short (tests run as root, which ignores file modes). Each test that needs
one of them is skipped where the machine does not allow it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from feeder.errors import OutputError, StoreCorruptError, StoreError, StoreInUseError
from feeder.normalizer import Entry
from feeder.store import _MIGRATIONS, SCHEMA_VERSION, PingStore, Store

from ._daemon import REPO, feeder_env

FIXTURES = sorted((REPO / "tests" / "data" / "state").glob("*.sql"))
FIRST = REPO / "tests" / "data" / "state" / "v1-first.sql"  # the oldest layout


def load_fixture(dump: Path, path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(dump.read_text())
    db.close()
    return path


def fresh(path: Path) -> Path:
    """A state file of today's schema with one entry, closed."""
    with Store(path) as store, store.transaction():
        now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
        store.put_entry("a.txt", 10, 1, "h", Entry(
            id="tag:example.org,2025:a", stem="a", slug="a", title="A", summary="A.",
            content_html="<p>A.</p>", published=now, updated=now, language="en"), now)
    return path


def rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    db = sqlite3.connect(path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    found = {t: sorted(db.execute(f"SELECT * FROM {t}"), key=repr) for t in tables}
    db.close()
    return found


def schema(path: Path) -> dict[str, object]:
    """The schema as SQLite uses it: columns, indexes and triggers (not the CREATE text,
    which ALTER TABLE edits)."""
    db = sqlite3.connect(path)
    found: dict[str, object] = {"version": db.execute("PRAGMA user_version").fetchone()[0]}
    for kind, name, sql in db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name"):
        if kind == "table":
            found[name] = [r[1:] for r in db.execute(f"PRAGMA table_info({name})")]
        elif kind == "index":
            found[name] = [r[1:] for r in db.execute(f"PRAGMA index_xinfo({name})")]
        else:
            found[name] = " ".join(sql.split())
    db.close()
    return found


def untouched(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def feeder_build(tmp_path: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """``python -m feeder build`` on an empty seeds folder and ``state``, named in a config
    file (as operators do; ``--state`` would have click refuse a directory itself)."""
    (tmp_path / "seeds").mkdir(exist_ok=True)
    config = tmp_path / "feeder.toml"
    config.write_text(f"[paths]\nstate = {json.dumps(str(state))}\n")
    return subprocess.run(
        [sys.executable, "-m", "feeder", "build", "--config", str(config),
         "--seeds", str(tmp_path / "seeds"), "--out", str(tmp_path / "out")],
        env=feeder_env(), capture_output=True, text=True, timeout=60, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *parts: str) -> str:
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("Error: state file "), line
    for part in parts:
        assert part in line
    return line


def run_root(*cmd: str) -> None:
    """Run a command this test needs (mount, chattr, ...); skip the test if it is refused."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"{' '.join(cmd)} is not allowed here: {proc.stderr.strip()}")


# -- migrations --------------------------------------------------------------------------------

def test_migrations_are_numbered_one_by_one_from_one() -> None:
    assert [v for v, _ in _MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("dump", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_a_state_file_of_every_older_version_opens_with_its_data(
        tmp_path: Path, dump: Path) -> None:
    path = load_fixture(dump, tmp_path / "old.sqlite3")
    old_version, before = schema(path)["version"], rows(path)
    assert old_version < SCHEMA_VERSION

    with Store.open_locked(path) as store:
        assert store.total() == 6
        assert [e.title for e in store.newest(10, dt.datetime.now(dt.UTC))][0] == "Article number 6"
        assert store.rejected() == [("007_empty.txt", "empty file")]
        assert store.get_meta("fixture") == "made by tests/data/state/make.py"
    with PingStore(path) as pings:
        assert [(p.hub, p.topic) for p in pings.pending_pings()] == [
            ("https://hub.example/", "https://example.org/atom.xml")]
        assert pings.hub_results()["https://hub.example/"]["detail"] == "HTTP 503"

    after = rows(path)
    for table, old_rows in before.items():  # every row kept, every old column as it was
        width = len(old_rows[0]) if old_rows else 0
        assert sorted((r[:width] for r in after[table]), key=repr) == old_rows, table
    assert schema(path) == schema(fresh(tmp_path / "new.sqlite3"))


def test_a_migration_that_fails_is_rolled_back_and_refused(tmp_path: Path) -> None:
    """Each migration is one transaction: one that fails leaves the file as it was, and the
    file is refused, not moved aside (it is a good file this feeder cannot upgrade)."""
    path = load_fixture(FIRST, tmp_path / "old.sqlite3")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE counts (name TEXT PRIMARY KEY)")  # migration 2 needs counts.n
    db.commit()
    db.close()
    before = untouched(path)
    with pytest.raises(StoreError, match="no column named n") as caught:
        Store.open_locked(path)
    assert type(caught.value) is StoreError
    assert str(path) in str(caught.value)
    assert untouched(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.sqlite3"]


V5 = REPO / "tests" / "data" / "state" / "v5-languages.sql"  # before the places table


def test_version_6_moves_the_archive_pages_out_of_the_entries_rows(tmp_path: Path) -> None:
    """A version-5 file's archive pages (entries.archive_page) move to the places table: the
    same entries on the same pages, none marked dirty by the move, and an edit or a
    removal of an archived entry still marks its page."""
    path = load_fixture(V5, tmp_path / "old.sqlite3")
    db = sqlite3.connect(path)
    pages = dict(db.execute("SELECT id, archive_page FROM entries"))
    by_page = {n: [t for (t,) in db.execute(
        "SELECT title FROM entries WHERE archive_page = ? ORDER BY pub_ts, name", (n,))]
        for n in (1, 2)}
    db.close()
    assert sorted(pages.values(), key=repr) == [1, 1, 2, 2, None, None]

    with Store.open_locked(path) as store:
        assert dict(store.db.execute("SELECT id, page FROM places")) == pages
        assert {n: [e.title for e in store.page_entries(n)] for n in (1, 2)} == by_page
        assert store.last_page() == (2, 2)
        assert store.dirty_pages() == []
        assert "entries_page" not in {r[0] for r in store.db.execute(
            "SELECT name FROM sqlite_master")}
        now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
        first = store.page_entries(1)[0]
        with store.transaction():
            store.put_entry("001_fixture.txt", 1, 1, "h", dataclasses.replace(
                first, title="Edited"), now)
        assert store.dirty_pages() == [1]
        with store.transaction():
            store.clear_pages([1])
            store.forget(next(n for n, e in _named(store) if e.id == store.page_entries(2)[0].id))
        assert store.dirty_pages() == [2]
        assert len(store.page_entries(2)) == 1
        assert store.db.execute("SELECT count(*) FROM places").fetchone()[0] == 5


def _named(store: Store) -> list[tuple[str, Entry]]:
    return list(store.iter_named_entries())


def test_a_version_5_bulk_load_cut_short_is_finished_without_the_old_page_index(
        tmp_path: Path) -> None:
    """A version-5 file left by a bulk load that a crash interrupted (its deferred objects
    dropped, their SQL in the meta table) is upgraded, then finished: the objects are made
    again, all but the index on entries.archive_page, which version 6 does not have."""
    path = load_fixture(V5, tmp_path / "old.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    deferred = ("entries_order", "entries_page", "entries_language", "entries_page_new")
    found = db.execute("SELECT type, name, sql FROM sqlite_master WHERE name IN (?, ?, ?, ?)"
                       " ORDER BY rowid", deferred).fetchall()
    assert len(found) == 4
    db.execute("INSERT INTO meta VALUES ('bulk_load', ?)", (json.dumps([r[2] for r in found]),))
    for kind, name, _sql in found:
        db.execute(f"DROP {kind} {name}")
    db.close()

    with Store.open_locked(path) as store:
        assert store.get_meta("bulk_load") is None
        assert store.total() == 6
    assert schema(path) == schema(fresh(tmp_path / "new.sqlite3"))


@pytest.mark.parametrize("bulk", [False, True])
def test_placing_many_entries_at_once_marks_their_pages_and_keeps_the_schema(
        tmp_path: Path, monkeypatch, bulk: bool) -> None:  # noqa: ANN001
    """Store.place_unpaged, one by one or in bulk (without the page index and the trigger,
    made again in the same transaction): the same places, the same pages marked, the same
    schema, and the trigger marks an edited entry's page after."""
    from feeder import store as stores

    monkeypatch.setattr(stores, "_PLACE_IN_BULK", 1 if bulk else 10**9)
    path = tmp_path / "state.sqlite3"
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    with Store(path) as store:
        with store.transaction():
            for n in range(5):
                store.put_entry(f"{n}.txt", 10, 1, "h", Entry(
                    id=f"tag:example.org,2025:{n}", stem=str(n), slug=str(n), title=str(n),
                    summary=".", content_html="<p>.</p>", published=now, updated=now,
                    language="en"), now)
        if bulk:  # its drops and makes must be one transaction
            with pytest.raises(StoreError, match="outside a transaction"):
                store.place_unpaged([(9, "tag:example.org,2025:0")])
        with store.transaction():
            store.place_unpaged([(1, "tag:example.org,2025:3"), (1, "tag:example.org,2025:1"),
                                 (2, "tag:example.org,2025:2")])
        assert store.dirty_pages() == [1, 2]
        assert dict(store.db.execute("SELECT id, page FROM places WHERE page IS NOT NULL")) == {
            "tag:example.org,2025:1": 1, "tag:example.org,2025:3": 1,
            "tag:example.org,2025:2": 2}
        with store.transaction():
            store.clear_pages([1, 2])
            store.put_entry("2.txt", 10, 1, "h2", dataclasses.replace(
                store.entry_by_name("2.txt"), title="Edited"), now)
        assert store.dirty_pages() == [2]
    assert schema(path) == schema(fresh(tmp_path / "new.sqlite3"))


# -- corrupt: moved aside ----------------------------------------------------------------------

def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path, caplog) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    with caplog.at_level(logging.WARNING, "feeder"), Store.open_locked(path) as store:
        assert store.total() == 0
    (aside,) = tmp_path.glob("state.sqlite3.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not an SQLite")
    assert f"state file {path} is corrupt (file is not a database): moved it aside" in caplog.text


def test_damage_inside_the_file_is_found_by_the_check_and_moved_aside(
        tmp_path: Path, caplog) -> None:
    """A damaged page that opening the file does not read (here the pings table's) is found
    by quick_check before the store is used."""
    path = fresh(tmp_path / "state.sqlite3")
    db = sqlite3.connect(path)
    page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'pings'").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xff" * 16)  # no valid b-tree page type
    with Store(path) as store:
        assert store.total() == 1  # without the check, nothing notices
    with pytest.raises(StoreCorruptError, match=str(path)):
        Store(path, check=True)
    with caplog.at_level(logging.WARNING, "feeder"), Store.open_locked(path) as store:
        assert store.total() == 0
    assert len(list(tmp_path.glob("state.sqlite3.corrupt-*"))) == 1
    assert f"state file {path} is corrupt (" in caplog.text


def read_bytes_of_this_process() -> int:
    """Bytes this process has read with read(2) and pread(2) (page cache hits included)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


def test_opening_a_sound_file_reads_a_few_pages_not_all_of_it(tmp_path: Path) -> None:
    """The full check reads the whole file (9-12 s cold for 100,000 entries); a start reads
    the first page of each table, and checks the whole file only if that meets damage."""
    path = fresh(tmp_path / "state.sqlite3")
    with Store(path) as store, store.transaction():
        store.record_outputs(((f"entries/{i}.html", f"{i:064x}") for i in range(40_000)),
                             dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    size = path.stat().st_size
    assert size > 4_000_000
    before = read_bytes_of_this_process()
    Store.open_locked(path).close()
    assert read_bytes_of_this_process() - before < size / 20


# -- anything else: refused, untouched ---------------------------------------------------------

def test_a_state_file_of_a_newer_feeder_is_refused_and_kept(tmp_path: Path) -> None:
    path = fresh(tmp_path / "state.sqlite3")
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = untouched(path)
    proc = feeder_build(tmp_path, path)
    assert_one_line_error(proc, str(path), "schema version 99", "newer feeder")
    assert untouched(path) == before
    assert not list(tmp_path.glob("state.sqlite3[.-]*"))


def test_an_sqlite_file_that_is_not_feeders_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    before = untouched(path)
    with pytest.raises(StoreError, match="not a feeder state file"):
        Store.open_locked(path)
    assert untouched(path) == before


def test_a_directory_at_the_state_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.mkdir()
    (path / "keep").write_text("x")
    assert_one_line_error(feeder_build(tmp_path, path), str(path), "Is a directory")
    assert (path / "keep").read_text() == "x"
    assert not list(tmp_path.glob("state.sqlite3?*"))


def test_an_unwritable_state_file_is_refused_and_kept(tmp_path: Path) -> None:
    """chattr +i: even root gets "Operation not permitted" writing it."""
    path = fresh(tmp_path / "state.sqlite3")
    before = untouched(path)
    run_root("chattr", "+i", str(path))
    try:
        proc = feeder_build(tmp_path, path)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert_one_line_error(proc, str(path), "Operation not permitted")
    assert untouched(path) == before
    assert not list(tmp_path.glob("state.sqlite3.corrupt-*"))


@contextmanager
def bind_mount(source: Path, target: Path, *options: str) -> Iterator[Path]:
    target.mkdir()
    run_root("mount", "--bind", *options, str(source), str(target))
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_state_file_on_a_read_only_file_system_is_refused_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "rw"
    folder.mkdir()
    fresh(folder / "state.sqlite3")
    before = untouched(folder / "state.sqlite3")
    with bind_mount(folder, tmp_path / "ro", "-o", "ro") as ro:
        state = ro / "state.sqlite3"
        assert_one_line_error(feeder_build(tmp_path, state), str(state), "Read-only file system")
        assert_one_line_error(feeder_build(tmp_path, ro / "new.sqlite3"),
                              str(ro / "new.sqlite3"), "Read-only file system")
    assert untouched(folder / "state.sqlite3") == before
    assert sorted(p.name for p in folder.iterdir()) == ["state.sqlite3"]


@contextmanager
def failing_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A small ext4 on a loop device holding a good state file, then its disk is cut away:
    what is cached still reads, anything read from the disk fails with EIO. Yields the state
    file and a copy of the disk image as it was."""
    if not shutil.which("losetup") or not shutil.which("mkfs.ext4"):
        pytest.skip("needs losetup and mkfs.ext4")
    image, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    run_root("mkfs.ext4", "-q", "-F", str(image))
    proc = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"no loop device: {proc.stderr.strip()}")
    device = proc.stdout.strip()
    try:
        mnt.mkdir()
        run_root("mount", device, str(mnt))
        try:
            state = fresh(mnt / "state.sqlite3")
            os.sync()
            fd = os.open(state, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the next read goes to disk
            os.close(fd)
            shutil.copyfile(image, tmp_path / "before.img")
            os.truncate(image, 0)
            subprocess.run(["losetup", "-c", device], check=True)
            yield state, tmp_path / "before.img"
        finally:
            subprocess.run(["umount", str(mnt)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)


def test_a_state_file_with_io_errors_is_refused_and_not_moved(tmp_path: Path) -> None:
    with failing_disk(tmp_path) as (state, _):
        assert_one_line_error(feeder_build(tmp_path, state), str(state), "I/O error")
        assert sorted(p.name for p in state.parent.iterdir()) == ["lost+found", "state.sqlite3"]


# -- the lock ----------------------------------------------------------------------------------

def test_the_lock_holds_without_the_lock_file(tmp_path: Path) -> None:
    """Two open_locked in one process (separate descriptors) conflict, also after the
    <state>.lock file of feeder 0.1 is deleted; the refusal names the holder."""
    path = tmp_path / "state.sqlite3"
    with Store.open_locked(path):
        with pytest.raises(StoreInUseError, match=f"pid {os.getpid()}"):
            Store.open_locked(path)
        Path(f"{path}.lock").unlink(missing_ok=True)
        with pytest.raises(StoreInUseError) as caught:
            Store.open_locked(path)
        assert str(caught.value) == (
            f"state file {path}: in use by another feeder process (pid {os.getpid()});"
            " stop it first or use another --state file")
    Store.open_locked(path).close()  # released with the store


def test_the_refusal_names_the_flock_on_this_file_not_one_on_the_same_inode(
        tmp_path: Path) -> None:
    """/proc/locks lists flocks by device and inode: a file of another file system with the
    same inode number (a tmpfs, a bind mount) must not lend its holder's pid to the refusal.
    The device as /proc/locks writes it may differ from st_dev (btrfs): then an inode held
    once is enough, and an inode held twice names no one."""
    from feeder.store import _flock_holder

    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"")
    st = os.stat(path)
    here = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    elsewhere = f"00:99:{st.st_ino}"
    line = "{n}: FLOCK  ADVISORY  WRITE {pid} {dev} 0 EOF\n".format
    both = [line(n=1, pid=111, dev=elsewhere), line(n=2, pid=222, dev=here)]
    assert _flock_holder(both, st) == "pid 222"
    assert _flock_holder([line(n=1, pid=111, dev=elsewhere)], st) == "pid 111"
    assert _flock_holder([line(n=1, pid=111, dev=elsewhere),
                          line(n=2, pid=333, dev=f"00:98:{st.st_ino}")], st) == "pid unknown"
    posix = f"1: POSIX  ADVISORY  WRITE 444 {here} 0 EOF\n"
    assert _flock_holder([posix], st) == "pid unknown"  # SQLite's own locks are not ours


def test_deleting_the_state_file_lifts_no_lock(tmp_path: Path) -> None:
    """The path stays claimed while the holder lives, whatever is deleted: a second writer
    on the state path, or on the output folder, is refused and told the holder's pid."""
    path, out = tmp_path / "state.sqlite3", tmp_path / "public"
    with Store.open_locked(path, output=out):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(StoreInUseError, match=f"pid {os.getpid()}"):
            Store.open_locked(path)
        with pytest.raises(OutputError) as caught:
            Store.open_locked(tmp_path / "other.sqlite3", output=out)
        assert str(caught.value) == (
            f"cannot write output folder {out}: in use by another feeder process"
            f" (pid {os.getpid()}); stop it first or use another output folder")
        assert not (tmp_path / "other.sqlite3").exists()
    Store.open_locked(path, output=out).close()  # released with the store


def test_restore_file_writes_a_deleted_state_file_again(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    writer, reader = Store.open_locked(path), Store(path)
    with writer.transaction():
        writer.set_meta("before", 1)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with writer.transaction():
        writer.set_meta("after", 2)  # into the deleted file
    writer.restore_file([reader])
    assert (reader.get_meta("before"), reader.get_meta("after")) == (1, 2)
    with writer.transaction():
        writer.set_meta("restored", 3)
    assert reader.get_meta("restored") == 3  # one file again
    with pytest.raises(StoreInUseError, match=f"pid {os.getpid()}"):
        Store.open_locked(path)  # the flock moved to the new file
    reader.close()
    writer.close()
    with Store.open_locked(path) as again:
        assert [again.get_meta(k) for k in ("before", "after", "restored")] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite3"]


def sqlite_posix_locks(path: Path) -> list[str]:
    """This process's POSIX (fcntl) locks on ``path``, as /proc/locks lists them (without
    each line's ordinal, which other processes' locks shift), by device and inode. The file
    is read in one read(2): the kernel lists the locks anew at each read, so one read line
    by line, while the other test workers take and drop their own SQLite locks, can list a
    lock twice or miss one (a full run failed twice so)."""
    st, pid = path.stat(), str(os.getpid())
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    fd = os.open("/proc/locks", os.O_RDONLY)
    try:
        text = os.read(fd, 1 << 24).decode()
    finally:
        os.close(fd)
    return sorted({" ".join(line.split()[1:]) for line in text.splitlines()
                   if line.split()[1:2] == ["POSIX"] and line.split()[4] == pid
                   and line.split()[5] == where})


def test_our_lock_never_drops_sqlites_own_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops all of the process's POSIX locks on it, the
    ones SQLite holds for its connections included: the lock's descriptors are closed only
    when no connection of this process uses the file."""
    path = tmp_path / "state.sqlite3"
    locked = Store.open_locked(path)
    reader = Store(path)
    reader.total()
    held = sqlite_posix_locks(path)
    assert held  # a connection in WAL mode holds a shared lock on the database file
    with pytest.raises(StoreInUseError):
        Store.open_locked(path)  # opens, and gives up, a descriptor of its own
    assert sqlite_posix_locks(path) == held
    locked.close()
    assert sqlite_posix_locks(path) == held
    reader.close()
    assert sqlite_posix_locks(path) == []
    Store.open_locked(path).close()


def test_closing_a_store_twice_leaves_the_other_connections_locks(tmp_path: Path) -> None:
    """A second ``close`` does nothing: it used to count the connection off its file again
    (a KeyError with no other connection; with one, its locks were dropped when the
    writer's lock file was closed)."""
    path = tmp_path / "state.sqlite3"
    reader, other = Store(path), Store(path)
    other.total()
    held = sqlite_posix_locks(path)
    reader.close()
    reader.close()
    locked = Store.open_locked(path)
    locked.close()
    assert held and sqlite_posix_locks(path) == held
    other.close()
    assert sqlite_posix_locks(path) == []


def test_reads_in_a_snapshot_agree_while_the_writer_commits(tmp_path: Path) -> None:
    """/healthz reads the rejected list and their count on the daemon's read connection
    while the writer commits: in one snapshot both come from one commit (a CI run once saw
    a count of 200 beside an empty list); outside it each read sees the latest commit."""
    path = tmp_path / "state.sqlite3"
    writer = Store.open_locked(path)
    reader = Store(path)
    now = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    try:
        with reader.snapshot():
            assert reader.rejected() == []
            with writer.transaction():
                writer.reject("bad.txt", 3, 1, "h", "no header", now)
            assert reader.rejected_count() == 0  # the state the first read saw
        assert reader.rejected_count() == 1
        assert reader.rejected() == [("bad.txt", "no header")]
        with writer.transaction(), reader.snapshot():  # nested in nothing of its own
            assert reader.rejected_count() == 1
    finally:
        reader.close()
        writer.close()


# -- checkpoints on a thread of their own (a first build's read) -------------------------------

def wal_pages(path: Path) -> int:
    """The pages the WAL file has room for: it never shrinks, so the most it ever held."""
    wal = Path(f"{path}-wal")
    return wal.stat().st_size // 4096 if wal.exists() else 0


def test_checkpoints_aside_keep_the_wal_from_growing_and_give_back_the_commits_own(
        tmp_path: Path) -> None:
    """In ``checkpoints_aside`` the commits leave the checkpoints to a thread, and each
    transaction begins once the last one is done: the WAL is written again from its start,
    so it holds about one commit, not every commit made while a checkpoint ran. After the
    block, the commits checkpoint themselves again, and every row is there."""
    path = tmp_path / "state.sqlite3"
    blob = "x" * 400_000  # ~100 pages a commit
    with Store.open_locked(path) as store:
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        with store.checkpoints_aside():
            assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            for n in range(30):
                with store.transaction():
                    store.set_meta(f"blob{n}", blob)
        assert wal_pages(path) < 3 * 110  # 30 commits of ~100 pages went through it
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    with Store(path) as store:
        assert all(store.get_meta(f"blob{n}") == blob for n in range(30))


def test_checkpoints_aside_leave_a_state_file_replaced_at_the_path_alone(
        tmp_path: Path) -> None:
    """The thread's connection is to the writer's own file: when another file is at the
    path (the writer's was deleted and a new one put there), there is no thread and the
    commits checkpoint themselves, into the writer's file."""
    path = tmp_path / "state.sqlite3"
    with Store.open_locked(path) as store:
        path.unlink()
        other = sqlite3.connect(path)
        other.execute("CREATE TABLE t (x)")
        other.close()
        assert store._checkpointer() is None
        with store.checkpoints_aside():
            assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
            with store.transaction():
                store.set_meta("kept", 1)
        assert store.get_meta("kept") == 1
    assert [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")] == ["t"]


def test_a_bulk_load_counts_its_entries_and_marks_their_languages_as_the_triggers_would(
        tmp_path: Path) -> None:
    """A bulk load goes without the triggers that count the entries and mark their
    languages; the end of the load does both: a language known from entries gone before
    (its feeds written, not dirty) is dirty again, a new one is listed, the others not."""
    path = tmp_path / "state.sqlite3"
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)

    def entry(stem: str, language: str) -> Entry:
        return Entry(id=f"tag:example.org,2025:{stem}", stem=stem, slug=stem, title=stem,
                     summary=".", content_html="<p>.</p>", published=now, updated=now,
                     language=language)

    with Store(path) as store:
        with store.transaction():
            store.db.executemany("INSERT INTO languages (code, dirty) VALUES (?, 0)",
                                 [("en",), ("fr",)])
        with store.bulk_load():
            with store.transaction():
                for stem, language in (("a", "en"), ("b", "de"), ("c", "en")):
                    store.put_entry(f"{stem}.txt", 1, 1, stem, entry(stem, language), now)
            assert store.db.execute(  # the languages' trigger is not there yet (the count's is)
                "SELECT count(*) FROM sqlite_master WHERE name IN"
                " ('entries_added', 'entries_language_new')").fetchone()[0] == 1
        assert store.total() == 3
        assert sorted(store.db.execute("SELECT code, dirty FROM languages")) == [
            ("de", 1), ("en", 1), ("fr", 0)]


def test_record_outputs_keeps_the_last_hash_given_for_a_path(tmp_path: Path) -> None:
    """The hashes are recorded by path (for the index's sake), the last one given for a
    path winning, as in the order they came: it is the one on disk."""
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    with Store(tmp_path / "state.sqlite3") as store, store.transaction():
        store.record_outputs([("b.html", "2"), ("a.html", "9"), ("b.html", "1")], now)
        assert store.output_hashes() == {"a.html": "9", "b.html": "1"}


def test_an_entry_read_again_unchanged_is_the_same_object_and_an_edited_one_is_new(
        tmp_path: Path) -> None:
    """The newest entries and an archive page's come back as the very Entry objects of the
    last read while their rows are equal (the renderers' caches find them by identity), and
    as new ones with the new fields once a row changes."""
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)

    def entry(name: str, content: str, day: int = 1) -> Entry:
        moment = dt.datetime(2025, 1, day, tzinfo=dt.UTC)
        return Entry(id=f"tag:example.org,2025:{name}", stem=name, slug=name, title=name.upper(),
                     summary=f"{name}.", content_html=content, published=moment,
                     updated=moment, language="en")

    with Store(tmp_path / "state.sqlite3") as store:
        with store.transaction():
            store.put_entry("a.txt", 10, 1, "h1", entry("a", "<p>A.</p>", 1), now)
            store.put_entry("b.txt", 10, 1, "h2", entry("b", "<p>B.</p>", 2), now)
            store.place_unpaged([(1, "tag:example.org,2025:a")])
        first, paged = store.newest(5, now), store.page_entries(1, kept=True)
        again = store.newest(5, now)
        assert [e.stem for e in first] == ["b", "a"] and again == first
        assert all(x is y for x, y in zip(again, first, strict=True))
        assert store.page_entries(1, kept=True)[0] is paged[0] is first[1]
        assert store.page_entries(1)[0] is not paged[0]  # a big pass's: not kept
        with store.transaction():
            store.put_entry("a.txt", 11, 2, "h3", entry("a", "<p>A, edited.</p>", 1), now)
        edited = store.newest(5, now)
        assert edited[0] is first[0]
        assert edited[1] is not first[1]
        assert edited[1].content_html == "<p>A, edited.</p>"
        assert store.page_entries(1, kept=True)[0].content_html == "<p>A, edited.</p>"
