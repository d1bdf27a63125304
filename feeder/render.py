"""Entries -> Atom 1.0, RSS 2.0, JSON Feed 1.1 and HTML pages (bytes).

The only module that imports feedgen. Feed-level facts (title, links, hubs, archive links)
come in a :class:`FeedInfo`; entries come newest first. Every function is pure: the same
inputs give the same bytes, so unchanged outputs are never rewritten.

A feed document is kept under a size limit by :func:`fit`: feed readers refuse big feeds
(Miniflux above 15 MiB, CommaFeed above 5 MiB), and one huge article would otherwise silence
the whole feed. The largest entries are rendered *brief*: their summary and a link to their
page instead of their content.

A feed document is spliced: a header, each entry's fragment, a tail. Fragments are cut out of
documents feedgen (or ``json.dumps``) renders, and kept in a bounded in-process cache, so a
pass renders only its new entries; the bytes are those of the whole document rendered at
once (``render_*_reference``, which the property tests compare them with).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import html
import itertools
import json
import re
import threading
import types
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from . import __version__
from .normalizer import Entry, reduce_by_fields

ATOM_NS = "http://www.w3.org/2005/Atom"
FH_NS = "http://purl.org/syndication/history/1.0"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
JSONFEED_VERSION = "https://jsonfeed.org/version/1.1"
GENERATOR_URI = "https://pypi.org/project/feeder/"

# CLDR's most likely territory for each language py3langid detects (eo, vo and zxx have none),
# for og:locale, which wants language_TERRITORY.
_TERRITORIES = {
    "ace": "ID", "af": "ZA", "am": "ET", "an": "ES", "ar": "EG", "ary": "MA", "arz": "EG",
    "as": "IN", "az": "AZ", "ba": "RU", "bcl": "PH", "be": "BY", "bg": "BG", "bn": "BD",
    "br": "FR", "bs": "BA", "ca": "ES", "crh": "UA", "cs": "CZ", "cy": "GB", "da": "DK",
    "de": "DE", "dz": "BT", "el": "GR", "en": "US", "es": "ES", "et": "EE", "eu": "ES",
    "ext": "ES", "fa": "IR", "fi": "FI", "fo": "FO", "fr": "FR", "fuv": "NG", "fy": "NL",
    "ga": "IE", "gcf": "GP", "gcr": "GF", "gd": "GB", "gl": "ES", "gom": "IN", "grc": "GR",
    "gu": "IN", "gug": "PY", "guw": "BJ", "ha": "NG", "hbo": "IL", "he": "IL", "hi": "IN",
    "hr": "HR", "ht": "HT", "hu": "HU", "hy": "AM", "id": "ID", "ig": "NG", "is": "IS", "it": "IT",
    "ja": "JP", "jv": "ID", "ka": "GE", "kab": "DZ", "kik": "KE", "kk": "KZ", "km": "KH",
    "kn": "IN", "ko": "KR", "ku": "TR", "ky": "KG", "la": "VA", "lb": "LU", "lg": "UG",
    "lij": "IT", "ln": "CD", "lo": "LA", "lt": "LT", "ltg": "LV", "lv": "LV", "mg": "MG",
    "mk": "MK", "ml": "IN", "mn": "MN", "mr": "IN", "ms": "MY", "mt": "MT", "my": "MM", "ne": "NP",
    "nl": "NL", "nn": "NO", "no": "NO", "nso": "ZA", "oc": "FR", "om": "ET", "or": "IN",
    "pa": "IN", "pcm": "NG", "pl": "PL", "ps": "AF", "pt": "BR", "qu": "PE", "ro": "RO",
    "ru": "RU", "rw": "RW", "sa": "IN", "sdh": "IR", "se": "NO", "si": "LK", "sk": "SK",
    "sl": "SI", "sn": "ZW", "so": "SO", "sq": "AL", "sr": "RS", "st": "ZA", "sv": "SE", "sw": "TZ",
    "ta": "IN", "te": "IN", "tg": "TJ", "th": "TH", "tk": "TM", "tl": "PH", "tr": "TR", "tt": "RU",
    "ug": "CN", "uk": "UA", "ur": "PK", "uz": "UZ", "uzs": "AF", "vec": "IT", "vi": "VN",
    "wa": "BE", "wuu": "CN", "xh": "ZA", "yo": "NG", "yue": "HK", "zh": "CN", "zu": "ZA",
}
_RTL = frozenset({"ar", "ary", "arz", "ckb", "dv", "fa", "hbo", "he", "ps", "sd", "sdh", "ug", "ur",
                  "uzs", "yi"})
# Changes with the shape of the HTML pages (links between them), so that a site built before
# is rendered again in full (publish.render_key).
LAYOUT = 3


@dataclass(frozen=True)
class Archive:
    """RFC 5005 links of one document: relative paths under the base URL, or None."""

    prev: str | None = None
    next: str | None = None
    current: str | None = None
    is_archive: bool = False


@dataclass(frozen=True)
class FeedInfo:
    title: str
    subtitle: str
    author: str
    base_url: str
    language: str
    feed_id: str
    hubs: tuple[str, ...] = ()
    archive_count: int = 0
    max_bytes: int = 1024 * 1024  # each feed document's limit, for fit()
    home: str = ""  # the feed's HTML page (its alternate link), when not base_url
    search: bool = False  # the index page has a search box (search.py)

    @property
    def home_url(self) -> str:
        return self.home or self.base_url

    @classmethod
    def from_config(cls, config, archive_count: int = 0) -> FeedInfo:  # noqa: ANN001
        from .search import enabled

        return cls(
            title=config.title, subtitle=config.subtitle, author=config.author,
            base_url=config.base_url, language=config.language,
            feed_id=f"tag:{config.authority},{config.tag_date}:feed", hubs=config.hubs,
            archive_count=archive_count, max_bytes=config.max_feed_bytes,
            search=enabled(config),
        )

    def url(self, path: str) -> str:
        return self.base_url + path


@dataclass(frozen=True)
class Fitted:
    """A rendered feed document; ``brief`` lists its entries (largest first) rendered as
    summary and link, and ``over`` says it is still above the limit with them."""

    data: bytes
    brief: tuple[Entry, ...] = ()
    over: bool = False


@dataclass(frozen=True, slots=True)
class Neighbour:
    """What an entry page shows of the entry before or after it: a titled link."""

    title: str
    slug: str
    language: str

    __reduce__ = reduce_by_fields


def entry_path(entry: Entry | Neighbour) -> str:
    return f"entries/{entry.slug}.html"


def archive_path(kind: str, number: int) -> str:
    return f"archive/{kind}-{number}.xml"


def archive_page_path(number: int) -> str:
    """The HTML archive page ``number`` (1 is the oldest), listing one RFC 5005 page's entries."""
    return f"archive/page-{number}.html"


