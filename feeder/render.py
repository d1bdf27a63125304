"""Entries -> Atom 1.0, RSS 2.0, JSON Feed 1.1 and HTML pages (bytes).

The only module that imports feedgen. Feed-level facts (title, links, hubs, archive links)
come in a :class:`FeedInfo`; entries come newest first. Every function is pure: the same
inputs give the same bytes, so unchanged outputs are never rewritten.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Sequence
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

    @classmethod
    def from_config(cls, config, archive_count: int = 0) -> FeedInfo:  # noqa: ANN001
        return cls(
            title=config.title, subtitle=config.subtitle, author=config.author,
            base_url=config.base_url, language=config.language,
            feed_id=f"tag:{config.authority},{config.tag_date}:feed", hubs=config.hubs,
            archive_count=archive_count,
        )

    def url(self, path: str) -> str:
        return self.base_url + path


def entry_path(entry: Entry) -> str:
    return f"entries/{entry.slug}.html"


def archive_path(kind: str, number: int) -> str:
    return f"archive/{kind}-{number}.xml"


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
               archive: Archive) -> FeedGenerator:
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
    fg.link(href=info.base_url, rel="alternate", type="text/html")  # last: RSS <link>
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
        fe.content(entry.content_html, type="html")
        if entry.language != info.language:
            fe.feederlinks.language = entry.language  # type: ignore[attr-defined]
    return fg


def render_atom(info: FeedInfo, entries: Sequence[Entry], self_path: str = "atom.xml",
                archive: Archive = Archive()) -> bytes:
    return _generator(info, "atom", self_path, entries, archive).atom_str(pretty=True)


def render_rss(info: FeedInfo, entries: Sequence[Entry], self_path: str = "rss.xml",
               archive: Archive = Archive()) -> bytes:
    return _generator(info, "rss", self_path, entries, archive).rss_str(pretty=True)


def render_json(info: FeedInfo, entries: Sequence[Entry], self_path: str = "feed.json") -> bytes:
    feed: dict = {
        "version": JSONFEED_VERSION,
        "title": info.title,
        "home_page_url": info.base_url,
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
            "content_html": entry.content_html,
            "date_published": entry.published.isoformat(),
            "date_modified": entry.updated.isoformat(),
            "language": entry.language,
        }
        for entry in entries
    ]
    return (json.dumps(feed, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("feeder", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    auto_reload=False,  # package files: no stat of each template for every page rendered
)
_templates.filters["path"] = entry_path


def render_index(info: FeedInfo, entries: Sequence[Entry]) -> bytes:
    page = _templates.get_template("index.html").render(info=info, entries=entries)
    return page.encode("utf-8")


def render_entry_page(info: FeedInfo, entry: Entry) -> bytes:
    page = _templates.get_template("entry.html").render(
        info=info, entry=entry, content=jinja2.utils.markupsafe.Markup(entry.content_html)
    )
    return page.encode("utf-8")
