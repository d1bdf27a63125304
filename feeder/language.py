"""py3langid's model, mapped from an unpacked copy on disk rather than held in memory.

py3langid ships its model LZMA-compressed; decompressed into Python lists and arrays it
takes ~70 MB of a process's private memory and a second to load. Unpacked once into plain
``.npy`` files (in ``$XDG_CACHE_HOME/feeder``, else ``~/.cache/feeder``, else the temp
folder) it is mapped instead: a process then holds only the pages its texts touch, shared
with every other process that maps them, and the kernel may drop them. ``release`` lets go
of the mapping, so an idle ``feeder run`` holds none of it; mapping it again takes a few ms.

Where no cache folder is writable, the model is loaded into memory as py3langid does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import lzma
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("feeder")

_loaded = False  # py3langid's own loading was used: the model is in memory, not mapped
_FILES = ("ptc.npy", "pc.npy", "nextmove.npy", "rowbase.npy", "output.npy", "classes.json")


@functools.lru_cache(maxsize=8)
def identifier(languages: tuple[str, ...]) -> Any:  # noqa: ANN401 - py3langid is untyped
    """The language identifier limited to ``languages`` (all when empty)."""
    if languages:  # the full model is shared, not loaded again; only the subset is new
        import copy

        ident = copy.copy(identifier(()))
        ident.set_languages(list(languages))  # rebinds the copy's attributes only
        return ident
    try:
        return _mapped(_unpacked())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("language model not mapped (%s): loading it into memory", exc)
    global _loaded
    _loaded = True  # kept: loading it again would cost every pass after an idle spell a second
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE)


def release() -> None:
    """Forget the identifiers: their mapped pages go once no text is being classified. A
    model loaded into memory (no cache folder) is kept."""
    if not _loaded:
        identifier.cache_clear()


def _model_file() -> Path:
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    return Path(MODEL_DIR) / MODEL_FILE


def _cache_roots() -> list[Path]:
    roots = []
    if os.environ.get("XDG_CACHE_HOME"):
        roots.append(Path(os.environ["XDG_CACHE_HOME"]))
    with contextlib.suppress(RuntimeError):  # no home folder
        roots.append(Path.home() / ".cache")
    roots.append(Path(tempfile.gettempdir()) / f"feeder-{os.getuid()}")
    return roots


def _unpacked() -> Path:
    """The folder of the unpacked model, made on first use (atomically: several processes
    may race to make it)."""
    model = _model_file()
    st = model.stat()
    key = hashlib.sha1(f"{model}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    problem: OSError | None = None
    for root in _cache_roots():
        folder = root / "feeder" / f"langid-{key}"
        if all((folder / f).exists() for f in _FILES):
            return folder
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".langid-", dir=folder.parent))
        except OSError as exc:
            problem = exc
            continue
        try:
            _unpack(model, work)
            try:
                work.rename(folder)
            except OSError:  # another process made it first
                if not all((folder / f).exists() for f in _FILES):
                    raise
            return folder
        except OSError as exc:
            problem = exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
    raise problem or OSError("no cache folder for the language model")


def _unpack(model: Path, folder: Path) -> None:
    """py3langid's ``model.npz.xz`` -> one ``.npy`` file per array, in ``folder``."""
    import numpy as np

    with tempfile.TemporaryFile(suffix=".npz") as tmp:
        with lzma.open(model) as src:
            shutil.copyfileobj(src, tmp, length=1 << 20)
        tmp.seek(0)
        with np.load(tmp, allow_pickle=False) as data:
            np.save(folder / "ptc.npy", data["ptc"])
            np.save(folder / "pc.npy", data["pc"])
            nextmove = data["nextmove"]
            np.save(folder / "nextmove.npy", nextmove.astype(f"={nextmove.dtype.char}"))
            # the DFA's row offsets, as py3langid computes them at every load
            np.save(folder / "rowbase.npy", data["nextmove_row"].astype("=u4") << 8)
            np.save(folder / "output.npy", data["out_feat"].astype("=i4"))
            (folder / "classes.json").write_text(json.dumps(data["classes"].tolist()))


def _mapped(folder: Path) -> Any:  # noqa: ANN401
    """An identifier over the mapped arrays. The DFA tables are read one item at a time
    from Python, through memoryviews (as fast as py3langid's own lists and arrays)."""
    import numpy as np
    from py3langid.langid import LanguageIdentifier

    def load(name: str) -> Any:  # noqa: ANN401
        return np.load(folder / name, mmap_mode="r", allow_pickle=False)

    classes = json.loads((folder / "classes.json").read_text())
    # ptc as a plain ndarray over the same mapping: np.memmap wraps each row lookup's result
    # in a new memmap (~10 % of a classification under cProfile)
    ident = LanguageIdentifier(np.asarray(load("ptc.npy")), np.array(load("pc.npy")), classes,
                               memoryview(load("nextmove.npy")),
                               memoryview(load("output.npy")), tk_row=[])
    ident._rowbase = memoryview(load("rowbase.npy"))  # what tk_row is for
    ident.tk_row = None
    return ident