@functools.lru_cache(maxsize=256)
def og_locale(language: str) -> str | None:
    """``it`` -> ``it_IT``, ``pt-BR`` -> ``pt_BR``; None when no territory is known.

    Left out rather than guessed: a made-up locale such as ``eo_EO`` is as wrong as the
    ``en_US`` that OpenGraph readers assume when the tag is missing.
    """
    lang, *subtags = re.split(r"[-_]", language)
    lang = lang.lower()
    region = next((t.upper() for t in subtags if len(t) == 2 and t.isalpha()), None)
    region = region or _TERRITORIES.get(lang)
    return f"{lang}_{region}" if region else None


@functools.lru_cache(maxsize=256)
def text_direction(language: str) -> str:
    return "rtl" if re.split(r"[-_]", language)[0].lower() in _RTL else "ltr"


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def news_article(info: FeedInfo, entry: Entry) -> dict:
    """The schema.org NewsArticle (JSON-LD) of an entry page."""
    url = info.url(entry_path(entry))
    return {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": entry.title,
        "description": entry.summary,
        "inLanguage": entry.language,
        "datePublished": _iso(entry.published),
        "dateModified": _iso(entry.updated),
        "url": url,
        "mainEntityOfPage": {"@type": "WebPage", "@id": url},
        "author": {"@type": "Person", "name": info.author},
        "publisher": {"@type": "Organization", "name": info.title, "url": info.base_url},
    }


_SCRIPT_JSON = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"))
_XML_TEXT = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_MARKUP = (("&", "&amp;"), (">", "&gt;"), ("<", "&lt;"), ("'", "&#39;"), ('"', "&#34;"))


def _replacing(text: str, pairs: tuple[tuple[str, str], ...]) -> str:
    """``text`` with each ``old`` of ``pairs`` replaced by its ``new``, in order. (A
    ``str.replace`` that finds nothing still counts one character at a time; ``in`` looks
    with memchr: most texts hold none of these characters.)"""
    for old, new in pairs:
        if old in text:
            text = text.replace(old, new)
    return text


def script_json(data: object) -> str:
    """JSON that can sit inside ``<script>``: no ``<``, ``>`` or ``&`` in it, only escapes."""
    # Inside <script>, "</script>" or "<!--" in a string would end or derail the element.
    # (Three str.replace calls: a tenth of the cost of str.translate to longer strings.)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return _replacing(text, _SCRIPT_JSON)


def _atom_link(parent: etree._Element, rel: str, href: str, type_: str | None = None) -> None:
    link = etree.SubElement(parent, f"{{{ATOM_NS}}}link", rel=rel, href=href)
    if type_:
        link.set("type", type_)


class _Links(BaseExtension):
    """Adds what feedgen cannot: hub links in RSS, RFC 5005 links and the fh:archive marker."""

    def __init__(self) -> None:
        self.hubs: tuple[str, ...] = ()
        self.archive = Archive()
        self.type = ""
        self.base = ""

    def extend_ns(self) -> dict[str, str]:
        return {"fh": FH_NS} if self.archive.is_archive else {}

    def _rels(self) -> list[tuple[str, str]]:
        rels = [("hub", hub) for hub in self.hubs]
        for rel, path in (("current", self.archive.current), ("prev-archive", self.archive.prev),
                          ("next-archive", self.archive.next)):
            if path:
                rels.append((rel, self.base + path))
        return rels

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        # Atom links for hubs and archives are set through feedgen itself; only the marker here.
        if self.archive.is_archive:
            feed.insert(0, etree.Element(f"{{{FH_NS}}}archive"))
        return feed

    def extend_rss(self, feed: etree._Element) -> etree._Element:
        channel = feed[0]
        for rel, href in self._rels():
            _atom_link(channel, rel, href, self.type if rel != "hub" else None)
        if self.archive.is_archive:
            etree.SubElement(channel, f"{{{FH_NS}}}archive")
        return feed


class _EntryLang(BaseEntryExtension):
    def __init__(self) -> None:
        self.language = ""

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        if self.language:
            entry.set(XML_LANG, self.language)
        return entry


