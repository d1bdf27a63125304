"""Entries -> Atom 1.0, RSS 2.0, JSON Feed 1.1 and HTML pages (bytes).

The only module that imports feedgen. Feed-level facts (title, links, hubs, archive links)
come in a :class:`FeedInfo`; entries come newest first. Every function is pure: the same
inputs give the same bytes, so unchanged outputs are never rewritten.

A feed document is kept under a size limit by :func:`fit`: feed readers refuse big feeds
(Miniflux above 15 MiB, CommaFeed above 5 MiB), and one huge article would otherwise silence
the whole feed. The largest entries are rendered *brief*: their summary and a link to their
page instead of their content.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import jinja2
from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from . import __version__
from .normalizer import Entry

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


def script_json(data: object) -> str:
    """JSON that can sit inside ``<script>``: no ``<``, ``>`` or ``&`` in it, only escapes."""
    # Inside <script>, "</script>" or "<!--" in a string would end or derail the element.
    # (Three str.replace calls: a tenth of the cost of str.translate to longer strings.)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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


def _generator(info: FeedInfo, kind: str, self_path: str, entries: Sequence[Entry],
               archive: Archive, brief: Collection[str]) -> FeedGenerator:
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
    newest = max((e.updated for e in entries), default=None)
    fg.updated(newest or dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
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


def render_atom(info: FeedInfo, entries: Sequence[Entry], self_path: str = "atom.xml",
                archive: Archive = Archive(), brief: Collection[str] = ()) -> bytes:
    """Atom 1.0; the entries whose ids are in ``brief`` get no content, only their summary
    and alternate link."""
    return _generator(info, "atom", self_path, entries, archive, brief).atom_str(pretty=True)


def render_rss(info: FeedInfo, entries: Sequence[Entry], self_path: str = "rss.xml",
               archive: Archive = Archive(), brief: Collection[str] = ()) -> bytes:
    """RSS 2.0; the entries whose ids are in ``brief`` get :func:`brief_html` as their
    description and no ``content:encoded``."""
    return _generator(info, "rss", self_path, entries, archive, brief).rss_str(pretty=True)


def render_json(info: FeedInfo, entries: Sequence[Entry], self_path: str = "feed.json",
                brief: Collection[str] = ()) -> bytes:
    """JSON Feed 1.1; the entries whose ids are in ``brief`` get :func:`brief_html` as their
    ``content_html`` (the spec asks every item for content_html or content_text)."""
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
    feed["items"] = [
        {
            "id": entry.id,
            "url": info.url(entry_path(entry)),
            "title": entry.title,
            "summary": entry.summary,
            "content_html": brief_html(info, entry) if entry.id in brief else entry.content_html,
            "date_published": entry.published.isoformat(),
            "date_modified": entry.updated.isoformat(),
            "language": entry.language,
        }
        for entry in entries
    ]
    return (json.dumps(feed, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


_RENDERERS = {"atom": render_atom, "rss": render_rss, "json": render_json}


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
    render_fn, limit = _RENDERERS[kind], info.max_bytes
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


def render_index(info: FeedInfo, entries: Sequence[Entry], prev_page: str | None = None,
                 next_page: str | None = None, number: int | None = None,
                 languages: Sequence[str] = ()) -> bytes:
    """The index page, or archive page ``number``; ``prev_page``/``next_page`` (paths under
    the base URL, "" for the base URL itself) link its newer and older neighbours in the
    paginated index with ``rel="prev"``/``rel="next"``. ``languages`` are the codes whose
    feeds (``lang/<code>/``) the index links, with autodiscovery links."""
    page = _templates.get_template("index.html").render(
        info=info, entries=entries, prev_page=prev_page, next_page=next_page, number=number,
        languages=languages,
    )
    return page.encode("utf-8")


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
    its newest entries, its feeds, and a link back to the ``site``."""
    page = _templates.get_template("language.html").render(
        info=info, site=site, folder=folder, entries=entries)
    return page.encode("utf-8")


def render_search_page(info: FeedInfo) -> bytes:
    """``search.html``: Pagefind's search UI over the index of every language, running the
    query in its URL (``search.html?q=word``)."""
    return _templates.get_template("search.html").render(info=info).encode("utf-8")
