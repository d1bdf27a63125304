"""Store -> sitemap.xml (sitemaps.org 0.9) and robots.txt, written incrementally.

The URLs are split into chunks that follow the RFC 5005 archive pages: chunk ``k`` lists
archive pages ``(k-1)*P+1 .. k*P`` (P pages of ``archive_size`` entries make about
``CHUNK_URLS`` URLs) with their entries, and the last chunk also lists ``/``, the language
pages ``lang/<code>/`` and the entries still in the current feeds. A chunk is written
again only when one of its archive pages is dirty, so a new seed rewrites the last chunk
(and the chunk of the newest archive page, the same one nearly always). Each chunk is a
sitemap of its own, ``sitemap-<k>.xml``. ``sitemap.xml`` is one sitemap of every URL while
there are at most ``MAX_URLS``, spliced from the chunk files, and beyond that a sitemap
index of the chunks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from html import escape
from pathlib import Path
from typing import Any

from . import output, render
from .config import Config
from .normalizer import Entry
from .store import Store

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
CHUNK_URLS = 10_000
MAX_URLS = 50_000  # the protocol's limit for one sitemap file
_HEAD = f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SITEMAP_NS}">\n'
_TAIL = "</urlset>\n"


def chunk_path(k: int) -> str:
    return f"sitemap-{k}.xml"


def pages_per_chunk(archive_size: int) -> int:
    return max(1, CHUNK_URLS // (archive_size + 1))


def robots_txt(base_url: str) -> bytes:
    return f"User-agent: *\nDisallow:\n\nSitemap: {base_url}sitemap.xml\n".encode()


def _url(loc: str, lastmod: str | None) -> str:
    mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    return f"<url><loc>{escape(loc)}</loc>{mod}</url>\n"


def _w3c(stored: str) -> str:
    """A stored ``updated`` (ISO 8601, aware) as a W3C datetime to the second."""
    return _w3c_moment(dt.datetime.fromisoformat(stored))


def _w3c_moment(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


Language = tuple[str, str | None]  # a language page: its code, its lastmod (W3C) if any


def render_chunk(base_url: str, rows: Iterable[tuple[int, str, str]],
                 current: list[Entry] | None,
                 languages: Sequence[Language] = ()) -> tuple[bytes, int, str | None]:
    """A sitemap of the archive pages and entries in ``rows`` (store.sitemap_rows), and,
    for the last chunk, of ``/``, the ``languages``' pages and the ``current`` entries
    (newest first). Returns (bytes, number of URLs, newest lastmod)."""
    return _chunk(_page_blocks(base_url, rows), base_url, current, languages=languages)


def _page_blocks(base_url: str, rows: Iterable[tuple[int, str, str]],
                 w3c: Callable[[Any], str] = _w3c) -> dict[int, list[str]]:
    """Per archive page (in the order of ``rows``): its URL line, then its entries' lines.
    ``w3c`` writes a row's ``updated`` (by default a stored one)."""
    by_page: dict[int, list[tuple[str, str]]] = {}
    for page, slug, updated in rows:
        by_page.setdefault(page, []).append((slug, w3c(updated)))
    blocks = {}
    for page, items in by_page.items():
        lines = [_url(base_url + render.archive_page_path(page), max(m for _s, m in items))]
        lines.extend(_url(f"{base_url}entries/{slug}.html", mod) for slug, mod in items)
        blocks[page] = lines
    return blocks


def _lastmod(line: str) -> str | None:
    start = line.find("<lastmod>")
    return None if start < 0 else line[start + 9:line.index("</lastmod>", start)]


def _chunk(blocks: dict[int, list[str]], base_url: str, current: list[Entry] | None,
           merged: int = 0, languages: Sequence[Language] = ()) -> tuple[bytes, int, str | None]:
    """A chunk of these page blocks (the first line of each is the page's, whose lastmod is
    the newest of its entries; the other parts are one or more of its entries' lines) and,
    for the last chunk, of ``/``, the ``languages``' pages and the ``current`` entries.
    ``merged``: how many more lines the parts hold than there are parts."""
    lines = [line for block in blocks.values() for line in block]
    mods = [m for block in blocks.values() if (m := _lastmod(block[0])) is not None]
    if current is not None:
        lines.extend(_current(base_url, current, languages, mods))
    # one join, one encode: each "+" of a ~1 MB chunk would copy it into a fresh buffer
    data = "".join([_HEAD, *lines, _TAIL]).encode()
    return data, len(lines) + merged, max(mods, default=None)