def _feed(info: FeedInfo, kind: str, self_path: str, archive: Archive,
          newest: dt.datetime | None) -> FeedGenerator:
    """The feed-level part of a document: everything but its entries."""
    mime = "application/atom+xml" if kind == "atom" else "application/rss+xml"
    fg = FeedGenerator()
    fg.register_extension("feederlinks", _Links, _EntryLang, atom=True, rss=True)
    ext: _Links = fg.feederlinks  # type: ignore[attr-defined]
    ext.hubs, ext.archive, ext.type, ext.base = info.hubs, archive, mime, info.base_url
    fg.id(info.feed_id)
    fg.title(info.title)
    fg.subtitle(info.subtitle)
    fg.author(name=info.author)
    fg.language(info.language)
    fg.generator("feeder", version=__version__, uri=GENERATOR_URI)
    fg.docs(None)
    fg.link(href=info.url(self_path), rel="self", type=mime)
    if kind == "atom":
        for rel, href in ext._rels():
            fg.link(href=href, rel=rel, type=None if rel == "hub" else mime)
    fg.link(href=info.home_url, rel="alternate", type="text/html")  # last: RSS <link>
    fg.updated(newest or dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    return fg


def _generator(info: FeedInfo, kind: str, self_path: str, entries: Sequence[Entry],
               archive: Archive, brief: Collection[str]) -> FeedGenerator:
    newest = max((e.updated for e in entries), default=None)
    fg = _feed(info, kind, self_path, archive, newest)
    for entry in entries:
        fe: FeedEntry = fg.add_entry(order="append")
        fe.id(entry.id)
        fe.guid(entry.id, permalink=False)
        fe.title(entry.title)
        fe.link(href=info.url(entry_path(entry)), rel="alternate", type="text/html")
        fe.published(entry.published)
        fe.updated(entry.updated)
        # As escaped HTML in both formats: readers show seed text literally, even "<b>".
        fe.summary(html.escape(entry.summary, quote=False), type="html")
        if entry.id not in brief:
            fe.content(entry.content_html, type="html")
        elif kind == "rss":  # RSS has no summary element: the description holds the link too
            fe.description(brief_html(info, entry))
        # a brief Atom entry has its summary and its alternate link, which RFC 4287 asks for
        if entry.language != info.language:
            fe.feederlinks.language = entry.language  # type: ignore[attr-defined]
    return fg


def brief_html(info: FeedInfo, entry: Entry) -> str:
    """What a brief entry carries instead of its content: its summary and its page's URL."""
    url = html.escape(info.url(entry_path(entry)))
    return f'<p>{html.escape(entry.summary, quote=False)}</p>\n<p><a href="{url}">{url}</a></p>'


def render_atom_reference(info: FeedInfo, entries: Sequence[Entry],
                          self_path: str = "atom.xml", archive: Archive = Archive(),
                          brief: Collection[str] = ()) -> bytes:
    """Atom 1.0 through feedgen, whole (the reference for :func:`render_atom`); the entries
    whose ids are in ``brief`` get no content, only their summary and alternate link."""
    return _generator(info, "atom", self_path, entries, archive, brief).atom_str(pretty=True)


def render_rss_reference(info: FeedInfo, entries: Sequence[Entry], self_path: str = "rss.xml",
                         archive: Archive = Archive(), brief: Collection[str] = ()) -> bytes:
    """RSS 2.0 through feedgen, whole (the reference for :func:`render_rss`); the entries
    whose ids are in ``brief`` get :func:`brief_html` as their description and no
    ``content:encoded``."""
    return _generator(info, "rss", self_path, entries, archive, brief).rss_str(pretty=True)


def render_json_reference(info: FeedInfo, entries: Sequence[Entry],
                          self_path: str = "feed.json", brief: Collection[str] = ()) -> bytes:
    """JSON Feed 1.1 in one ``json.dumps`` (the reference for :func:`render_json`); the
    entries whose ids are in ``brief`` get :func:`brief_html` as their ``content_html`` (the
    spec asks every item for content_html or content_text)."""
    feed = _json_head(info, self_path)
    feed["items"] = [_json_item(info, entry, entry.id in brief) for entry in entries]
    return (json.dumps(feed, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _json_head(info: FeedInfo, self_path: str) -> dict:
    feed: dict = {
        "version": JSONFEED_VERSION,
        "title": info.title,
        "home_page_url": info.home_url,
        "feed_url": info.url(self_path),
        "description": info.subtitle,
        "language": info.language,
        "authors": [{"name": info.author}],
    }
    if info.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in info.hubs]
    return feed


def _json_item(info: FeedInfo, entry: Entry, brief: bool) -> dict:
    return {
        "id": entry.id,
        "url": info.url(entry_path(entry)),
        "title": entry.title,
        "summary": entry.summary,
        "content_html": brief_html(info, entry) if brief else entry.content_html,
        "date_published": entry.published.isoformat(),
        "date_modified": entry.updated.isoformat(),
        "language": entry.language,
    }


class _LRU:
    """A bounded least-recently-used map of rendered bytes, by item count and total size.

    Only a cache: every caller renders on a miss, so what it holds never changes an output.
    Locked, as documents are rendered on helper threads too.
    """

    def __init__(self, items: int, size: int) -> None:
        self._data: OrderedDict[object, bytes] = OrderedDict()
        self._items, self._size, self._held = items, size, 0
        self._lock = threading.Lock()

    @property
    def holds(self) -> bool:
        """Does it keep anything? (``keep_no_fragments`` makes caches that keep nothing.)"""
        return self._items > 0 and self._size > 0

    def get(self, key: object) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: object, value: bytes) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            self._held += len(value) - (len(old) if old is not None else 0)
            self._data[key] = value
            while len(self._data) > self._items or self._held > self._size:
                self._held -= len(self._data.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._held = 0


# Entry fragments: the 6 feeds of a pass (3 main, 3 of a language) and the newest archive page
# share most of theirs with the pass before: a few hundred keys. The keys hold their entries,
# so the bound on the fragments' bytes roughly halves the memory held. Headers change with
# every new entry (their <updated>) but are few.
_fragments = _LRU(items=1024, size=8 * 1024 * 1024)
_heads = _LRU(items=256, size=4 * 1024 * 1024)
# The HTML pages' list items (str): the index's, a language page's and an archive page's.
_items = _LRU(items=512, size=2 * 1024 * 1024)
# Where each entry starts in a pretty-printed document, and how the document ends: an entry's
# text is escaped, so "<" starts an element, and only entries sit at this depth.
_ENTRY_START = {"atom": b"\n  <entry", "rss": b"\n    <item>"}
_TAIL = {"atom": b"</feed>\n", "rss": b"  </channel>\n</rss>\n"}
_XML = {"atom": FeedGenerator.atom_str, "rss": FeedGenerator.rss_str}
_REFERENCE = {"atom": render_atom_reference, "rss": render_rss_reference}


def clear_fragments() -> None:
    """Forget every cached fragment and header (tests, and after a change of renderer)."""
    _fragments.clear()
    _heads.clear()
    _items.clear()
    _by_entry.clear()


# (what shapes a fragment or list item besides its entry, id(entry)) -> (the entry, the
# fragment or item): the very Entry object of an earlier render (``store.kept_entry``) is
# found by identity, before its keys in the caches above are made, hashed and compared (a
# one-seed pass looks up ~550 of them). Its dates are the same objects too, written alike.
_by_entry: dict[tuple, tuple[Entry, Any]] = {}
_BY_ENTRY = 2048


def _held(shape: tuple, entry: Entry) -> Any:
    held = _by_entry.get((*shape, id(entry)))
    return held[1] if held is not None and held[0] is entry else None


def _hold(shape: tuple, entry: Entry, made: object) -> None:
    if len(_by_entry) >= _BY_ENTRY:
        _by_entry.clear()
    _by_entry[(*shape, id(entry))] = (entry, made)


# a FeedInfo -> a number of its own, for the shapes above (a FeedInfo's hash is worked out
# anew each time: once per page, not per entry). Numbers are never given twice, so a shape
# made before the map was last cleared cannot stand for another FeedInfo.
_infos: dict[FeedInfo, int] = {}
_tokens = itertools.count(1)


def _info_token(info: FeedInfo) -> int:
    token = _infos.get(info)
    if token is None:
        if len(_infos) >= 64:
            _infos.clear()
        token = _infos.setdefault(info, next(_tokens))
    return token


def keep_no_fragments() -> None:
    """Cache nothing from now on: for the pool's workers, which render archive pages whose
    entries no later document shares (a cold build's workers held ~10 MB each for nothing)."""
    global _fragments, _heads, _items
    _fragments, _heads = _LRU(items=0, size=0), _LRU(items=0, size=0)
    _items = _LRU(items=0, size=0)


def _moment(when: dt.datetime | None) -> str | None:
    """A date as written: equal datetimes in other time zones are written differently."""
    return when and when.isoformat()


# id(entry) -> (entry, published, updated as written): each of a pass's entries keys ~10
# cache lookups (its fragments, list items, the publisher's inputs). Held entries keep their
# ids; cleared after each pass (``forget_moments``) and whenever it grows past the bound.
_moments: dict[int, tuple[Entry, str, str]] = {}


def moments(entry: Entry) -> tuple[str, str]:
    """``entry``'s publication and update dates as written, worked out once per Entry."""
    held = _moments.get(id(entry))
    if held is None or held[0] is not entry:
        if len(_moments) >= 512:
            _moments.clear()
        held = (entry, entry.published.isoformat(), entry.updated.isoformat())
        _moments[id(entry)] = held
    return held[1], held[2]


def forget_moments() -> None:
    """Let go of the entries ``moments`` holds (the publisher, after each pass)."""
    _moments.clear()
    _escaped.clear()


def _fragment_key(kind: str, info: FeedInfo, entry: Entry, brief: bool) -> tuple:
    """Everything that shapes an entry's bytes: the whole entry (its content and dates among
    its fields), brief or not, the base URL of its links and, in Atom, whether it is in
    another language than its feed (its ``xml:lang``)."""
    foreign = kind == "atom" and entry.language != info.language
    return (kind, info.base_url, foreign, brief, entry, *moments(entry))


def _xml_head(kind: str, info: FeedInfo, self_path: str, archive: Archive,
              newest: dt.datetime | None) -> bytes | None:
    key = (kind, info, self_path, archive, _moment(newest))
    head = _heads.get(key) if _heads.holds else None
    if head is None:
        doc = _XML[kind](_feed(info, kind, self_path, archive, newest), pretty=True)
        if not doc.endswith(_TAIL[kind]):
            return None
        head = doc[:-len(_TAIL[kind])]
        _heads.put(key, head)
    return head


def _xml_fragments(kind: str, info: FeedInfo, entries: Sequence[Entry],
                   brief: Collection[str]) -> list[bytes] | None:
    """Each entry's bytes as feedgen writes them inside a document: one feedgen document of
    all of them, cut at each entry's start; None if the cut does not find them all."""
    doc = _XML[kind](_generator(info, kind, "", entries, Archive(), brief), pretty=True)
    tail, start = _TAIL[kind], _ENTRY_START[kind]
    if not doc.endswith(tail):
        return None
    starts, at = [], doc.find(start)
    while at >= 0:
        starts.append(at + 1)
        at = doc.find(start, at + len(start))
    if len(starts) != len(entries):
        return None
    starts.append(len(doc) - len(tail))
    return [doc[a:b] for a, b in zip(starts, starts[1:], strict=False)]


# What the direct renderer writes as is: text lxml writes unchanged but for "&", "<" and ">"
# (and '"' in attributes). Anything else (controls, "\r", surrogates, non-characters) goes
# through feedgen, which escapes or refuses it in its own way.
_UNSURE = re.compile("[^\t\n -~\xa0-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd\U00010000-\U0010ffff]")
_UNSURE_ATTRIBUTE = re.compile("[^ -~\xa0-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd\U00010000-\U0010ffff]")
# The characters ``_UNSURE`` lets through among the first 256: a text of those alone (most
# Latin-script text) is checked by deleting them from its Latin-1 bytes (a copy), in a tenth
# of the regex's time (9 us for a 3 KB article's content here, once per entry of an archive
# page: a third of the CPU of its Atom and RSS documents).
_SURE_LATIN1 = bytes([0x09, 0x0A, *range(0x20, 0x7F), *range(0xA0, 0x100)])
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _unsure(text: str) -> bool:
    """Does ``text`` hold a character of ``_UNSURE``? (its answer, sooner)"""
    try:
        return bool(text.encode("latin-1").translate(None, _SURE_LATIN1))
    except UnicodeEncodeError as exc:  # the rest, from the first character past Latin-1
        return (bool(text[:exc.start].encode("latin-1").translate(None, _SURE_LATIN1))
                or _UNSURE.search(text, exc.start) is not None)


def _text(text: str) -> str:
    """``text`` as lxml writes it in an element (checked against ``_UNSURE`` first)."""
    return _replacing(text, _XML_TEXT)


def _rfc2822(moment: dt.datetime) -> str:
    """feedgen's ``formatRFC2822`` (strftime in the C locale), without switching locales or
    calling strftime (``{moment:%H:%M:%S %z}`` was most of this function's cost)."""
    return (f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
            f"{moment.year} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} "
            f"{_offset(moment.utcoffset())}")


@functools.lru_cache(maxsize=64)
def _offset(offset: dt.timedelta | None) -> str:
    """strftime's ``%z`` of a time zone offset (as CPython's datetime writes it)."""
    if offset is None:
        return ""
    sign = "+"
    if offset < dt.timedelta(0):
        sign, offset = "-", -offset
    hours, rest = divmod(offset, dt.timedelta(hours=1))
    minutes, rest = divmod(rest, dt.timedelta(minutes=1))
    text = f"{sign}{hours:02d}{minutes:02d}"
    if rest.microseconds:
        return f"{text}{rest.seconds:02d}.{rest.microseconds:06d}"
    return f"{text}{rest.seconds:02d}" if rest.seconds else text


# id(entry) -> (entry, its id, title, summary and content as written, or None where unsure):
# a page's Atom and RSS documents share them (as ``_moments``, bounded and cleared).
_escaped: dict[int, tuple[Entry, tuple[str, str, str, str] | None]] = {}


def _escaped_texts(entry: Entry) -> tuple[str, str, str, str] | None:
    """``entry``'s id, title, summary (escaped as HTML, as both formats carry it) and content
    as lxml writes them in an element; None if one is empty or holds an ``_UNSURE`` character."""
    held = _escaped.get(id(entry))
    if held is None or held[0] is not entry:
        if len(_escaped) >= 512:
            _escaped.clear()
        texts = (entry.id, entry.title, _replacing(entry.summary, _XML_TEXT),
                 entry.content_html)
        sure = all(texts) and not any(map(_unsure, texts))
        held = (entry, tuple(map(_text, texts)) if sure else None)  # type: ignore[assignment]
        _escaped[id(entry)] = held
    return held[1]


def _direct_fragment(kind: str, info: FeedInfo, entry: Entry, brief: bool) -> bytes | None:
    """An entry's fragment as :func:`_xml_fragments` cuts it out of feedgen's document, put
    together as a string (a fraction of the CPU); None where the bytes are not certain: empty
    fields (feedgen writes or leaves out such elements in ways of its own), characters
    outside ``_UNSURE``'s set, dates with no offset or outside years 1000-9999."""
    texts = _escaped_texts(entry)
    url = info.url(entry_path(entry))
    if (texts is None or _UNSURE_ATTRIBUTE.search(url)
            or _UNSURE_ATTRIBUTE.search(entry.language)):
        return None
    published, updated = entry.published, entry.updated
    if not all(1000 <= m.year <= 9999 and m.utcoffset() is not None
               for m in (published, updated)):
        return None
    ident, title, summary, content = texts
    if kind == "atom":
        lang = ""
        if entry.language and entry.language != info.language:
            lang = f' xml:lang="{_text(entry.language).replace(chr(34), "&quot;")}"'
        written, edited = moments(entry)
        content = "" if brief else f'    <content type="html">{content}</content>\n'
        href = _text(url).replace('"', "&quot;")
        text = (f"  <entry{lang}>\n    <id>{ident}</id>\n    <title>{title}</title>\n"
                f"    <updated>{edited}</updated>\n{content}    <link href=\"{href}\"/>\n"
                f'    <summary type="html">{summary}</summary>\n'
                f"    <published>{written}</published>\n  </entry>\n")
    else:
        if brief:
            summary = _text(brief_html(info, entry))
        content = "" if brief else f"      <content:encoded>{content}</content:encoded>\n"
        text = (f"    <item>\n      <title>{title}</title>\n      <link>{_text(url)}</link>\n"
                f"      <description>{summary}</description>\n{content}"
                f'      <guid isPermaLink="false">{ident}</guid>\n'
                f"      <pubDate>{_rfc2822(published)}</pubDate>\n    </item>\n")
    return text.encode("utf-8")


def _new_fragments(kind: str, info: FeedInfo, entries: Sequence[Entry],
                   brief: Collection[str]) -> list[bytes] | None:
    """The fragments of entries missing from the cache: put together directly where
    :func:`_direct_fragment` can, the others cut out of one feedgen document
    (:func:`_xml_fragments`); None if that cut fails."""
    parts = [_direct_fragment(kind, info, entry, entry.id in brief) for entry in entries]
    rest = [i for i, part in enumerate(parts) if part is None]
    if rest:
        cut = _xml_fragments(kind, info, [entries[i] for i in rest], brief)
        if cut is None:
            return None
        for i, part in zip(rest, cut, strict=True):
            parts[i] = part
    return parts  # type: ignore[return-value]


def _render_xml(kind: str, info: FeedInfo, entries: Sequence[Entry], self_path: str,
                archive: Archive, brief: Collection[str]) -> bytes:
    """The bytes feedgen writes for these inputs, as a header, the entries' cached fragments
    and a tail; entries missing from the cache are rendered together in one feedgen document."""
    newest = max((e.updated for e in entries), default=None)
    head = _xml_head(kind, info, self_path, archive, newest)
    if not _fragments.holds:  # a pool worker's: no keys to make
        cut = _new_fragments(kind, info, entries, brief)
        if cut is None or head is None:
            return _REFERENCE[kind](info, entries, self_path, archive, brief)
        return b"".join([head, *cut, _TAIL[kind]])
    shapes = [(kind, info.base_url, kind == "atom" and e.language != info.language,
               e.id in brief) for e in entries]
    parts = [_held(shape, e) for shape, e in zip(shapes, entries, strict=True)]
    keys = {i: _fragment_key(kind, info, entries[i], shapes[i][3])
            for i, part in enumerate(parts) if part is None}
    for i, key in keys.items():
        parts[i] = _fragments.get(key)
    missing = [i for i in keys if parts[i] is None]
    if missing:
        cut = _new_fragments(kind, info, [entries[i] for i in missing], brief)
        if cut is None or head is None:
            return _REFERENCE[kind](info, entries, self_path, archive, brief)
        for i, part in zip(missing, cut, strict=True):
            parts[i] = part
            _fragments.put(keys[i], part)
    elif head is None:
        return _REFERENCE[kind](info, entries, self_path, archive, brief)
    for i in keys:
        _hold(shapes[i], entries[i], parts[i])
    # one join: each "+" would copy the whole document into a new buffer (~0.1 ms each at
    # 200 KB, mostly page faults of a fresh allocation)
    return b"".join([head, *parts, _TAIL[kind]])  # type: ignore[list-item]


def render_atom(info: FeedInfo, entries: Sequence[Entry], self_path: str = "atom.xml",
                archive: Archive = Archive(), brief: Collection[str] = ()) -> bytes:
    """Atom 1.0, byte for byte what :func:`render_atom_reference` gives, from cached entry
    fragments; the entries whose ids are in ``brief`` get no content, only their summary
    and alternate link."""
    return _render_xml("atom", info, entries, self_path, archive, brief)


def render_rss(info: FeedInfo, entries: Sequence[Entry], self_path: str = "rss.xml",
               archive: Archive = Archive(), brief: Collection[str] = ()) -> bytes:
    """RSS 2.0, byte for byte what :func:`render_rss_reference` gives, from cached entry
    fragments; the entries whose ids are in ``brief`` get :func:`brief_html` as their
    description and no ``content:encoded``."""
    return _render_xml("rss", info, entries, self_path, archive, brief)


def render_json(info: FeedInfo, entries: Sequence[Entry], self_path: str = "feed.json",
                brief: Collection[str] = ()) -> bytes:
    """JSON Feed 1.1, byte for byte what :func:`render_json_reference` gives, from cached
    item fragments; the entries whose ids are in ``brief`` get :func:`brief_html` as their
    ``content_html`` (the spec asks every item for content_html or content_text)."""
    key = ("json", info, self_path)
    head = _heads.get(key)
    if head is None:
        feed = _json_head(info, self_path)
        feed["items"] = []
        text = json.dumps(feed, ensure_ascii=False, indent=1)
        head = text[:-len("[]\n}")].encode("utf-8")  # up to and with '"items": '
        _heads.put(key, head)
    if not entries:
        return head + b"[]\n}\n"
    parts = []
    for entry in entries:
        short = entry.id in brief
        shape = ("json", info.base_url, False, short)
        part = _held(shape, entry)
        if part is None:
            key = _fragment_key("json", info, entry, short)
            part = _fragments.get(key)
            if part is None:
                # an item sits two levels deep; json.dumps escapes every newline in a string
                text = json.dumps(_json_item(info, entry, short), ensure_ascii=False, indent=1)
                part = text.replace("\n", "\n  ").encode("utf-8")
                _fragments.put(key, part)
            if _fragments.holds:
                _hold(shape, entry, part)
        parts.append(part)
    return b"".join([head, b"[\n  ", b",\n  ".join(parts), b"\n ]\n}\n"])


_RENDERERS = {"atom": render_atom, "rss": render_rss, "json": render_json}
_REFERENCE_RENDERERS = {"atom": render_atom_reference, "rss": render_rss_reference,
                        "json": render_json_reference}


def _saving(kind: str, info: FeedInfo, entry: Entry) -> int:
    """Bytes (at least) that rendering ``entry`` brief takes off a document of ``kind``."""
    if kind == "json":
        def size(text: str) -> int:
            return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))
        return size(entry.content_html) - size(brief_html(info, entry))
    content = len(html.escape(entry.content_html, quote=False).encode("utf-8"))
    if kind == "atom":  # the <content> element goes; the summary stays as it was
        return content
    description = html.escape(html.escape(entry.summary, quote=False), quote=False)
    grown = html.escape(brief_html(info, entry), quote=False)
    return content - (len(grown.encode("utf-8")) - len(description.encode("utf-8")))


