"""Atomic replacement of rendered files, with a precomputed gzip sibling.

A file is replaced by writing a temp file in the same folder and renaming it over the old
one, so a reader (or a crash) only ever sees the old or the new complete file. A file whose
bytes would not change is not touched at all, so its mtime and ETag stay put.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
from pathlib import Path

from .errors import OutputError

GZIP_MIN_BYTES = 512
GZIP_LEVEL = 4  # 2% larger than level 6 on a 50-entry feed, in half the time


def _replace(path: Path, data: bytes, durable: bool) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _same(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except FileNotFoundError:
        return False


def write(path: Path, data: bytes, *, compress: bool = True, durable: bool = False,
          check: bool = True) -> bool:
    """Replace ``path`` with ``data`` unless it already holds exactly that; True if written.

    With ``compress``, ``path.gz`` is written first, so the sibling is never older than the
    file it belongs to (the server checks the pair anyway). ``check=False`` skips reading the
    old file, for callers that know it changed or does not exist.
    """
    if check and _same(path, data):
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        gz = path.with_name(path.name + ".gz")
        if compress and len(data) >= GZIP_MIN_BYTES:
            _replace(gz, gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0), durable)
        elif gz.exists():
            gz.unlink()
        _replace(path, data, durable)
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    return True


def remove(path: Path) -> bool:
    """Delete ``path`` and its gzip sibling; True if anything was there."""
    removed = False
    for p in (path, path.with_name(path.name + ".gz")):
        try:
            p.unlink()
            removed = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(p, exc.strerror or str(exc)) from exc
    return removed


def sweep_temp_files(folder: Path) -> int:
    """Remove temp files left by a crash mid-write; returns how many."""
    count = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    count += 1
                except OSError:
                    pass
    return count