def _current(base_url: str, current: list[Entry], languages: Sequence[Language],
             mods: list[str]) -> list[str]:
    """The last chunk's lines of ``/``, the ``languages``' pages and the ``current``
    entries; their lastmods go to ``mods``."""
    newest = [e.updated.isoformat(timespec="seconds") for e in reversed(current)]
    lines = [_url(base_url, max(newest, default=None))]
    lines.extend(_url(f"{base_url}lang/{code}/", mod) for code, mod in languages)
    mods.extend(mod for _code, mod in languages if mod is not None)
    lines.extend(_url(base_url + render.entry_path(e), m)
                 for e, m in zip(reversed(current), newest, strict=True))
    mods.extend(newest)
    return lines


# The chunk ``splice_chunk`` made last: its bytes and base URL, and, once read through, each
# archive page's block in it (page, start, end, URL count, lastmod). The next pass finds
# that file as made (compared byte for byte) and splices it from these spans: no decoding,
# no reading it through, no encoding of the blocks kept (a chunk of ~200 pages at 100k
# seeds: ~5 ms -> ~0.3 ms). Held until the next splice: up to one chunk's bytes (~1.2 MB).
_made: list = [None, None, None]
Span = tuple[int, int, int, int, str | None]


def splice_chunk(old: bytes, base_url: str, pages: range, fresh: dict[int, list[str]],
                 current: list[Entry] | None,
                 languages: Sequence[Language] = ()) -> tuple[bytes, int, str | None] | None:
    """Chunk ``pages`` again from its ``old`` bytes: the blocks of the pages in ``fresh``
    (``_page_blocks`` of the dirty pages) replace theirs, the blocks of pages outside
    ``pages`` go, the others are kept as they are, and the ``/`` section is made anew. The
    same bytes as ``render_chunk`` of all the chunk's rows, for the price of the dirty
    pages' rows; None if ``old`` is not a chunk as this module writes them."""
    data, base, spans = _made
    if data is not None and base == base_url and old == data:
        if spans is None:
            spans = _made[2] = _spans(old, base_url)
        if spans is not None:
            return _splice_spans(old, spans, base_url, pages, fresh, current, languages)
    made = _splice(old, base_url, pages, fresh, current, languages)
    _made[:] = (None, None, None) if made is None else (made[0], base_url, None)
    return made


def _splice(old: bytes, base_url: str, pages: range, fresh: dict[int, list[str]],
            current: list[Entry] | None,
            languages: Sequence[Language] = ()) -> tuple[bytes, int, str | None] | None:
    """``splice_chunk`` of a chunk not made by the last splice: decoded and read through."""
    try:
        text = old.decode()
    except UnicodeDecodeError:
        return None
    if not (text.startswith(_HEAD) and text.endswith(_TAIL)):
        return None
    page_loc, _zero, page_end = escape(base_url + render.archive_page_path(0)).rpartition("0")
    page_loc, page_end = f"<url><loc>{page_loc}", f"{page_end}</loc>"
    root, entry_loc = f"<url><loc>{escape(base_url)}</loc>", f"<url><loc>{escape(base_url)}entries/"
    # Work on whole blocks, not lines: splitting a ~1 MB chunk into its ~10,000 lines and
    # looking at each took ~5 ms of a one-seed pass at 100k entries.
    body = text[len(_HEAD):len(text) - len(_TAIL)]
    at = 0 if body.startswith(root) else body.find("\n" + root) + 1 or len(body)
    pages_text = body[:at]  # the lines before "/", which is made anew
    if pages_text and not pages_text.startswith(page_loc):
        return None
    blocks: dict[int, list[str]] = {}
    merged: dict[int, int] = {}  # per kept block, its entries' lines less one (one part)
    start = 0
    while start < len(pages_text):
        end = pages_text.find("\n" + page_loc, start) + 1 or len(pages_text)
        line_end = pages_text.find("\n", start, end) + 1
        if not line_end:
            return None
        line, rest = pages_text[start:line_end], pages_text[line_end:end]
        number = line[len(page_loc):line.find(page_end)]
        # each line of ``rest`` must be an entry's (each is ended by a newline)
        count = rest.count("\n")
        if not number.isdigit() or (rest and not rest.endswith("\n")) or \
                ("\n" + rest).count("\n" + entry_loc) != count:
            return None
        if int(number) in pages:
            blocks.setdefault(int(number), []).extend((line, rest) if rest else (line,))
            merged[int(number)] = merged.get(int(number), 0) + max(count - 1, 0)
        start = end
    for n in fresh:
        blocks.pop(n, None)
        merged.pop(n, None)
    blocks.update(fresh)
    return _chunk({n: blocks[n] for n in sorted(blocks)}, base_url, current,
                  sum(merged.values()), languages)