def fit(kind: str, info: FeedInfo, entries: Sequence[Entry], **links: object) -> Fitted:
    """Render a ``kind`` ("atom", "rss" or "json") document of ``entries`` in at most
    ``info.max_bytes`` bytes, rendering entries brief, largest first, until it fits.

    The document is rendered once, and once more if it is too big: what each entry would
    save is worked out from the length of its escaped content, so the entries to shorten are
    chosen without rendering in between. Every entry stays listed; if the document does not
    fit even so, it is returned anyway with ``over`` set. ``links`` go to the renderer
    (``self_path``, ``archive``).
    """
    return _fit(_RENDERERS[kind], kind, info, entries, **links)


def fit_reference(kind: str, info: FeedInfo, entries: Sequence[Entry], **links: object) -> Fitted:
    """:func:`fit` through the reference renderers (feedgen and one ``json.dumps``)."""
    return _fit(_REFERENCE_RENDERERS[kind], kind, info, entries, **links)


def _fit(render_fn, kind: str, info: FeedInfo, entries: Sequence[Entry],  # noqa: ANN001
         **links: object) -> Fitted:
    limit = info.max_bytes
    data = render_fn(info, entries, **links)
    if len(data) <= limit:
        return Fitted(data)
    excess, saved, brief = len(data) - limit, 0, []
    # largest first; a stable sort keeps ties in feed order, so the same inputs give the same bytes
    for saving, entry in sorted(((_saving(kind, info, e), e) for e in entries),
                                key=lambda pair: pair[0], reverse=True):
        if saved >= excess or saving <= 0:
            break
        brief.append(entry)
        saved += saving
    if not brief:
        return Fitted(data, over=True)
    data = render_fn(info, entries, brief={e.id for e in brief}, **links)
    return Fitted(data, tuple(brief), over=len(data) > limit)


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("feeder", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    auto_reload=False,  # package files: no stat of each template for every page rendered
)
_templates.filters["path"] = entry_path
_templates.filters["iso"] = _iso
_templates.filters["dir"] = text_direction


