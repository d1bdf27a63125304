"""Ids that never change, and a lost state rebuilt from the published output.

Entry ids and the feed's id are RFC 4151 tag URIs, ``tag:<authority>,<date>:...``. The
authority and date are fixed ("pinned", in the state's meta) at the first build, and kept:
a later change of ``base_url`` never changes an id. Only an explicit ``tag_authority`` that
differs from the pinned one pins anew (with ``tag_date``), for the feed and for new entries;
an entry keeps the id it was minted with. The feed's own id carries the pinned pair, so a
lost state finds it again.

When the state is missing or was moved aside as corrupt, the first pass reads the feeds it
published (``atom.xml`` and ``archive/atom-N.xml``; our own outputs, but possibly damaged:
whatever does not parse or make sense is skipped and logged) and recovers, per entry, its id,
``updated`` time and archive page. The ids go straight into the ids table (so the entry of
the same stem gets the same id again); the rest waits in the meta table under
``recovered:<id>`` until ``sync.py`` records that entry, and is dropped at the end of the
first full pass. An entry whose title, content or date differ from the published ones was
edited meanwhile and is treated as an edit. Every output then renders to the bytes already
published, so nothing is rewritten, and no feed is pinged again (a ping is queued only for a
feed whose bytes change). Pings that were pending when the state was lost cannot be known.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes

from lxml import etree

from .config import Config
from .normalizer import Entry, entry_id, slug_for
from .render import ATOM_NS
from .store import Store

log = logging.getLogger("feeder")

TAG_KEY = "tag"  # meta: {"authority": ..., "date": ...}
PREFIX = "recovered:"  # meta: one key per recovered entry id
_TAG = re.compile(r"tag:([^,\s]+),(\d{4}(?:-\d\d){0,2}):(\S+)", re.ASCII)
_ARCHIVE = re.compile(r"atom-([1-9][0-9]{0,8})\.xml")
_A = f"{{{ATOM_NS}}}"
MAX_ID = 2048  # longer than any id we mint from a file name


# -- pinned tag authority and date ---------------------------------------------------------

def pin(config: Config, store: Store) -> Config:
    """``config`` with the pinned tag authority and date (pinning them now on a first build,
    from the published feed if there is one, else from the settings)."""
    tag = store.get_meta(TAG_KEY)
    if not isinstance(tag, dict):
        found = feed_tag(config.out / "atom.xml")
        authority, date = found or (config.authority, config.tag_date)
        _set_tag(store, authority, date)
    else:
        authority, date = tag["authority"], tag["date"]
        if config.tag_authority and config.tag_authority != authority:
            log.warning("tag_authority changed from %s to %s: the feed's id and new entries'"
                        " ids use %s,%s from now on; existing entries keep their ids",
                        authority, config.tag_authority, config.tag_authority, config.tag_date)
            authority, date = config.tag_authority, config.tag_date
            _set_tag(store, authority, date)
    return with_tag(config, authority, date)


def _set_tag(store: Store, authority: str, date: str) -> None:
    with store.transaction():
        store.set_meta(TAG_KEY, {"authority": authority, "date": date})


def with_tag(config: Config, authority: str, date: str) -> Config:
    """``config`` minting ids with ``authority`` and ``date``. Not validated again: the pair
    made valid ids when it was pinned (a derived ``::1`` is no valid setting, say)."""
    if (config.authority, config.tag_date) == (authority, date):
        return config
    pinned = copy.copy(config)
    object.__setattr__(pinned, "tag_authority", authority)
    object.__setattr__(pinned, "tag_date", date)
    return pinned


def is_loopback(authority: str) -> bool:
    host = authority.rpartition("@")[2].lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_loopback(config: Config) -> None:
    """Warn (at each start) when ids use a loopback authority, which says nothing about
    whose they are, and name the setting that fixes it."""
    if is_loopback(config.authority):
        log.warning("entry ids use the loopback tag authority %s: set [feed] tag_authority"
                    " (or FEEDER_TAG_AUTHORITY) to a domain or email address of yours",
                    config.authority)


def feed_tag(path: Path) -> tuple[str, str] | None:
    """The (authority, date) of the feed's own id in a published Atom document."""
    root = _parse(path)
    if root is None:
        return None
    match = _TAG.fullmatch((root.findtext(f"{_A}id") or "").strip())
    if match is None or match.group(3) != "feed":
        return None
    return match.group(1), match.group(2)


# -- recovery ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Found:
    """One entry as published."""

    id: str
    stem: str
    published: dt.datetime
    updated: dt.datetime
    text: str  # digest of title and content, to tell an edit made since
    page: int | None  # archive page; None in the current feeds