def _spans(data: bytes, base_url: str) -> list[Span] | None:
    """Each archive page's block in ``data``, a chunk ``_splice`` made (so sound, in page
    order, each page once): (page, start, end, URL count, lastmod); None if not so."""
    page_loc, _zero, page_end = escape(base_url + render.archive_page_path(0)).rpartition("0")
    loc, end_mark = f"<url><loc>{page_loc}".encode(), f"{page_end}</loc>".encode()
    root = f"<url><loc>{escape(base_url)}</loc>".encode()
    head, stop = len(_HEAD), len(data) - len(_TAIL)  # the head and tail are ASCII
    at = (head if data.startswith(root, head)
          else data.find(b"\n" + root, head, stop) + 1 or stop)  # where "/" starts
    spans: list[Span] = []
    start = head
    while start < at:
        end = data.find(b"\n" + loc, start, at) + 1 or at
        line_end = data.find(b"\n", start, end) + 1
        number = data[start + len(loc):data.find(end_mark, start, line_end)]
        if not line_end or not data.startswith(loc, start) or not number.isdigit():
            return None
        page = int(number)
        if spans and page <= spans[-1][0]:
            return None
        spans.append((page, start, end, 1 + data.count(b"\n", line_end, end),
                      _lastmod(data[start:line_end].decode())))
        start = end
    return spans


def _splice_spans(old: bytes, spans: list[Span], base_url: str, pages: range,
                  fresh: dict[int, list[str]], current: list[Entry] | None,
                  languages: Sequence[Language]) -> tuple[bytes, int, str | None]:
    """``_splice``'s chunk, from the ``spans`` of ``old``: the blocks of ``pages`` not in
    ``fresh`` are copied as bytes, those in ``fresh`` put in page order; then ``/``."""
    kept = {span[0]: span for span in spans if span[0] in pages and span[0] not in fresh}
    view, parts, made, mods, count = memoryview(old), [], [], [], 0
    at = len(_HEAD)
    for n in sorted(kept.keys() | fresh.keys()):
        if n in kept:
            _n, start, end, urls, mod = kept[n]
            part: bytes | memoryview = view[start:end]
        else:
            part, urls, mod = "".join(fresh[n]).encode(), len(fresh[n]), _lastmod(fresh[n][0])
        parts.append(part)
        made.append((n, at, at + len(part), urls, mod))
        at += len(part)
        count += urls
        if mod is not None:
            mods.append(mod)
    if current is not None:
        lines = _current(base_url, current, languages, mods)
        parts.append("".join(lines).encode())
        count += len(lines)
    data = b"".join([_HEAD.encode(), *parts, _TAIL.encode()])
    _made[:] = data, base_url, made
    return data, count, max(mods, default=None)


def render_index(base_url: str, chunks: list[tuple[int, str | None]]) -> bytes:
    """A sitemap index of the chunks, given as (URL count, lastmod) in chunk order."""
    lines = []
    for k, (_count, mod) in enumerate(chunks, 1):
        m = f"<lastmod>{mod}</lastmod>" if mod else ""
        lines.append(f"<sitemap><loc>{escape(base_url + chunk_path(k))}</loc>{m}</sitemap>\n")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{SITEMAP_NS}">\n'
            + "".join(lines) + "</sitemapindex>\n").encode()


# a chunk to render: first and last page, current entries and language pages (the last's)
Spec = tuple[int, int, list[Entry] | None, Sequence[Language]]
Rendered = tuple[bytes, int, str | None]  # render_chunk's