def _list_items(kind: str, info: FeedInfo, entries: Sequence[Entry]) -> str:
    """The ``<li>`` of each entry, as the macro ``kind`` of ``_items.html`` renders it, from
    a cache: a page of a pass shares all but one or two of them with the pass before. A
    missing one is filled into the macro's skeleton (``_list_item``)."""
    if not _items.holds:  # a pool worker's: no keys to make
        return jinja2.utils.markupsafe.Markup("".join([_list_item(kind, info, entry)
                                                       for entry in entries]))
    parts = []
    token = _info_token(info)
    for entry in entries:
        part = _held((kind, token), entry)
        if part is None:
            key = (kind, info, entry, *moments(entry))
            part = _items.get(key)
            if part is None:
                part = _list_item(kind, info, entry)
                _items.put(key, part)
            _hold((kind, token), entry, part)
        parts.append(part)
    return jinja2.utils.markupsafe.Markup("".join(parts))


def _list_item_reference(kind: str, info: FeedInfo, entry: Entry) -> str:
    """One ``<li>`` as the macro ``kind`` of ``_items.html`` renders it (what ``_list_item``
    gives, faster)."""
    return str(getattr(_templates.get_template("_items.html").module, kind)(info, entry))


def _list_item(kind: str, info: FeedInfo, entry: Entry) -> str:
    """``_list_item_reference``'s text, filled into the macro's skeleton: an archive page
    renders 50 of them, and Jinja's macro call took most of the page's time."""
    skeleton = _item_skeleton(kind, text_direction(entry.language))
    values = {
        "language": _escape(entry.language), "title": _escape(entry.title),
        "summary": _escape(entry.summary), "url": _escape(info.url(entry_path(entry))),
        # dates hold nothing to escape
        "published": _iso(entry.published), "day": entry.published.date().isoformat(),
    }
    parts = list(skeleton)
    parts[1::2] = [values[name] for name in skeleton[1::2]]
    return "".join(parts)