def needed(config: Config, store: Store) -> bool:
    """A state that has never published anything, next to an output that holds feeds."""
    out = config.out
    return (store.get_meta("render_key") is None and store.total() == 0
            and not isinstance(store.get_meta(TAG_KEY), dict)
            and ((out / "atom.xml").exists() or bool(_archive_pages(out))))


def recover(config: Config, store: Store) -> int:
    """Read the published feeds of ``config.out`` into ``store``; returns how many entries
    were recovered. Pins the tag authority and date found in them."""
    out = config.out
    docs = [(out / "atom.xml", None)] + [(out / "archive" / f"atom-{n}.xml", n)
                                         for n in sorted(_archive_pages(out))]
    found: dict[str, Found] = {}
    tag: tuple[str, str] | None = None
    pages = 0
    for path, page in docs:
        root = _parse(path)
        if root is None:
            continue
        tag = tag or feed_tag(path)
        if page is not None:
            pages = max(pages, page)
        for element in root.iterfind(f"{_A}entry"):
            entry = _found(element, page, path)
            if entry is None:
                continue
            if entry.id in found:
                log.warning("recovery: %s lists %s again; kept the first", path.name, entry.id)
                continue
            found[entry.id] = entry
    with store.transaction():
        if tag is not None:
            store.set_meta(TAG_KEY, {"authority": tag[0], "date": tag[1]})
        store.set_meta("archive_pages", pages)
        for f in found.values():
            store.mint_id(f.stem, f.id)
            store.set_meta(PREFIX + f.id, {
                "published": f.published.isoformat(), "updated": f.updated.isoformat(),
                "text": f.text, "page": f.page})
    log.warning("state was empty: recovered %d entries, their dates and archive pages from"
                " the feeds in %s", len(found), out)
    return len(found)


def pending(store: Store) -> bool:
    """Are recovered entries waiting for their seeds?"""
    return store.has_meta_prefix(PREFIX)


def restore(store: Store, entry: Entry) -> tuple[dt.datetime | None, int | None] | None:
    """What was published of ``entry`` (by its id): None if nothing; else (its ``updated``
    time, or None if its text or date changed since, and its archive page)."""
    r = store.get_meta(PREFIX + entry.id)
    if not isinstance(r, dict):
        return None
    same = (r["text"] == _digest(entry.title, entry.content_html)
            and dt.datetime.fromisoformat(r["published"]) == entry.published)
    return (dt.datetime.fromisoformat(r["updated"]) if same else None), r["page"]


def done(store: Store) -> None:
    """Forget what was recovered for entries whose seeds did not come back (their ids stay
    minted, as a removed seed's do)."""
    store.drop_meta_prefix(PREFIX)


def _found(element: etree._Element, page: int | None, path: Path) -> Found | None:
    """An entry element as a Found, or None (logged) if it does not make sense."""
    id_ = (element.findtext(f"{_A}id") or "").strip()
    try:
        if len(id_) > MAX_ID or not (match := _TAG.fullmatch(id_)):
            raise ValueError("not a tag URI")
        stem = unquote_to_bytes(match.group(3)).decode("utf-8", "surrogateescape")
        if entry_id(match.group(1), match.group(2), stem) != id_:
            raise ValueError("not an id feeder mints")
        published = _when(element, "published")
        updated = _when(element, "updated")
        link = next((ln.get("href", "") for ln in element.iterfind(f"{_A}link")
                     if ln.get("rel", "alternate") == "alternate"), "")
        if link and not link.endswith(f"entries/{slug_for(stem)}.html"):
            raise ValueError(f"its link {link!r} is not the page of its id")
    except (ValueError, UnicodeError) as exc:
        log.warning("recovery: skipped an entry of %s (id %r): %s", path.name, id_[:200], exc)
        return None
    text = _digest(element.findtext(f"{_A}title") or "", element.findtext(f"{_A}content") or "")
    return Found(id_, stem, published, updated, text, page)


def _when(element: etree._Element, name: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat((element.findtext(f"{_A}{name}") or "").strip())
    if moment.tzinfo is None:
        raise ValueError(f"{name} has no time zone")
    return moment


def _digest(title: str, content: str) -> str:
    return hashlib.sha1(f"{title}\0{content}".encode("utf-8", "surrogatepass")).hexdigest()


def _parse(path: Path) -> etree._Element | None:
    """The root of a published Atom document, or None (logged) if it is missing or broken."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False)
    if not path.exists():
        return None
    try:
        root = etree.parse(os.fspath(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        log.warning("recovery: skipped %s: %s", path, exc)
        return None
    if root.tag != f"{_A}feed":
        log.warning("recovery: skipped %s: not an Atom feed", path)
        return None
    return root


def _archive_pages(out: Path) -> list[int]:
    try:
        names = os.listdir(out / "archive")
    except OSError:
        return []
    return [int(m.group(1)) for name in names if (m := _ARCHIVE.fullmatch(name))]