def write(config: Config, store: Store, newest: list[Entry], pages: int,
          dirty: Iterable[int], *, force: bool, batch: output.Batch | None = None,
          render: Callable[[list[Spec]], Iterable[Rendered]] | None = None,
          languages: Sequence[Language] = (),
          entries: dict[int, list[Entry]] | None = None) -> list[str]:
    """Write the chunks that changed (all when ``force``; any that are missing), then
    sitemap.xml and robots.txt if their bytes change, in one batch (or staged in ``batch``,
    which its owner commits); return the paths written. The chunks not spliced are made by
    ``render`` (``render_chunk`` of each, in order; by default from ``store`` here).
    ``languages``: the language pages to list in the last chunk (``language_pages``);
    ``entries``: the entries of dirty pages the caller has read already (oldest first)."""
    if batch is None:
        with output.Batch() as own:
            return write(config, store, newest, pages, dirty, force=force, batch=own,
                         render=render, languages=languages, entries=entries)
    out, base = config.out, config.base_url
    per = pages_per_chunk(config.archive_size)
    last = max(1, -(-pages // per))
    known: list = list(store.get_meta("sitemap_chunks", []) or [])  # [[count, lastmod], ...]
    dirty = set(dirty)
    todo = {last} | {(n - 1) // per + 1 for n in dirty if 1 <= n <= pages}
    todo |= {k for k in range(1, last + 1)
             if force or k > len(known) or not (out / chunk_path(k)).is_file()}
    written, made = [], {}
    chunks = (known + [[0, None]] * last)[:last]
    specs: dict[int, Spec] = {k: ((k - 1) * per + 1, min(k * per, pages),
                                  *((newest, languages) if k == last else (None, ())))
                              for k in sorted(todo)}
    done: dict[int, Rendered] = {}
    for k, (first, final, current, langs) in specs.items():
        spliced = None if force or k > len(known) else _spliced(
            store, out / chunk_path(k), base, range(first, final + 1), dirty, current, langs,
            entries or {})
        if spliced is not None:
            done[k] = spliced
    specs = {k: spec for k, spec in specs.items() if k not in done}
    # Each chunk is written as it comes, and its bytes kept only while sitemap.xml may yet
    # be spliced from them: not once the URLs are too many for one sitemap (100,000 seeds:
    # ~20 MB of chunks no longer held to the end of the pass).
    total = sum(count for k, (count, _mod) in enumerate(chunks, 1) if k not in todo)

    def put(k: int, rendered: Rendered) -> None:
        nonlocal total
        data, count, mod = rendered
        chunks[k - 1] = [count, mod]
        total += count
        if total <= MAX_URLS:
            made[k] = data
        else:
            made.clear()
        if batch.write(out / chunk_path(k), data, compress=False, keep_hash=False):
            written.append(chunk_path(k))

    early = sorted(done.items())
    for k, rendered in zip(specs, (render or renderer(store, base))(list(specs.values())),
                           strict=True):
        while early and early[0][0] < k:
            put(*early.pop(0))
        put(k, rendered)
    for item in early:
        put(*item)
    del done, early
    for k in range(last + 1, len(known) + 1):  # chunks left empty at the end
        output.remove(out / chunk_path(k))
    if written or force or len(known) != last or not (out / "sitemap.xml").is_file():
        if sum(c for c, _m in chunks) > MAX_URLS:
            data = render_index(base, [(c, m) for c, m in chunks])
        else:
            data = b"".join([_HEAD.encode(),
                             *(_body(made.get(k) or (out / chunk_path(k)).read_bytes())
                               for k in range(1, last + 1)),
                             _TAIL.encode()])
        if batch.write(out / "sitemap.xml", data, compress=False, keep_hash=False):
            written.append("sitemap.xml")
    if batch.write(out / "robots.txt", robots_txt(base), compress=False, keep_hash=False):
        written.append("robots.txt")
    with store.transaction():
        store.set_meta("sitemap_chunks", chunks)
    return written


def renderer(store: Store, base_url: str) -> Callable[[list[Spec]], Iterator[Rendered]]:
    """``render_chunk`` of each spec, from ``store``, in this process."""
    def render(specs: list[Spec]) -> Iterator[Rendered]:
        return (render_chunk(base_url, store.sitemap_rows(first, final), current, langs)
                for first, final, current, langs in specs)
    return render


def _spliced(store: Store, path: Path, base_url: str, pages: range, dirty: set[int],
             current: list[Entry] | None, languages: Sequence[Language],
             entries: dict[int, list[Entry]]) -> tuple[bytes, int, str | None] | None:
    """Chunk ``pages`` again from the file at ``path``, reading only its dirty pages' rows
    from the store (a one-seed pass touches one or two of the ~200 pages of a chunk), or
    taking them from ``entries`` where it has them; None if there is no such file, or it
    is not one this module wrote."""
    try:
        old = path.read_bytes()
    except OSError:
        return None
    fresh = {}
    for n in sorted(dirty.intersection(pages)):
        if n in entries:
            fresh.update(_page_blocks(base_url, ((n, e.slug, e.updated) for e in entries[n]),
                                      _w3c_moment))
        else:
            fresh.update(_page_blocks(base_url, store.sitemap_rows(n, n)))
    return splice_chunk(old, base_url, pages, fresh, current, languages)


def _body(chunk: bytes) -> memoryview:
    return memoryview(chunk)[len(_HEAD):len(chunk) - len(_TAIL)]