@functools.lru_cache(maxsize=16)
def _item_skeleton(kind: str, direction: str) -> tuple[str, ...]:
    """The macro ``kind`` of ``_items.html`` rendered with a hole (``\x00name\x00``) for each
    value, for entries in a language written in ``direction`` (what its ``if`` tests read):
    the text and the holes' names, alternating."""
    def hole(name: str) -> str:
        return f"\x00{name}\x00"

    # the language's first subtag decides its direction (text_direction): one of that
    # direction, cut off again below
    prefix = "ar-" if direction == "rtl" else "en-"
    entry = types.SimpleNamespace(language=prefix + hole("language"), title=hole("title"),
                                  summary=hole("summary"), slug="",
                                  published=_Moment(hole("published"), hole("day")))
    info = types.SimpleNamespace(url=lambda path: hole("url"))
    text = _list_item_reference(kind, info, entry)  # type: ignore[arg-type]
    text = text.replace(prefix + hole("language"), hole("language"))
    return tuple(_HOLE.split(text))


def load_templates() -> None:
    """Compile every page template now: the first page rendered from each would otherwise
    wait for Jinja to parse and compile it (~100 ms for the entry page in a daemon's first
    pass after its start, on this 2-core machine)."""
    for name in _templates.list_templates():
        _templates.get_template(name)


