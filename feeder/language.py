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
import copy
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
# The unpacked files' layout, in the cache folder's name: a cache of another layout is not read.
# 4: dfa.json. (2 and 3 held the feature table widened to float32, a quarter of a
# classification's time, but the kernel maps 64 KB around each page read: +29 MB of PSS.)
_LAYOUT = 4
_FILES = ("ptc.npy", "pc.npy", "nextmove.npy", "rowbase.npy", "output.npy", "classes.json",
          "dfa.json")


@functools.lru_cache(maxsize=8)
def identifier(languages: tuple[str, ...]) -> Any:  # noqa: ANN401 - py3langid is untyped
    """The language identifier limited to ``languages`` (all when empty)."""
    if languages:  # the full model is shared, not loaded again; only the subset is new
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
    stamp = f"{model}:{st.st_size}:{st.st_mtime_ns}:{_LAYOUT}"
    key = hashlib.sha1(stamp.encode()).hexdigest()[:16]
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
            depth = _depth(np.asarray(nextmove, "=u4"), data["nextmove_row"].astype("=u4") << 8)
            (folder / "dfa.json").write_text(json.dumps({"depth": depth}))


def _depth(nextmove: Any, rowbase: Any) -> int:  # noqa: ANN401 - numpy arrays
    """How many bytes bring py3langid's automaton (Aho-Corasick, over its byte n-grams) to
    the same state from any state: its depth (the longest n-gram, 6). A spot check reads ~80
    strings from every state; if one leads elsewhere than from the start, 0 (then each text
    is walked on its own). tests/test_language.py and bench/language_agreement.py compare
    the features and answers with py3langid's own walk."""
    import numpy as np

    seen = np.zeros(len(rowbase), bool)
    seen[0] = True
    frontier, depth, byte = np.zeros(1, np.int64), 0, np.arange(256, dtype=np.uint32)
    while len(frontier):  # breadth first from the start state
        reached = np.unique(nextmove[(rowbase[frontier][:, None] + byte).ravel()])
        frontier = reached[~seen[reached]]
        seen[frontier] = True
        depth += len(frontier) > 0
    samples = np.random.default_rng(0).integers(0, 256, (48, depth), dtype=np.uint32)
    text = np.frombuffer("the café – Straße, где 市议会 ".encode(), np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(text, depth).astype(np.uint32)
    everywhere = np.arange(len(rowbase), dtype=np.uint32)
    for string in np.concatenate([samples, windows]):
        state, start = everywhere, np.zeros(1, np.uint32)
        for b in string:
            state, start = nextmove[rowbase[state] + b], nextmove[rowbase[start] + b]
        if (state != start[0]).any():
            return 0
    return depth


def _mapped(folder: Path) -> Any:  # noqa: ANN401
    """An identifier over the mapped arrays. The DFA tables are read one item at a time
    from Python, through memoryviews (as fast as py3langid's own lists and arrays)."""
    import numpy as np

    def load(name: str) -> Any:  # noqa: ANN401
        return np.load(folder / name, mmap_mode="r", allow_pickle=False)

    classes = json.loads((folder / "classes.json").read_text())
    # ptc as a plain ndarray over the same mapping: np.memmap wraps each row lookup's result
    # in a new memmap (~10 % of a classification under cProfile)
    ident = _identifier_class()(np.asarray(load("ptc.npy")), np.array(load("pc.npy")), classes,
                                memoryview(load("nextmove.npy")),
                                memoryview(load("output.npy")), tk_row=[])
    ident._rowbase = memoryview(load("rowbase.npy"))  # what tk_row is for
    ident.tk_row = None
    ident.depth = json.loads((folder / "dfa.json").read_text())["depth"]
    ident.visits = {}
    return ident


def classify_many(ident: Any, texts: list[str]) -> list[str]:  # noqa: ANN401
    """``ident.classify(text)[0]`` for each text: the same answers, to the bit. A mapped
    model's automaton is walked over all the texts at once by numpy (``_visits``): Python
    steps through it a byte at a time, each step waiting for the memory read of the one
    before, and that walk was half of a seed's language detection."""
    depth = getattr(ident, "depth", 0)
    if depth and len(texts) > 1:
        ident = copy.copy(ident)  # the shared identifier stays as it is, for other threads
        ident.visits = _visits(ident, texts, depth)
    return [ident.classify(text)[0] for text in texts]


def _visits(ident: Any, texts: list[str], depth: int) -> dict[bytes, Any]:  # noqa: ANN401
    """py3langid's ``visit_counts`` of each text (by its encoded bytes): the features the
    automaton passes, counted in the order first met. The state after each byte is the one
    its last ``depth`` bytes lead to from the start (``_depth``), so numpy takes ``depth``
    steps over all positions at once; the first ``depth - 1`` bytes of each text are walked
    one at a time."""
    from collections import Counter

    import numpy as np

    nextmove, rowbase = ident.tk_nextmove, ident._rowbase
    output = ident.tk_output
    encoded = [ident._encode(text) for text in texts]
    data = np.frombuffer(b"".join(encoded), np.uint8)
    count = len(data) - depth + 1
    features = np.zeros(0, np.int32)
    if count > 0:
        state = np.zeros(count, np.uint32)
        table, rows = np.asarray(nextmove), np.asarray(rowbase)
        for k in range(depth):
            state = table[rows[state] + data[k:k + count]]
        features = np.asarray(output)[state]  # of the byte at position i + depth - 1
    visits: dict[bytes, Any] = {}
    start = 0
    for text in encoded:
        found, state = [], 0
        for letter in text[:depth - 1]:
            state = nextmove[rowbase[state] + letter]
            if output[state] >= 0:
                found.append(output[state])
        if len(text) >= depth:
            rest = features[start:start + len(text) - depth + 1]
            found += rest[rest >= 0].tolist()
        visits[text] = Counter(found) if found else None
        start += len(text)
    return visits


@functools.lru_cache(maxsize=1)
def _identifier_class() -> type:
    from py3langid.langid import LanguageIdentifier

    class Mapped(LanguageIdentifier):
        """py3langid's identifier over the mapped model, which takes the features of a text
        from ``visits`` when ``classify_many`` counted them already."""

        __slots__ = ("depth", "visits")

        def _raw_score(self, text: bytes) -> Any:  # noqa: ANN401
            visits = self.visits.get(text)
            if visits:  # else py3langid's own: a walk, and its score for no features
                return self._sparse_score(visits, self.nb_ptc)
            return super()._raw_score(text)

    return Mapped