def render_index(info: FeedInfo, entries: Sequence[Entry], prev_page: str | None = None,
                 next_page: str | None = None, number: int | None = None,
                 languages: Sequence[str] = ()) -> bytes:
    """The index page, or archive page ``number``; ``prev_page``/``next_page`` (paths under
    the base URL, "" for the base URL itself) link its newer and older neighbours in the
    paginated index with ``rel="prev"``/``rel="next"``. ``languages`` are the codes whose
    feeds (``lang/<code>/``) the index links, with autodiscovery links.

    The bytes of ``render_index_reference``: the list items (``_list_items``) put into the
    page's shell, the template rendered around a hole for them (``_index_shell``), which
    the next page of the same settings, links and dates shares."""
    days = ((_day(entries[0].published), _day(entries[-1].published))
            if entries and number else (None, None))
    shell = _index_shell(info, prev_page, next_page, number, tuple(languages), bool(entries),
                         *days)
    items = _list_items("index_item", info, entries)
    if shell is None:
        return render_index_reference(info, entries, prev_page, next_page, number, languages)
    return "".join([shell[0], items, shell[1]]).encode("utf-8")


def render_index_reference(info: FeedInfo, entries: Sequence[Entry],
                           prev_page: str | None = None, next_page: str | None = None,
                           number: int | None = None, languages: Sequence[str] = ()) -> bytes:
    """``render_index``'s page, the template rendered with every entry (its reference)."""
    page = _templates.get_template("index.html").render(
        info=info, entries=entries, prev_page=prev_page, next_page=next_page, number=number,
        languages=languages, items=_list_items("index_item", info, entries),
    )
    return page.encode("utf-8")


_ITEMS = "\x00items\x00"  # where the list items go in a page's shell


def _day(moment: dt.datetime) -> str:
    return moment.date().isoformat()


def _shell(page: str) -> tuple[str, str] | None:
    """A page rendered with ``_ITEMS`` for its items, cut there; None if the hole is not
    there exactly once (a setting holding the marker: never from a valid config)."""
    head, hole, tail = page.partition(_ITEMS)
    return None if not hole or _ITEMS in tail else (head, tail)


def _stand_ins(has_entries: bool, first_day: str | None,
               last_day: str | None) -> list[types.SimpleNamespace]:
    """What the page templates read of their entries beyond the items: whether there are
    any, and the (local) publication dates of the first and the last (an archive page's
    span). Anything else they read would fail here, not be left out of a shell's key."""
    if not has_entries:
        return []
    return [types.SimpleNamespace(published=_Moment("", first_day or "")),
            types.SimpleNamespace(published=_Moment("", last_day or ""))]


@functools.lru_cache(maxsize=16)
def _index_shell(info: FeedInfo, prev_page: str | None, next_page: str | None,
                 number: int | None, languages: tuple[str, ...], has_entries: bool,
                 first_day: str | None, last_day: str | None) -> tuple[str, str] | None:
    """``index.html`` around a hole for its items: the index of a pass shares it with the
    pass before unless its links or languages changed, and an archive page with the
    renders of its page before (the template took ~0.5 ms of each page)."""
    return _shell(_templates.get_template("index.html").render(
        info=info, entries=_stand_ins(has_entries, first_day, last_day), prev_page=prev_page,
        next_page=next_page, number=number, languages=languages,
        items=jinja2.utils.markupsafe.Markup(_ITEMS)))


def render_archive_page(info: FeedInfo, number: int, pages: int,
                        entries: Sequence[Entry]) -> bytes:
    """HTML archive page ``number`` of ``pages``: the entries (newest first) of the RFC 5005
    page of that number. It names neither the page count nor anything outside its own
    entries and neighbours, so a full page stays byte-identical as the site grows."""
    newer = archive_page_path(number + 1) if number < pages else ""
    older = archive_page_path(number - 1) if number > 1 else None
    return render_index(info, entries, prev_page=newer, next_page=older, number=number)


def render_entry_page(info: FeedInfo, entry: Entry, prev: Neighbour | None = None,
                      next: Neighbour | None = None) -> bytes:  # noqa: A002
    """An entry's page, with its canonical URL, OpenGraph tags and JSON-LD NewsArticle, and
    links to the entries published just before (``prev``) and after (``next``) it.

    The bytes of ``render_entry_page_reference`` (the template rendered for this entry),
    filled into a skeleton of the template (``_entry_skeleton``): a first build renders
    every entry page, and Jinja took most of each one's time.
    """
    skeleton = _entry_skeleton(info, entry.language, entry.updated != entry.published,
                               None if prev is None else prev.language,
                               None if next is None else next.language)
    if skeleton is None:
        return render_entry_page_reference(info, entry, prev, next)
    published, updated = _iso(entry.published), _iso(entry.updated)
    jsonld = _jsonld_skeleton(info)
    if jsonld is None:
        script = script_json(news_article(info, entry))
    else:
        texts = {"title": entry.title, "summary": entry.summary, "language": entry.language,
                 "published": published, "updated": updated, "slug": entry.slug}
        parts = list(jsonld)
        parts[1::2] = [_replacing(_json_string(texts[name])[1:-1], _SCRIPT_JSON)
                       for name in jsonld[1::2]]
        script = "".join(parts)
    values = {
        "title": _escape(entry.title), "summary": _escape(entry.summary),
        "slug": _escape(entry.slug), "content": entry.content_html,
        "published": published, "updated": updated,
        "day": published[:10], "updated_day": updated[:10],  # the local dates
        "jsonld": script,
    }
    for side, neighbour in (("prev", prev), ("next", next)):
        if neighbour is not None:
            values[f"{side}_title"] = _escape(neighbour.title)
            values[f"{side}_slug"] = _escape(neighbour.slug)
    parts = list(skeleton)
    parts[1::2] = [values[name].encode("utf-8") for name in skeleton[1::2]]
    return b"".join(parts)


_json_string = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes
_JSON_HOLE = re.compile("\ue000([a-z]+)\ue000")  # a value's place in the JSON-LD skeleton


@functools.lru_cache(maxsize=16)
def _jsonld_skeleton(info: FeedInfo) -> tuple[str, ...] | None:
    """``script_json(news_article(info, entry))`` with a hole (``\ue000name\ue000``) inside
    the JSON string of each value of the entry: the text and the holes' names, alternating.
    A value goes in JSON-escaped without its quotes (JSON and script_json escape character
    by character). None when the feed's settings hold the hole marker."""
    if any("\ue000" in str(value) for value in dataclasses.astuple(info)):
        return None

    def hole(name: str) -> str:
        return f"\ue000{name}\ue000"

    entry = types.SimpleNamespace(title=hole("title"), summary=hole("summary"),
                                  language=hole("language"), slug=hole("slug"),
                                  published=_Moment(hole("published"), ""),
                                  updated=_Moment(hole("updated"), ""))
    return tuple(_JSON_HOLE.split(script_json(news_article(info, entry))))  # type: ignore[arg-type]


def _escape(text: str) -> str:
    """What the template's autoescape (markupsafe) makes of ``text``."""
    return _replacing(text, _MARKUP)


_HOLE = re.compile("\x00([a-z_]+)\x00")  # a value's place in a skeleton


class _Day:
    """A date in a skeleton: its ``.date().isoformat()`` is a hole."""

    def __init__(self, hole: str) -> None:
        self.hole = hole

    def date(self) -> _Day:
        return self

    def isoformat(self) -> str:
        return self.hole


class _Moment(_Day):
    """A datetime in a skeleton: its ``isoformat`` is a hole, its ``date()`` another."""

    def __init__(self, hole: str, day: str) -> None:
        super().__init__(hole)
        self.day = _Day(day)

    def date(self) -> _Day:  # type: ignore[override]
        return self.day

    def isoformat(self, timespec: str = "auto") -> str:
        return self.hole


@functools.lru_cache(maxsize=256)
def _entry_skeleton(info: FeedInfo, lang: str, edited: bool, prev_lang: str | None,
                    next_lang: str | None) -> tuple[bytes | str, ...] | None:
    """The entry page template rendered for the pages of ``info`` with these languages
    (the entry's, its neighbours') and whether it was edited (what its ``if`` tests read),
    with a hole, ``\\x00name\\x00``, for each value of the entry: the page's text (UTF-8)
    and the holes' names, alternating. Holes take the values as the template's autoescape gives
    them (escaping works character by character, so a hole may sit inside a longer value).
    None when the feed's own settings hold the hole marker (never from a valid config)."""
    if any("\x00" in str(value) for value in dataclasses.astuple(info)):
        return None
    markup = jinja2.utils.markupsafe.Markup

    def hole(name: str) -> str:
        return f"\x00{name}\x00"

    def neighbour(side: str, language: str | None) -> Neighbour | None:
        return None if language is None else Neighbour(hole(f"{side}_title"),
                                                       hole(f"{side}_slug"), language)

    day = _Day(hole("day"))
    entry = types.SimpleNamespace(language=lang, title=hole("title"), summary=hole("summary"),
                                  published=day,
                                  updated=_Day(hole("updated_day")) if edited else day)
    url = info.url(entry_path(Neighbour("", hole("slug"), lang)))
    article = {"url": url, "datePublished": hole("published"), "dateModified": hole("updated")}
    page = _templates.get_template("entry.html").render(
        info=info, entry=entry, content=markup(hole("content")), article=article,
        locale=og_locale(lang), jsonld=markup(hole("jsonld")),
        prev=neighbour("prev", prev_lang), next=neighbour("next", next_lang),
    )
    parts = _HOLE.split(page)
    parts[::2] = [text.encode("utf-8") for text in parts[::2]]
    return tuple(parts)


def render_entry_page_reference(info: FeedInfo, entry: Entry,
                                prev: Neighbour | None = None,
                                next: Neighbour | None = None) -> bytes:  # noqa: A002
    """An entry's page, with its canonical URL, OpenGraph tags and JSON-LD NewsArticle, and
    links to the entries published just before (``prev``) and after (``next``) it, rendered
    by its template (what ``render_entry_page`` gives, faster).

    The OpenGraph tags are read from the NewsArticle, so the two always agree.
    """
    markup = jinja2.utils.markupsafe.Markup
    article = news_article(info, entry)
    page = _templates.get_template("entry.html").render(
        info=info, entry=entry, content=markup(entry.content_html), article=article,
        locale=og_locale(entry.language), jsonld=markup(script_json(article)),
        prev=prev, next=next,
    )
    return page.encode("utf-8")


def render_language_page(info: FeedInfo, site: FeedInfo, folder: str,
                         entries: Sequence[Entry]) -> bytes:
    """The index page of one language's feeds (``info``, in ``folder`` under the base URL):
    its newest entries, its feeds, and a link back to the ``site``. The bytes of
    ``render_language_page_reference``, its items put into its shell (as ``render_index``)."""
    shell = _language_shell(info, site, folder, bool(entries))
    items = _list_items("language_item", info, entries)
    if shell is None:
        return render_language_page_reference(info, site, folder, entries)
    return "".join([shell[0], items, shell[1]]).encode("utf-8")


def render_language_page_reference(info: FeedInfo, site: FeedInfo, folder: str,
                                   entries: Sequence[Entry]) -> bytes:
    """``render_language_page``'s page, the template rendered with every entry."""
    page = _templates.get_template("language.html").render(
        info=info, site=site, folder=folder, entries=entries,
        items=_list_items("language_item", info, entries))
    return page.encode("utf-8")


@functools.lru_cache(maxsize=16)
def _language_shell(info: FeedInfo, site: FeedInfo, folder: str,
                    has_entries: bool) -> tuple[str, str] | None:
    """``language.html`` around a hole for its items (see ``_index_shell``)."""
    return _shell(_templates.get_template("language.html").render(
        info=info, site=site, folder=folder, entries=_stand_ins(has_entries, None, None),
        items=jinja2.utils.markupsafe.Markup(_ITEMS)))


def render_search_page(info: FeedInfo) -> bytes:
    """``search.html``: Pagefind's search UI over the index of every language, running the
    query in its URL (``search.html?q=word``)."""
    return _templates.get_template("search.html").render(info=info).encode("utf-8")
